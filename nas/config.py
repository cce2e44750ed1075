"""Search configuration: one YAML file mapped onto frozen dataclasses, validated at the boundary.

Every error is a `UsageError` naming the file, the field path and what is allowed, e.g.
``demo.yaml: sampler.name: 'tpee', must be one of tpe, nsga2, nsga3, random, grid, gp``.
The defaults live in the dataclasses below and are documented in docs/search.md.
No TensorFlow or Optuna is imported here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from evaluation.datasets.config import SPEC_SIZED, dataset_for  # noqa: F401  (dataset_for re-exported for nas)
from evaluation.evaluator import Proxy, TableProxy, TrainProxy, parse_proxy
from evaluation.oneshot.supernet import SupernetConfig, parse_supernet
from evaluation.proxies.zero_cost import ZERO_COST as _ZERO_COST
from evaluation.results.pareto import DIRECTIONS, MAXIMIZED  # numpy only at import
from evaluation.results.record import LATENCY_MS, TRAINED, VAL_ACCURACY  # TRAINED: measured by proxy training
from search_space import validate as v
from search_space.cost import COST_NAMES
from search_space.space_schema import BUILTIN_SPACES

from .constraints import Constraint, parse_constraint
from .errors import UsageError
from .pruning import PrunerConfig, parse_pruner

COSTS = COST_NAMES  # analytic, before training: the fields of search_space.Cost
MEASURED = (LATENCY_MS,)  # forward pass of the built model, batch 1
ZERO_COST = tuple(_ZERO_COST)  # grad_norm, snip, synflow, naswot: all higher-is-better
MAXIMIZED_BY_DEFAULT = MAXIMIZED  # evaluation.results.pareto's: the names higher is better for
OBJECTIVE_NAMES = (*TRAINED, *COSTS, *MEASURED, *ZERO_COST)
SAMPLERS = ("tpe", "nsga2", "nsga3", "random", "grid", "gp")
RULES = ("off", "dominated", "halving", "mo-asha")
GRID_LIMIT = 100_000  # larger grids take too long to enumerate and never finish anyway


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "maximize" | "minimize"

    def to_dict(self) -> dict:
        return {"name": self.name, "direction": self.direction}


@dataclass(frozen=True)
class SamplerConfig:
    """An Optuna sampler by short name; `options` are passed to its constructor unchanged."""

    name: str = "tpe"
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EarlyStopping:
    """Stops proxy training of a trial that cannot reach the front (see docs/search.md)."""

    rule: str = "dominated"  # off | dominated | halving | mo-asha
    margin: float = 0.0  # dominated: the better trial must lead by more than this
    keep: float = 0.5  # halving: fraction of completed trials a trial must stay within
    min_epoch: int = 1  # never stop before this epoch has been evaluated; mo-asha: the first rung
    min_trials: int = 3  # halving: completed trials needed at an epoch (mo-asha: others at a rung) to stop any
    eta: int = 3  # mo-asha: rungs at min_epoch * eta**k epochs, the best 1/eta of a rung go on


@dataclass(frozen=True)
class Heartbeat:
    """RDB storage heartbeats: a trial with no heartbeat for `grace_period` seconds is failed
    and re-queued with the same parameters, at most `max_retry` times."""

    interval: int = 15
    grace_period: int = 60
    max_retry: int = 2


@dataclass(frozen=True)
class ZeroCostConfig:
    batch_size: int = 8


@dataclass(frozen=True)
class SearchConfig:
    """A whole search. `space` is a built-in space name, an absolute path or an inline mapping."""

    study: str
    space: Any = "small"
    dataset: dict = field(default_factory=lambda: {"kind": "synthetic"})
    objectives: tuple[Objective, ...] = (Objective(VAL_ACCURACY, "maximize"), Objective("flops", "minimize"))
    constraints: tuple[Constraint, ...] = ()
    proxy: Proxy = TrainProxy()  # the evaluator of trained objectives (evaluation.evaluator), parsed once
    zero_cost: ZeroCostConfig = ZeroCostConfig()
    sampler: SamplerConfig = SamplerConfig()
    early_stopping: EarlyStopping = EarlyStopping()
    pruner: PrunerConfig = PrunerConfig()  # Optuna pruner, single-objective studies (nas.pruning)
    keep_weights: bool | str = "auto"  # save COMPLETE trials' trained weights: true, false, auto (small proxies)
    supernet: SupernetConfig = SupernetConfig()  # the `supernet:` section (docs/oneshot.md)
    heartbeat: Heartbeat = Heartbeat()
    profile: Any = None  # `profile:` a LatencyProfile: latency_ms is predicted from it before training (docs/latency.md)
    trials: int = 20
    timeout: float | None = None
    seed: int | None = 0
    num_classes: int | None = None
    storage: str | None = None
    max_rejected: int = 1000  # consecutive samples rejected untrained before a worker gives up
    source: str = "<config>"
    base_dir: str = "."  # folder of the config file: relative paths (space, dataset source) start here
    raw: dict = field(default_factory=dict)  # the mapping as read, stored with the study

    @property
    def trains(self) -> bool:
        return any(o.name in TRAINED for o in self.objectives)

    @property
    def curve_objective(self) -> Objective | None:
        """The trained objective the early-stopping rule follows epoch by epoch."""
        return next((o for o in self.objectives if o.name in TRAINED), None)

    @property
    def zero_cost_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives if o.name in ZERO_COST)

    def replace(self, **changes: Any) -> SearchConfig:
        import dataclasses

        return dataclasses.replace(self, **changes)


def builtin_spaces() -> tuple[str, ...]:
    return BUILTIN_SPACES


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a search config file (relative paths inside resolve against its folder)."""
    path = Path(path)
    if v.is_dir(path):
        raise UsageError(f"{v.one_line(str(path), 200)}: a directory, must be a search config YAML file")
    if not v.is_file(str(path)):
        raise UsageError(f"{v.one_line(str(path), 200)}: no such config file")
    where = v.one_line(str(path), 200)
    data = v.load_yaml(v.read_text(path, what="search config", error=UsageError), where, error=UsageError)
    return config_from_dict(data, source=where, base=path.resolve().parent, default_study=path.stem)


