"""The evaluators a search scores trained objectives with: one closed family of frozen values,
parsed once from a config's `proxy:` section, and one door from a value to a scorer.

- `TrainProxy` (`kind: train`, the default): train each spec within a `Budget`, from scratch or, with
  `init: MODEL`, from a pretrained model's weights wherever the spec nests in it.
- `TableProxy` (`kind: table`): look the spec's seed-averaged accuracy up in a benchmark table.
- `SupernetProxy` (`kind: supernet`): score the spec as a sub-network of a trained supernet; its
  settings are the config's `supernet:` section.

`parse_proxy` turns the mapping into one of them (ValueError naming the field); `make_scorer(proxy,
context)` turns one into a scorer `scorer(spec, callback=None, keep_model=False) -> ProxyResult`,
given an explicit `EvalContext` (space, dataset, study folder, storage). The scorer keeps its own
caches (the table read once, the supernet loaded once); nothing reaches back into the caller. A new
evaluator (a multi-fidelity scheduler around training) is one more value and one more scorer here.
Numpy-free at import, like the configuration code that parses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from evaluation.oneshot.supernet import SupernetConfig, parse_supernet
from evaluation.proxies.budget import Budget
from evaluation.results.record import VAL_ACCURACY

KINDS = ("train", "table", "supernet")
TABLE_FIELDS = ("kind", "path", "metric")


@dataclass(frozen=True)
class TrainProxy:
    """`proxy: {kind: train, init: MODEL, ...Budget fields}`: train within `budget`, from scratch, or with
    `init` (an export folder or a released MoViNet checkpoint, resolved against the config's folder) from
    that model's weights wherever the candidate nests in it (`search_space.nested`)."""

    budget: Budget = Budget()
    init: str | None = None
    kind: ClassVar[str] = "train"


@dataclass(frozen=True)
class TableProxy:
    """`proxy: {kind: table, path: results/bench/table.csv}`: the table's seed-averaged metrics
    (`path` resolved against the config's folder)."""

    path: str
    metric: str = VAL_ACCURACY
    kind: ClassVar[str] = "table"


@dataclass(frozen=True)
class SupernetProxy:
    """`proxy: {kind: supernet}`: sub-networks of the supernet the `supernet:` section describes."""

    supernet: SupernetConfig = SupernetConfig()
    kind: ClassVar[str] = "supernet"


Proxy = TrainProxy | TableProxy | SupernetProxy


def parse_proxy(value: Any, supernet: SupernetConfig | None = None, base: str | Path | None = None,
                path: str = "proxy") -> Proxy:
    """The evaluator of a `proxy:` mapping (None: train with the default budget). `supernet`: the
    parsed `supernet:` section; `base`: the folder a relative table path starts from. A bad field
    raises ValueError naming `path.field` and what is allowed."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {value!r}, must be a mapping of proxy fields")
    kind = value.get("kind", "train")
    if kind == "table":
        return _table(value, base, path)
    if kind == "supernet":
        extra = [k for k in value if k != "kind"]
        if extra:
            raise ValueError(f"{path}.{extra[0]}: unknown field for kind supernet (its settings are the "
                             "supernet: section), allowed: kind")
        return SupernetProxy(supernet if supernet is not None else SupernetConfig())
    if kind != "train":
        raise ValueError(f"{path}.kind: {kind!r}, must be one of {', '.join(KINDS)}")
    init = value.get("init")
    if init is not None and (not isinstance(init, str | Path) or not str(init).strip()):
        raise ValueError(f"{path}.init: {init!r}, must be the path of an export folder or a MoViNet checkpoint")
    if init is not None:
        init = str(Path(base) / str(init)) if base is not None else str(init)
    budget = Budget.from_dict({k: v for k, v in value.items() if k not in ("kind", "init")}, path=path)
    return TrainProxy(budget, init)


def _table(value: dict, base: str | Path | None, path: str) -> TableProxy:
    for key in value:
        if key not in TABLE_FIELDS:
            raise ValueError(f"{path}.{key}: unknown field for kind table, allowed: {', '.join(TABLE_FIELDS)}")
    where = value.get("path")
    if not isinstance(where, str | Path) or not str(where).strip():
        raise ValueError(f"{path}.path: {where!r}, must be the path of a benchmark table (CSV)")
    resolved = Path(base) / str(where) if base is not None else Path(str(where))
    return TableProxy(str(resolved), str(value.get("metric", TableProxy.metric)))


def study_proxy(config: dict | None) -> Proxy:
    """The evaluator of a study, from the config mapping stored with it (export reads it back)."""
    config = config or {}
    return parse_proxy(config.get("proxy"), parse_supernet(config.get("supernet")))


def training_budget(proxy: Proxy, epochs: int) -> Budget:
    """The budget a further training of `epochs` uses (export's retraining and fine-tuning): the
    proxy's own training settings (the defaults for kinds that do not train), limited by epochs only."""
    base = proxy.budget if isinstance(proxy, TrainProxy) else Budget()
    return dataclasses.replace(base, epochs=epochs, steps=None, seconds=None)


# ---------------------------------------------------------------------------------------------
# scorers


@dataclass(frozen=True)
class EvalContext:
    """What a scorer may read, named: the search space, the dataset of a spec (`dataset(spec)`),
    the study folder (relative supernet checkpoints live there), the class count, the seed and the
    study's storage URL (None: the default one in the study folder)."""

    space: Any
    dataset: Callable[[Any], Any]
    study_dir: Path
    num_classes: int
    seed: int = 0
    storage: str | None = None


Scorer = Callable[..., Any]  # scorer(spec, callback=None, keep_model=False) -> evaluation.proxies.train.ProxyResult


class TrainScorer:
    """Trains each spec within the proxy's budget (`evaluation.proxies.train.train_proxy`): from scratch,
    or from the nested weights of the proxy's `init` model, which is loaded here once (ValueError naming
    it if it is not a model)."""

    def __init__(self, proxy: TrainProxy, context: EvalContext) -> None:
        self.budget, self.context = proxy.budget, context
        self.pretrained = None
        if proxy.init is not None:
            from evaluation.deploy.pretrained import load_pretrained

            try:
                self.pretrained = load_pretrained(proxy.init)
            except FileNotFoundError as exc:
                raise ValueError(f"proxy.init: {exc}") from None

    def __call__(self, spec: Any, callback: Any = None, keep_model: bool = False):
        from evaluation.proxies.train import BuildOptions, train_proxy

        build = None
        if self.pretrained is not None:
            build = BuildOptions(initial_weights=self.pretrained.nested_in(spec))
        return train_proxy(spec, self.context.dataset(spec), self.budget, seed=self.context.seed,
                           callback=callback, return_model=keep_model, build=build)


def make_scorer(proxy: Proxy, context: EvalContext) -> Scorer:
    """The scorer of `proxy` in `context`. A supernet is loaded here, so a bad checkpoint stops a
    search before its first trial (ValueError naming it); a table is read at the first score."""
    if isinstance(proxy, TrainProxy):
        return TrainScorer(proxy, context)
    if isinstance(proxy, TableProxy):
        from evaluation.proxies.table import TableScorer

        return TableScorer(proxy, context)
    if isinstance(proxy, SupernetProxy):
        from evaluation.oneshot.proxy import SupernetScorer

        return SupernetScorer(proxy, context)
    raise TypeError(f"proxy: {type(proxy).__name__}, must be one of TrainProxy, TableProxy, SupernetProxy")


__all__ = ["EvalContext", "KINDS", "Proxy", "Scorer", "SupernetProxy", "TableProxy", "TrainProxy", "TrainScorer",
           "make_scorer", "parse_proxy", "study_proxy", "training_budget"]
