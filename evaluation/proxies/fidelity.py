"""Rank fidelity: how well a cheap proxy orders architectures the way an expensive reference does.

`rank_fidelity(space, dataset, n, cheap, reference)` samples `n` architectures, scores each with
every cheap proxy and with the reference, and reports Kendall's tau-b and Spearman's rho between
each cheap proxy and the reference; `write_fidelity` adds the table's CSV and a scatter plot. This is how a user decides which proxy to
trust before spending a search on it.

A proxy is named by a string (every score higher-is-better):

- a zero-cost score (``grad_norm``, ``snip``, ``synflow``, ``naswot``) or a baseline (``params``,
  ``macs``), see `evaluation.proxies.zero_cost`;
- ``epochs:K`` or ``epochs:K:METRIC``: train K epochs with `train_proxy` and take METRIC,
  one of ``val_accuracy`` (default), ``val_loss``, ``train_loss``, ``train_accuracy`` (losses are
  negated). Proxies with the same K share one training run per architecture.

The rank correlations are computed here with NumPy (O(n²) tau-b, ties handled as scipy does)
rather than making scipy a dependency for two formulas.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.proxies.zero_cost import BASELINES, ZERO_COST
from evaluation.results.record import TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS, Outcome
from search_space import validate

METRICS = (VAL_ACCURACY, VAL_LOSS, TRAIN_LOSS, TRAIN_ACCURACY)
NEGATED = (VAL_LOSS, TRAIN_LOSS)


# ---------------------------------------------------------------------------------------------
# rank statistics


def _clean(a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"rank correlation: shapes {x.shape} and {y.shape}, must be equal 1-D")
    keep = np.isfinite(x) & np.isfinite(y)
    return x[keep], y[keep]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either ranking counted as in scipy.stats.kendalltau); pairs with a
    non-finite value are dropped; NaN when fewer than 2 pairs remain or a ranking is constant."""
    x, y = _clean(a, b)
    if len(x) < 2:
        return math.nan
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    iu = np.triu_indices(len(x), k=1)
    dx, dy = dx[iu], dy[iu]
    s = float(np.sum(dx * dy))
    denom = math.sqrt(float(np.sum(dx != 0)) * float(np.sum(dy != 0)))
    return s / denom if denom > 0 else math.nan


def _ranks(v: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing the mean of their positions."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v), dtype=np.float64)
    sorted_v = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i: j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: Pearson correlation of average ranks; NaN as for `kendall_tau`."""
    x, y = _clean(a, b)
    if len(x) < 2:
        return math.nan
    rx, ry = _ranks(x) - (len(x) + 1) / 2.0, _ranks(y) - (len(y) + 1) / 2.0
    denom = math.sqrt(float(np.sum(rx * rx)) * float(np.sum(ry * ry)))
    return float(np.sum(rx * ry)) / denom if denom > 0 else math.nan


def bootstrap_ci(stat: Callable[[np.ndarray, np.ndarray], float], a: Sequence[float], b: Sequence[float],
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(statistic, low, high): `stat(a, b)` (e.g. `kendall_tau`, `spearman_rho`) on the paired
    values and its percentile bootstrap interval at `level`, resampling the pairs (architectures)
    with replacement `n_boot` times from `numpy.random.default_rng(seed)`. Non-finite pairs are
    dropped first; NaN bounds when fewer than 3 pairs remain."""
    x, y = _clean(a, b)
    value = stat(x, y)
    if len(x) < 3:
        return value, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), (n_boot, len(x)))
    draws = np.array([stat(x[i], y[i]) for i in idx])
    draws = draws[np.isfinite(draws)]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (math.nan, math.nan)
    return value, float(low), float(high)


# ---------------------------------------------------------------------------------------------
# proxies by name


@dataclass(frozen=True)
class Proxy:
    """A parsed proxy name: a zero-cost score / baseline (`epochs` 0) or K epochs and a metric."""

    name: str
    epochs: int = 0
    metric: str = ""

    @property
    def trained(self) -> bool:
        return self.epochs > 0


def parse_proxy(text: str, path: str = "proxy") -> Proxy:
    """`"synflow"`, `"params"`, `"epochs:1"`, `"epochs:2:val_loss"` → `Proxy`; ValueError otherwise."""
    allowed = f"{', '.join((*ZERO_COST, *BASELINES))}, epochs:K or epochs:K:METRIC ({', '.join(METRICS)})"
    if not isinstance(text, str):
        raise ValueError(f"{path}: {text!r}, must be one of {allowed}")
    if text in ZERO_COST or text in BASELINES:
        return Proxy(text)
    parts = text.split(":")
    if parts[0] == "epochs" and len(parts) in (2, 3):
        metric = parts[2] if len(parts) == 3 else VAL_ACCURACY
        if parts[1].isdigit() and int(parts[1]) >= 1 and metric in METRICS:
            k = int(parts[1])
            return Proxy(f"epochs:{k}" + (f":{metric}" if metric != VAL_ACCURACY else ""), k, metric)
    raise ValueError(f"{path}: {text!r}, must be one of {allowed}")


# ---------------------------------------------------------------------------------------------
# the study


@dataclass(frozen=True)
class FidelityResult:
    """`table`: one row per sampled architecture (index, spec YAML, a column per proxy, the
    reference, and the status of each training run); `correlations`: one row per cheap proxy with
    Kendall's tau-b and Spearman's rho against the reference and the number of architectures
    compared; `plot`: path of the scatter plot PNG (None when no `out` folder was given)."""

    table: Any  # pandas.DataFrame
    correlations: Any  # pandas.DataFrame
    reference: str
    plot: Path | None = None
    specs: tuple = field(default=(), repr=False)