def config_from_dict(data: Any, source: str = "<config>", base: Path | None = None,
                     default_study: str = "study") -> SearchConfig:
    try:
        return _parse(data, source, base or Path.cwd(), default_study)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None


# ---------------------------------------------------------------------------------------------
# parsing


def _parse(data: Any, source: str, base: Path, default_study: str) -> SearchConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UsageError(f"top level: {v.quote(data)}, must be a mapping of fields")
    v.check_size(data, "config", error=UsageError)
    v.mapping(data, "", [f.name for f in fields(SearchConfig) if f.name not in ("source", "base_dir", "raw")],
              error=UsageError)
    study = study_name(data.get("study", default_study), "study")
    objectives = _objectives(data.get("objectives", [o.to_dict() for o in _default("objectives")]))
    constraints = tuple(parse_constraint(c, f"constraints[{i}]") for i, c in enumerate(_list(data, "constraints")))
    texts = [c.text for c in constraints]
    for i, t in enumerate(texts):
        if t in texts[:i]:
            raise UsageError(f"constraints[{i}]: {v.quote(t)} appears twice")
    supernet = _supernet(data.get("supernet"))
    config = SearchConfig(
        study=study,
        space=_space(data.get("space", _default("space")), base),
        dataset=_dataset(data.get("dataset", _default("dataset"))),
        objectives=objectives,
        constraints=constraints,
        proxy=_proxy(data.get("proxy"), supernet, base),
        zero_cost=_section(ZeroCostConfig, data, "zero_cost"),
        sampler=_sampler(data.get("sampler", _default("sampler").name)),
        early_stopping=_early_stopping(data),
        pruner=parse_pruner(data.get("pruner"), objectives),
        keep_weights=_keep_weights(data.get("keep_weights", "auto")),
        supernet=supernet,
        heartbeat=_heartbeat(data),
        profile=_profile(data.get("profile"), base, constraints),
        trials=_int(data.get("trials", _default("trials")), "trials"),
        timeout=_number(data.get("timeout", _default("timeout")), "timeout", optional=True),
        seed=_int(data.get("seed", _default("seed")), "seed", lo=0, optional=True),
        num_classes=_int(data.get("num_classes", _default("num_classes")), "num_classes", lo=2, optional=True),
        storage=storage_url(data.get("storage"), "storage", optional=True),
        max_rejected=_int(data.get("max_rejected", _default("max_rejected")), "max_rejected"),
        source=source,
        base_dir=str(base),
        raw=data,
    )
    if config.profile is not None:
        config = _with_profile(config)
    if isinstance(config.proxy, TableProxy):  # a bad table ends the search before it starts
        from evaluation.proxies.table import check_table_file

        try:
            check_table_file(config.proxy.path, config.space)
        except ValueError as exc:
            raise UsageError(f"proxy.path: {' '.join(str(exc).split())}") from None
    return config


