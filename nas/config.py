"""Search configuration: one YAML file mapped onto frozen dataclasses, validated at the boundary.

Every error is a `UsageError` naming the file, the field path and what is allowed, e.g.
``demo.yaml: sampler.name: 'tpee', must be one of tpe, nsga2, nsga3, random, grid, gp``.
The defaults live in the dataclasses below and are documented in docs/search.md.
No TensorFlow or Optuna is imported here.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from evaluation.zero_cost import ZERO_COST as _ZERO_COST  # numpy only at import

from .constraints import Constraint, parse_constraint
from .errors import UsageError

TRAINED = ("val_accuracy", "val_loss")  # measured by proxy training
COSTS = ("params", "macs", "flops", "activation_bytes", "state_bytes")  # analytic, before training
MEASURED = ("latency_ms",)  # forward pass of the built model, batch 1
ZERO_COST = tuple(_ZERO_COST)  # grad_norm, snip, synflow, naswot: all higher-is-better
MAXIMIZED_BY_DEFAULT = ("val_accuracy", *ZERO_COST)
OBJECTIVE_NAMES = (*TRAINED, *COSTS, *MEASURED, *ZERO_COST)
DIRECTIONS = ("maximize", "minimize")
SAMPLERS = ("tpe", "nsga2", "nsga3", "random", "grid", "gp")
RULES = ("off", "dominated", "halving")
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

    rule: str = "dominated"  # off | dominated | halving
    margin: float = 0.0  # dominated: the better trial must lead by more than this
    keep: float = 0.5  # halving: fraction of completed trials a trial must stay within
    min_epoch: int = 1  # never stop before this epoch has been evaluated
    min_trials: int = 3  # halving: completed trials needed at an epoch before it may stop anything


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
    objectives: tuple[Objective, ...] = (Objective("val_accuracy", "maximize"), Objective("flops", "minimize"))
    constraints: tuple[Constraint, ...] = ()
    proxy: dict = field(default_factory=dict)  # evaluation.proxy.Budget fields
    zero_cost: ZeroCostConfig = ZeroCostConfig()
    sampler: SamplerConfig = SamplerConfig()
    early_stopping: EarlyStopping = EarlyStopping()
    heartbeat: Heartbeat = Heartbeat()
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
    from search_space.space_schema import BUILTIN_SPACES

    return BUILTIN_SPACES


def load_config(path: str | Path) -> SearchConfig:
    """Read and validate a search config file (relative paths inside resolve against its folder)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    return config_from_dict(data, source=str(path), base=path.resolve().parent, default_study=path.stem)


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
        raise UsageError(f"top level: {type(data).__name__}, must be a mapping of fields")
    allowed = [f.name for f in fields(SearchConfig) if f.name not in ("source", "base_dir", "raw")]
    for key in data:
        if key not in allowed:
            raise UsageError(f"{key}: unknown field, allowed: {', '.join(allowed)}")
    study = data.get("study", default_study)
    if not isinstance(study, str) or not study.strip() or "/" in study:
        raise UsageError(f"study: {study!r}, must be a non-empty name without '/'")
    objectives = _objectives(data.get("objectives", [o.to_dict() for o in SearchConfig.objectives]))
    constraints = tuple(parse_constraint(c, f"constraints[{i}]") for i, c in enumerate(_list(data, "constraints")))
    texts = [c.text for c in constraints]
    for i, t in enumerate(texts):
        if t in texts[:i]:
            raise UsageError(f"constraints[{i}]: {t!r} appears twice")
    config = SearchConfig(
        study=study.strip(),
        space=_space(data.get("space", "small"), base),
        dataset=_dataset(data.get("dataset", {"kind": "synthetic"})),
        objectives=objectives,
        constraints=constraints,
        proxy=_proxy(data.get("proxy")),
        zero_cost=_section(ZeroCostConfig, data, "zero_cost"),
        sampler=_sampler(data.get("sampler", "tpe")),
        early_stopping=_early_stopping(data),
        heartbeat=_heartbeat(data),
        trials=_int(data.get("trials", 20), "trials"),
        timeout=_number(data.get("timeout"), "timeout", optional=True),
        seed=_int(data.get("seed", 0), "seed", lo=0, optional=True),
        num_classes=_int(data.get("num_classes"), "num_classes", lo=2, optional=True),
        storage=_storage(data.get("storage")),
        max_rejected=_int(data.get("max_rejected", 1000), "max_rejected"),
        source=source,
        base_dir=str(base),
        raw=data,
    )
    return config


def _list(data: dict, key: str) -> list:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise UsageError(f"{key}: {value!r}, must be a list")
    return value


def _int(value: Any, path: str, lo: int = 1, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise UsageError(f"{path}: {value!r}, must be an integer >= {lo}{' or null' if optional else ''}")
    return value


def _number(value: Any, path: str, lo: float = 0.0, hi: float | None = None, optional: bool = False,
            lo_open: bool = True) -> float | None:
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > lo if lo_open else value >= lo) and (hi is None or value <= hi)
    if not ok:
        rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{']' if hi is not None else ')'}"
        raise UsageError(f"{path}: {value!r}, must be a number in {rng}{' or null' if optional else ''}")
    return float(value)


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise UsageError(f"{path}: {value!r}, must be one of {', '.join(allowed)}")
    return value


