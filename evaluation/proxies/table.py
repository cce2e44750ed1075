"""The benchmark table: ground truth for judging proxies and searches, and the `table` proxy kind.

`PROTOCOL` is the reference training every row of the table went through (`movinas bench
generate`, nas/commands/bench.py). `export_table` writes the table from the generation's studies,
`load_table` reads and checks it, `arch_means` averages it over seeds, and `TableScorer` scores the
proxy kind ``proxy: {kind: table, path: results/bench/table.csv}``: it looks an architecture's
seed-averaged accuracy up instead of training it. Layout and columns: docs/proxies.md.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from evaluation.results.record import (
    CURVE_METRICS,
    FINAL_METRICS,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
    Outcome,
)

# The reference protocol (docs/proxies.md, "The benchmark table"). Changing it makes a new table.
PROTOCOL: dict[str, Any] = {
    "space": "bench",
    "num_classes": 10,
    "dataset": {"kind": "graded", "clips_per_class": 205, "frames": "spec", "resolution": "spec", "level": 1,
                "seed": 0, "val_fraction": 0.5},  # 1,020 training and 1,030 validation clips
    "proxy": {"epochs": 6, "batch_size": 8, "learning_rate": 0.005},
    "seeds": [0, 1, 2, 3],
}
KEY = ("spec_id", "seed")
COST_COLUMNS = ("params", "macs", "flops", "activation_bytes")
FINAL_COLUMNS = FINAL_METRICS
INFO_COLUMNS = ("space", "study", "trial", "seconds", "load_avg", "machine", "finished")


def curve_columns(epochs: int) -> list[str]:
    return [f"{m}_e{e}" for e in range(1, epochs + 1) for m in CURVE_METRICS]


def required_columns(axes: list[str], epochs: int) -> list[str]:
    return [*KEY, *axes, *COST_COLUMNS, *FINAL_COLUMNS, *curve_columns(epochs), *INFO_COLUMNS]


def _space(name: str = PROTOCOL["space"]):
    from search_space import SearchSpace

    return SearchSpace.from_yaml(name)


def space_axes(space) -> list[str]:
    """Every axis of the space (fixed ones included) as table columns."""
    return ["frames", "resolution", *(k for k in space.param_choices() if k not in ("frames", "resolution"))]


def export_table(out: str | Path) -> Path:
    """Write OUT/table.csv from the studies `bench-seed<k>` of OUT/bench.db: one row per COMPLETE
    trial, i.e. per (architecture, seed). Written to a temporary file and renamed."""
    import optuna
    import pandas as pd
    from sqlalchemy.pool import NullPool

    from evaluation.results.record import read_trial

    out = Path(out)
    # no pooled connection outlives a read, even one a Ctrl-C cut short: the generation can then
    # leave bench.db in one file (nas.storage.release_sqlite needs it to itself)
    storage = optuna.storages.RDBStorage(f"sqlite:///{out / 'bench.db'}", engine_kwargs={"poolclass": NullPool})
    space = _space()
    axes = space_axes(space)
    epochs = PROTOCOL["proxy"]["epochs"]
    rows = []
    for summary in optuna.get_all_study_summaries(storage):
        name = summary.study_name
        if not name.startswith("bench-seed"):
            continue
        study = optuna.load_study(study_name=name, storage=storage)
        seed = int(name.removeprefix("bench-seed"))
        machine = study.user_attrs.get("machine", "")
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            r = read_trial(t)
            spec = space.decode(r.params)
            row = {"spec_id": r.spec_id, "seed": seed, "frames": spec.frames, **r.params}
            row.update({k: r.cost.get(k) for k in COST_COLUMNS})
            row.update({k: r.metrics.get(k) for k in FINAL_COLUMNS})
            for entry in r.curve:
                for m in CURVE_METRICS:
                    row[f"{m}_e{entry['epoch']}"] = entry.get(m)
            row.update(space=space.name, study=name, trial=r.number, seconds=r.metrics.get("seconds"),
                       load_avg=study.user_attrs.get("load_avg", {}).get(str(r.number)), machine=machine,
                       finished=r.datetime_complete.isoformat(timespec="seconds") if r.datetime_complete else "")
            rows.append(row)
    columns = required_columns(axes, epochs)
    table = pd.DataFrame(rows, columns=columns).sort_values(["seed", "trial"], kind="stable")
    path = out / "table.csv"
    tmp = path.with_suffix(".csv.tmp")
    table.to_csv(tmp, index=False, float_format="%.6g")
    os.replace(tmp, path)
    return path


def load_table(path: str | Path, space: str | None = PROTOCOL["space"]):
    """The table as a pandas DataFrame, checked: a missing or unreadable file, missing columns or
    rows of another space raise a ValueError whose one line names the file."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such table file (make one with `movinas bench generate`)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path}: not a readable CSV table ({' '.join(str(exc).split())[:200]})") from None
    needed = [*KEY, "space", VAL_ACCURACY, VAL_LOSS]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: not a benchmark table, missing columns {', '.join(missing)}")
    if space is not None:
        other = sorted(set(map(str, table["space"])) - {space})
        if other:
            raise ValueError(f"{path}: a table of space {other[0]!r}, expected space {space!r}")
    if table.duplicated(list(KEY)).any():
        raise ValueError(f"{path}: an (architecture, seed) pair appears twice")
    bad = ~pd.to_numeric(table[VAL_ACCURACY], errors="coerce").between(0, 1)
    if bad.any():
        raise ValueError(f"{path}: val_accuracy outside [0, 1] in row {int(bad.idxmax()) + 2}")
    return table