def _profile(value: Any, base: Path, constraints: tuple[Constraint, ...]):
    """The latency profile `profile:` names (a JSON file, relative to the config's folder), or None;
    a `latency_ms` constraint needs one."""
    if value is None:
        bad = next((c.text for c in constraints if c.name == LATENCY_MS), None)
        if bad:
            raise UsageError(f"constraints: {v.quote(bad)} needs a latency profile: add profile: PROFILE.json "
                             "(movinas latency profile writes one)")
        return None
    from search_space.latency import ProfileError, read_profile

    if not isinstance(value, str) or not value:
        raise UsageError(f"profile: {v.quote(value)}, must be the path of a latency profile JSON file")
    try:
        return read_profile(base / value)
    except ProfileError as exc:
        raise UsageError(f"profile: {exc}") from None


def _with_profile(config: SearchConfig) -> SearchConfig:
    """`latency_ms` constraints carry the profile; the profile must cover every op kind of the space."""
    import dataclasses

    from search_space import SearchSpace, SpecError
    from search_space.latency import space_kinds

    try:
        space = SearchSpace.from_dict(config.space) if isinstance(config.space, dict) else SearchSpace.from_yaml(config.space)
    except SpecError as exc:
        raise UsageError(f"space: {' '.join(str(exc).split())}") from None
    missing = config.profile.missing(space_kinds(space, config.profile.mode))
    if missing:
        raise UsageError(f"profile: {config.profile.describe()} has no fit for op kind(s) {', '.join(missing)} "
                         f"that the space needs; profile it with movinas latency profile --space SPACE")
    constraints = tuple(dataclasses.replace(c, profile=config.profile) if c.name == LATENCY_MS else c
                        for c in config.constraints)
    return config.replace(constraints=constraints)


def _keep_weights(value: Any) -> bool | str:
    if value is True or value is False or value == "auto":
        return value
    raise UsageError(f"keep_weights: {v.quote(value)}, must be true, false or auto")


def _default(name: str) -> Any:
    """The default of a `SearchConfig` field: defaults are written once, on the dataclass."""
    f = next(f for f in fields(SearchConfig) if f.name == name)
    return f.default_factory() if f.default is MISSING else f.default


def study_name(value: Any, path: str = "study") -> str:
    """A study name is one folder name under the results root: no '/', '..', absolute or empty name."""
    return v.name(value, path, error=UsageError)


STORAGE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def storage_url(value: Any, path: str = "storage", optional: bool = False) -> str | None:
    """A database URL Optuna can keep a study in: sqlite:///FILE, postgresql://..., mysql://...
    (SQLAlchemy driver suffixes such as postgresql+psycopg2 allowed); never an in-memory one."""
    if value is None and optional:
        return None
    scheme, sep, rest = value.partition("://") if isinstance(value, str) else ("", "", "")
    ok = bool(sep) and scheme.split("+")[0] in STORAGE_SCHEMES and bool(rest.strip()) and value.isprintable()
    if ok and scheme.startswith("sqlite"):
        file = rest[1:].split("?", 1)[0] if rest.startswith("/") else ""
        ok = bool(file.strip()) and file != ":memory:"
    if not ok:
        raise UsageError(f"{path}: {v.quote(value)}, must be a database URL (sqlite:///path/study.db, "
                         "postgresql://user@host/db)" + (" or null for results/<study>/study.db" if optional else ""))
    return value