def _mapping(value: Any, path: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{path}: {value!r}, must be a mapping")
    return value


def _section(cls, data: dict, key: str):
    """A flat dataclass of ints from `data[key]`, unknown keys refused."""
    values = _mapping(data.get(key), key)
    names = [f.name for f in fields(cls)]
    for k, v in values.items():
        if k not in names:
            raise UsageError(f"{key}.{k}: unknown field, allowed: {', '.join(names)}")
        _int(v, f"{key}.{k}", lo=0 if k == "max_retry" else 1)
    return cls(**values)


def _objectives(value: Any) -> tuple[Objective, ...]:
    if not isinstance(value, list) or not value:
        raise UsageError(f"objectives: {value!r}, must be a non-empty list, e.g. [maximize: val_accuracy, "
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
            raise UsageError(f"{path}: {item!r}, must be a name, {{maximize: NAME}}, {{minimize: NAME}} "
                             "or {name: NAME, direction: maximize|minimize}")
        _choice(name, f"{path}.name", OBJECTIVE_NAMES)
        if name in [o.name for o in out]:
            raise UsageError(f"{path}.name: {name!r} appears twice")
        out.append(Objective(name, direction))
    return tuple(out)


def _space(value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"space: {value!r}, must be a built-in space ({', '.join(builtin_spaces())}), "
                         "a YAML path relative to the config file, or an inline mapping")
    if value in builtin_spaces():
        return value
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise UsageError(f"space: {value!r}: no such file ({path}); built-in spaces: "
                         f"{', '.join(builtin_spaces())}")
    return str(path)


SPEC_SIZED = ("frames", "resolution")  # dataset fields that may say `spec`: each trial's own input size


def _dataset(value: Any) -> dict:
    value = _mapping(value, "dataset")
    if "kind" not in value:
        raise UsageError("dataset.kind: missing, must be one of synthetic, video_folder")
    for key in SPEC_SIZED:
        v = value.get(key)
        if isinstance(v, str) and v != "spec":
            raise UsageError(f"dataset.{key}: {v!r}, must be an integer or spec (each trial's own {key})")
    return value


def dataset_for(dataset: dict, spec: Any) -> dict:
    """The dataset config with every `spec` size replaced by `spec`'s own frames / resolution."""
    return {k: getattr(spec, k) if k in SPEC_SIZED and v == "spec" else v for k, v in dataset.items()}


def _proxy(value: Any) -> dict:
    value = _mapping(value, "proxy")
    from evaluation.proxy import Budget  # numpy only at import; validates with field paths

    try:
        Budget.from_dict(value, path="proxy")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return value


def _sampler(value: Any) -> SamplerConfig:
    if isinstance(value, str):
        value = {"name": value}
    value = _mapping(value, "sampler")
    for key in value:
        if key not in ("name", "options"):
            raise UsageError(f"sampler.{key}: unknown field, allowed: name, options")
    name = _choice(value.get("name", "tpe"), "sampler.name", SAMPLERS)
    options = _mapping(value.get("options"), "sampler.options")
    if name == "gp" and importlib.util.find_spec("torch") is None:
        raise UsageError("sampler gp needs PyTorch: pip install 'movinas[gp]'")
    return SamplerConfig(name=name, options=dict(options))


def _early_stopping(data: dict) -> EarlyStopping:
    value = data.get("early_stopping")
    if isinstance(value, str) or value is False:
        value = {"rule": value or "off"}
    value = _mapping(value, "early_stopping")
    names = [f.name for f in fields(EarlyStopping)]
    for key in value:
        if key not in names:
            raise UsageError(f"early_stopping.{key}: unknown field, allowed: {', '.join(names)}")
    d = EarlyStopping()
    return EarlyStopping(
        rule=_choice(value.get("rule", d.rule), "early_stopping.rule", RULES),
        margin=_number(value.get("margin", d.margin), "early_stopping.margin", 0.0, lo_open=False),
        keep=_number(value.get("keep", d.keep), "early_stopping.keep", 0.0, 1.0),
        min_epoch=_int(value.get("min_epoch", d.min_epoch), "early_stopping.min_epoch"),
        min_trials=_int(value.get("min_trials", d.min_trials), "early_stopping.min_trials"),
    )


def _heartbeat(data: dict) -> Heartbeat:
    hb = _section(Heartbeat, data, "heartbeat")
    if hb.grace_period <= hb.interval:
        raise UsageError(f"heartbeat.grace_period: {hb.grace_period}, must be greater than "
                         f"heartbeat.interval ({hb.interval})")
    return hb


def _storage(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "://" not in value:
        raise UsageError(f"storage: {value!r}, must be a database URL (sqlite:///path/study.db, "
                         "postgresql://user@host/db) or null for results/<study>/study.db")
    return value