def rank_fidelity(
    space: Any,
    dataset: Any,
    n: int = 20,
    cheap: str | Sequence[str] = ("grad_norm", "snip", "synflow", "naswot", "epochs:1"),
    reference: str = "epochs:5",
    seed: int = 0,
    *,
    budget: Any = None,
    progress: Callable[[int], None] | None = None,
) -> FidelityResult:
    """Sample `n` architectures from `space` (with `seed`), score each with every `cheap` proxy
    (``params`` and ``macs`` always included) and with `reference`, and correlate.

    Training proxies use `budget` (a `Budget`; its epochs are replaced by each proxy's K) and the
    same `seed` for every architecture. Architectures whose reference run failed are left out of
    the correlations (their row stays in the table). `progress(i)` is called after each
    architecture. `write_fidelity(result, out)` writes the table and the scatter plot.
    """
    import pandas as pd

    from evaluation.proxies.train import Budget

    if isinstance(cheap, str):
        cheap = (cheap,)
    cheap_proxies = [parse_proxy(c, f"cheap[{i}]") for i, c in enumerate(cheap)]
    for base in BASELINES:
        if all(p.name != base for p in cheap_proxies):
            cheap_proxies.append(Proxy(base))
    ref = parse_proxy(reference, "reference")
    validate.integer(n, "n", 2)
    budget = budget if budget is not None else Budget()
    rng = np.random.default_rng(seed)
    specs = [space.sample(rng, name=f"arch{i}") for i in range(n)]
    rows = []
    for i, spec in enumerate(specs):
        rows.append({"arch": i, **_scores(spec, dataset, (*cheap_proxies, ref), budget, seed),
                     "spec": spec.to_yaml()})
        if progress is not None:
            progress(i)
    table = pd.DataFrame(rows)
    y = table[_proxy_column(ref)].to_numpy(dtype=np.float64)
    corr = []
    for p in cheap_proxies:
        x = table[_proxy_column(p)].to_numpy(dtype=np.float64)
        finite = int(np.sum(np.isfinite(x) & np.isfinite(y)))
        corr.append({"proxy": p.name, "kendall_tau": kendall_tau(x, y), "spearman_rho": spearman_rho(x, y),
                     "n": finite})
    return FidelityResult(table=table, correlations=pd.DataFrame(corr), reference=ref.name, specs=tuple(specs))


def _scores(spec: Any, dataset: Any, proxies: Sequence[Proxy], budget: Any, seed: int) -> dict[str, Any]:
    """Every proxy's score of `spec`: the zero-cost ones, then one training run per epoch count K with
    the status of the run and each of its metrics (losses negated; NaN when the run failed)."""
    from evaluation.proxies.train import train_proxy
    from evaluation.proxies.zero_cost import zero_cost_scores

    row: dict[str, Any] = dict(zero_cost_scores(spec, dataset, names=tuple(dict.fromkeys(
        p.name for p in proxies if not p.trained)), seed=seed))
    for k in sorted({p.epochs for p in proxies if p.trained}):
        result = train_proxy(spec, dataset, dataclasses.replace(budget, epochs=k), seed=seed)
        row[f"epochs:{k}:status"] = result.status.value
        for metric in METRICS:
            value = result.metrics[metric] if result.status is not Outcome.FAILED else math.nan
            row[_column(k, metric)] = -value if metric in NEGATED else value
    return row


def write_fidelity(result: FidelityResult, out: str | Path) -> FidelityResult:
    """Write the table of `result` to ``fidelity.csv`` and the scatter plot to ``fidelity.png`` in the
    folder `out`; returns `result` with its `plot`."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    result.table.to_csv(folder / "fidelity.csv", index=False)
    cheap = list(result.correlations["proxy"])
    plot = scatter_plot(result.table, result.correlations, cheap, result.reference, folder / "fidelity.png")
    return dataclasses.replace(result, plot=plot)


def _column(k: int, metric: str) -> str:
    return f"epochs:{k}" if metric == VAL_ACCURACY else f"epochs:{k}:{metric}"


def _proxy_column(p: Proxy) -> str:
    return _column(p.epochs, p.metric) if p.trained else p.name


def scatter_plot(table: Any, correlations: Any, cheap: Sequence[str], reference: str, path: Path) -> Path:
    """One panel per cheap proxy: its score against the reference, tau and rho in the title."""
    from matplotlib.figure import Figure  # no pyplot: no global backend chosen, no figure kept open

    cols = min(3, len(cheap))
    rows = -(-len(cheap) // cols)
    fig = Figure(figsize=(4 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    stats = correlations.set_index("proxy")
    for ax, name in zip(axes.flat, cheap):
        ax.scatter(table[name], table[reference], s=18, alpha=0.8)
        tau, rho = stats.loc[name, "kendall_tau"], stats.loc[name, "spearman_rho"]
        ax.set_title(f"{name}: tau {tau:.2f}, rho {rho:.2f}", fontsize=10)
        ax.set_xlabel(name + (" (log)" if name in ("params", "macs") else ""))
        ax.set_ylabel(reference)
        if name in ("params", "macs"):
            ax.set_xscale("log")
    for ax in list(axes.flat)[len(cheap):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