def _list(data: dict, key: str) -> list:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(f"{key}: {v.quote(value)}, must be a list")
    return value


def _int(value: Any, path: str, lo: int = 1, optional: bool = False) -> int | None:
    return v.integer(value, path, lo, optional=optional, error=UsageError)


def _number(value: Any, path: str, lo: float = 0.0, hi: float | None = None, optional: bool = False,
            lo_open: bool = True) -> float | None:
    value = v.number(value, path, lo, hi, lo_open=lo_open, optional=optional, error=UsageError)
    return None if value is None else float(value)


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    return v.choice(value, path, allowed, error=UsageError)


def _mapping(value: Any, path: str, allowed: tuple[str, ...] | None = None) -> dict:
    return {} if value is None else v.mapping(value, path, allowed, error=UsageError)


def _section(cls, data: dict, key: str):
    """A flat dataclass of ints from `data[key]`, unknown keys refused."""
    values = _mapping(data.get(key), key, v.dataclass_fields(cls)[0])
    for k, x in values.items():
        _int(x, f"{key}.{k}", lo=0 if k == "max_retry" else 1)
    return cls(**values)


def _objectives(value: Any) -> tuple[Objective, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f"objectives: {v.quote(value)}, must be a non-empty list, e.g. [maximize: val_accuracy, "
                         "minimize: flops]")
    out: list[Objective] = []
    for i, item in enumerate(value):
        path = f"objectives[{i}]"
        if isinstance(item, str):
            name = item
            direction = "maximize" if item in MAXIMIZED_BY_DEFAULT else "minimize"
        elif isinstance(item, dict) and set(item) <= {"name", "direction"} and "name" in item:
            name, direction = item["name"], item.get("direction")
            _choice(direction, f"{path}.direction", DIRECTIONS)
        elif isinstance(item, dict) and len(item) == 1 and next(iter(item)) in DIRECTIONS:
            direction, name = next(iter(item.items()))
        else:
            raise UsageError(f"{path}: {v.quote(item)}, must be a name, {{maximize: NAME}}, {{minimize: NAME}} "
                             "or {name: NAME, direction: maximize|minimize}")
        _choice(name, f"{path}.name", OBJECTIVE_NAMES)
        if name in [o.name for o in out]:
            raise UsageError(f"{path}.name: {v.quote(name)} appears twice")
        out.append(Objective(name, direction))
    return tuple(out)


def _space(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"space: {v.quote(value)}, must be a built-in space ({', '.join(builtin_spaces())}), "
                         "a YAML path relative to the config file, or an inline mapping")
    if value in builtin_spaces():
        return value
    path = Path(value).expanduser() if "\x00" not in value else Path("\ufffd")
    path = path if path.is_absolute() else base / path
    if not v.is_file(str(path)):
        raise UsageError(f"space: {v.quote(value)}: no such file ({v.one_line(str(path), 200)}); built-in spaces: "
                         f"{', '.join(builtin_spaces())}")
    return str(path)




def _dataset(value: Any) -> dict:
    """The kind and field names are checked here (a cost-only search never loads its dataset); the
    values when the dataset is loaded (`evaluation.datasets.load_dataset`)."""
    from evaluation.datasets.config import DATASET_KINDS, dataset_fields  # numpy only at import

    value = v.mapping(_mapping(value, "dataset"), "dataset", required=("kind",), error=UsageError)
    kind = v.choice(value.get("kind"), "dataset.kind", DATASET_KINDS, error=UsageError)
    v.mapping(value, "dataset", ("kind", *dataset_fields(kind)), error=UsageError)
    for key in SPEC_SIZED:
        x = value.get(key)
        if isinstance(x, str) and x != "spec":
            raise UsageError(f"dataset.{key}: {v.quote(x)}, must be an integer or spec (each trial's own {key})")
    return value