def arch_means(table, seeds: list[int] | None = None):
    """One row per architecture: its axes and costs, and every numeric metric averaged over
    `seeds` (all when None), plus `n_seeds`."""
    if seeds is not None:
        table = table[table["seed"].isin(seeds)]
    numeric = [c for c in table.columns if c not in KEY and table[c].dtype.kind in "fiu"
               and c not in COST_COLUMNS and c not in ("trial", "frames", "resolution", "width_mult")]
    fixed = [c for c in table.columns if c not in numeric and c not in KEY]
    grouped = table.groupby("spec_id", sort=False)
    means = grouped[numeric].mean()
    means["n_seeds"] = grouped.size()
    return grouped[[c for c in fixed if c not in INFO_COLUMNS]].first().join(means).reset_index()


# ---------------------------------------------------------------------------------------------
# what the table says about itself


def spread(accuracy) -> dict[str, float]:
    """The issue's spread targets on seed-averaged accuracies: `top10_over_median` = the 90th
    percentile (the worst of the best 10%) minus the median (target >= 0.10), and `near_best` =
    the share of architectures within 0.02 of the best (target <= 0.10)."""
    import numpy as np

    a = np.asarray(accuracy, dtype=float)
    a = a[np.isfinite(a)]
    best, median, p90 = float(a.max()), float(np.median(a)), float(np.percentile(a, 90))
    return {"n": len(a), "best": best, "median": median, "p90": p90, "top10_over_median": p90 - median,
            "near_best": float(np.mean(a >= best - 0.02))}


def reproducibility(table, seeds_a, seeds_b, metric: str = VAL_ACCURACY, n_boot: int = 2000) -> dict[str, float]:
    """Kendall tau (with a 95% bootstrap interval over architectures) between the rankings given by
    the mean `metric` over `seeds_a` and over `seeds_b`, on the architectures trained at all of them."""
    from evaluation.proxies.fidelity import bootstrap_ci, kendall_tau

    wanted = set(seeds_a) | set(seeds_b)
    have = table[table["seed"].isin(wanted)].groupby("spec_id")["seed"].nunique()
    full = table[table["spec_id"].isin(have[have == len(wanted)].index)]
    a = full[full["seed"].isin(seeds_a)].groupby("spec_id")[metric].mean()
    b = full[full["seed"].isin(seeds_b)].groupby("spec_id")[metric].mean().reindex(a.index)
    tau, low, high = bootstrap_ci(kendall_tau, a.to_numpy(), b.to_numpy(), n_boot=n_boot)
    return {"n": len(a), "tau": tau, "low": low, "high": high}


# ---------------------------------------------------------------------------------------------
# the `table` proxy kind