def _supernet(value: Any) -> SupernetConfig:
    try:
        return parse_supernet(value, "supernet")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _proxy(value: Any, supernet: SupernetConfig, base: Path) -> Proxy:
    """The evaluator (`evaluation.evaluator`): train (Budget fields), table or supernet."""
    try:
        return parse_proxy(_mapping(value, "proxy"), supernet, base)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _sampler(value: Any) -> SamplerConfig:
    if isinstance(value, str):
        value = {"name": value}
    value = _mapping(value, "sampler", v.dataclass_fields(SamplerConfig)[0])
    name = _choice(value.get("name", SamplerConfig.name), "sampler.name", SAMPLERS)
    options = _mapping(value.get("options"), "sampler.options")
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise UsageError("sampler gp needs PyTorch: pip install 'movinas[gp]'")
    if options:
        _sampler_options(name, options)
    return SamplerConfig(name=name, options=dict(options))


SAMPLER_CLASSES = {"tpe": "TPESampler", "nsga2": "NSGAIISampler", "nsga3": "NSGAIIISampler",
                   "random": "RandomSampler", "grid": "GridSampler", "gp": "GPSampler"}
# (lo, hi, lo_open) of numeric sampler options; other ints must be >= 0, other floats finite and >= 0
_OPTION_RANGES = {"n_ei_candidates": (1, None, False), "population_size": (2, None, False),
                  "dividing_parameter": (1, None, False), "prior_weight": (0, None, True),
                  "mutation_prob": (0, 1, False), "crossover_prob": (0, 1, False), "swapping_prob": (0, 1, False),
                  "seed": (0, 2**32 - 1, False)}


def _sampler_options(name: str, options: dict) -> None:
    """Check `sampler.options` against the sampler class's signature: known names (options that take
    Python objects cannot come from YAML), values of the annotated type (bool, int, finite float) in
    range. Imports Optuna."""
    import inspect

    import optuna

    cls = getattr(optuna.samplers, SAMPLER_CLASSES[name])
    params = {k: str(p.annotation) for k, p in inspect.signature(cls.__init__).parameters.items()
              if k not in ("self", "search_space") and not any(w in str(p.annotation) for w in ("Callable", "Base"))}
    for key, x in options.items():
        path = f"sampler.options.{v.one_line(str(key), v.MAX_QUOTE)}"
        if key not in params:
            raise UsageError(f"{path}: unknown option of {cls.__name__}, allowed: {', '.join(params)}")
        kind, optional = params[key].split(" |")[0], "None" in params[key]
        lo, hi, lo_open = _OPTION_RANGES.get(key, (0, None, False))
        if x is None and optional:
            continue
        if kind == "bool":
            v.boolean(x, path, error=UsageError)
        elif kind == "int":
            v.integer(x, path, lo, hi, error=UsageError)
        elif kind == "float":
            v.number(x, path, lo, hi, lo_open=lo_open, error=UsageError)
        elif isinstance(x, float):
            v.number(x, path, error=UsageError)


def _early_stopping(data: dict) -> EarlyStopping:
    value = data.get("early_stopping")
    if isinstance(value, str) or value is False:
        value = {"rule": "off" if value is False else value}
    proxy = data.get("proxy")
    replayed = value is None and isinstance(proxy, dict) and proxy.get("kind") == "table"
    value = _mapping(value, "early_stopping", v.dataclass_fields(EarlyStopping)[0])
    # a table search stops nothing unless asked: it judges samplers on the table's final values, as it
    # did before the table replayed its curves (name a rule to simulate early stopping on them)
    d = EarlyStopping(rule="off") if replayed else EarlyStopping()
    return EarlyStopping(
        rule=_choice(value.get("rule", d.rule), "early_stopping.rule", RULES),
        margin=_number(value.get("margin", d.margin), "early_stopping.margin", 0.0, lo_open=False),
        keep=_number(value.get("keep", d.keep), "early_stopping.keep", 0.0, 1.0),
        min_epoch=_int(value.get("min_epoch", d.min_epoch), "early_stopping.min_epoch"),
        min_trials=_int(value.get("min_trials", d.min_trials), "early_stopping.min_trials"),
        eta=_int(value.get("eta", d.eta), "early_stopping.eta", lo=2),
    )


def _heartbeat(data: dict) -> Heartbeat:
    hb = _section(Heartbeat, data, "heartbeat")
    if hb.grace_period <= hb.interval:
        raise UsageError(f"heartbeat.grace_period: {hb.grace_period}, must be greater than "
                         f"heartbeat.interval ({hb.interval})")
    return hb