def check_table_file(path: str | Path, space_source: Any) -> None:
    """Check that the table at `path` is readable and holds architectures of the space
    `space_source` (a built-in name, a YAML path or a mapping); ValueError with one line if not."""
    from search_space import SearchSpace, SpecError

    space = SearchSpace.from_dict(space_source) if isinstance(space_source, dict) else SearchSpace.from_yaml(
        space_source)
    table = load_table(path, space=space.name)
    axes = space_axes(space)
    missing = [c for c in axes if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column for axis {missing[0]!r} of space {space.name!r}: a table of another space")
    for row in table[axes].drop_duplicates().to_dict("records"):
        try:
            spec = space.decode({k: _plain(v) for k, v in row.items()})
        except SpecError as exc:
            raise ValueError(f"{path}: a row outside space {space.name!r} ({exc})") from None
        if spec.frames != row["frames"] or spec.resolution != row["resolution"]:
            raise ValueError(f"{path}: a row at {row['frames']} frames, {row['resolution']} px, outside space "
                             f"{space.name!r}")


def _plain(value: Any) -> Any:
    """A CSV cell as the space's choices hold it (numpy scalars to Python numbers)."""
    return value.item() if hasattr(value, "item") else value


class TableLookup:
    """Seed-averaged metrics of every architecture of a table, keyed by spec id."""

    def __init__(self, path: str | Path, space_name: str) -> None:
        self.path = Path(path)
        table = load_table(self.path, space=space_name)
        means = arch_means(table)
        self.rows = {r["spec_id"]: r for r in means.to_dict("records")}

    def get(self, arch: str) -> dict | None:
        return self.rows.get(arch)


class TableScorer:
    """Proxy kind `table` (`evaluation.evaluator.TableProxy`): the architecture's seed-averaged
    `val_accuracy` and `val_loss` from the table (`seconds` is the time its reference training took,
    on average); an architecture not in the table is rejected untrained (status INFEASIBLE: PRUNED,
    outcome infeasible, not counted) with the reason. The table is read at the first score."""

    def __init__(self, proxy: Any, context: Any) -> None:
        self.path, self.space_name = Path(proxy.path), context.space.name
        self.lookup: TableLookup | None = None

    def __call__(self, spec: Any, callback: Any = None, keep_model: bool = False):
        from evaluation.proxies.train import ProxyResult
        from evaluation.results.record import spec_id

        if self.lookup is None:
            self.lookup = TableLookup(self.path, self.space_name)
        lookup = self.lookup
        arch = spec_id(spec)
        row = lookup.get(arch)
        if row is None:
            return ProxyResult(status=Outcome.INFEASIBLE, metrics={}, reason=(
                f"architecture {arch} is not in the table {lookup.path} ({len(lookup.rows)} architectures): "
                "the table proxy only scores architectures it holds"))
        metrics = {k: float(row[k]) for k in (VAL_ACCURACY, VAL_LOSS, TRAIN_ACCURACY, TRAIN_LOSS, "seconds")
                   if k in row and not math.isnan(float(row[k]))}
        metrics["table_seeds"] = float(row["n_seeds"])
        return _replay(row, metrics, callback) if callback is not None else ProxyResult(Outcome.COMPLETE, metrics)


def _replay(row: dict, metrics: dict, callback: Any):
    """Hand the row's seed-averaged curve to `callback(epoch, entry)` epoch by epoch, as training
    would (so early-stopping rules run on the table); True from it stops the replay there, status
    EARLY_STOPPED with that epoch's metrics and its share of the seconds."""
    from evaluation.proxies.train import ProxyResult

    epochs = int(PROTOCOL["proxy"]["epochs"])
    history: list[dict] = []
    for epoch in range(1, epochs + 1):
        entry = {"epoch": epoch, **{m: float(row[f"{m}_e{epoch}"]) for m in CURVE_METRICS
                                    if not math.isnan(float(row.get(f"{m}_e{epoch}", math.nan)))}}
        if "seconds" in metrics:
            entry["seconds"] = metrics["seconds"] * epoch / epochs
        history.append(entry)
        if callback(epoch, dict(entry)):
            stopped = {**metrics, **{k: v for k, v in entry.items() if k != "epoch"}}
            return ProxyResult(status=Outcome.EARLY_STOPPED, metrics=stopped, history=tuple(history),
                               reason=f"stopped by the callback after epoch {epoch}")
    return ProxyResult(status=Outcome.COMPLETE, metrics=metrics, history=tuple(history))


__all__ = ["PROTOCOL", "TableLookup", "TableScorer", "arch_means", "check_table_file", "export_table", "load_table",
           "reproducibility", "spread"]
