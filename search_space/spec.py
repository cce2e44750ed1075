"""`ArchSpec`: the one frozen description of a MoViNet-family network.

The builder, the cost model, the search storage, the report and the exporter all read this value;
nothing else describes an architecture. Build it from a preset, a dict or YAML; every entry point
validates and names the path of a bad field (``stages[2].blocks[1].kernel``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

CONV_TYPES = ("3d", "2plus1d", "3d_2plus1d")
SE_TYPES = ("3d", "2d", "2plus3d", "none")
ACTIVATIONS = ("swish", "hard_swish", "relu")
GATINGS = ("sigmoid", "hard_sigmoid")

Triple = tuple[int, int, int]


class SpecError(ValueError):
    """A bad field in a spec: the message starts with the field path."""


def _tuplify(obj: Any, *names: str) -> None:
    """Let callers pass lists; store tuples so specs stay hashable and compare equal."""
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, list):
            object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True)
class Stem:
    """Full (not depthwise) conv → BN → activation."""

    filters: int
    kernel: Triple = (1, 3, 3)
    strides: Triple = (1, 2, 2)

    def __post_init__(self) -> None:
        _tuplify(self, "kernel", "strides")


@dataclass(frozen=True)
class Block:
    """One inverted-bottleneck layer: expansion width, depthwise kernel and strides (t, h, w)."""

    expand: int
    kernel: Triple
    strides: Triple = (1, 1, 1)

    def __post_init__(self) -> None:
        _tuplify(self, "kernel", "strides")


@dataclass(frozen=True)
class Stage:
    """Layers sharing one output width `filters`."""

    filters: int
    blocks: tuple[Block, ...]

    def __post_init__(self) -> None:
        _tuplify(self, "blocks")


@dataclass(frozen=True)
class Head:
    """1×1×1 conv to `filters`, global pool, dense to `hidden`, dropout, classifier."""

    filters: int
    hidden: int = 2048


@dataclass(frozen=True)
class ArchSpec:
    """A whole network. Defaults are those of the base MoViNet models.

    `frames` and `resolution` are the input the network was designed for (used when a cost or a
    model is asked for without an explicit input size); they do not change the weights.
    """

    stem: Stem
    stages: tuple[Stage, ...]
    head: Head
    name: str = "custom"
    conv_type: str = "3d"
    se_type: str = "3d"
    causal: bool = False
    activation: str = "swish"
    gating_activation: str = "sigmoid"
    classifier_activation: str = "swish"
    se_ratio: float = 0.25
    positional_encoding: bool = False
    bn_momentum: float = 0.99
    bn_epsilon: float = 1e-3
    dropout: float = 0.2
    stochastic_depth: float = 0.2
    frames: int = 8
    resolution: int = 172

    def __post_init__(self) -> None:
        _tuplify(self, "stages")
        validate(self)

    # -- conversions -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (lists for tuples), the YAML layout."""
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    @classmethod
    def from_dict(cls, data: Any) -> ArchSpec:
        return _arch_from_dict(data)

    @classmethod
    def from_yaml(cls, path_or_text: str | Path) -> ArchSpec:
        """Read a spec from a YAML file path or from YAML text."""
        text, where = _read_text(path_or_text)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"{where}: not valid YAML ({exc})") from None
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None

    # -- small views -----------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return sum(len(s.blocks) for s in self.stages)

    def replace(self, **changes: Any) -> ArchSpec:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------------
# validation


def _check_int(path: str, value: Any, lo: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}: {value!r} is not an integer")
    if value < lo:
        raise SpecError(f"{path}: {value}, must be >= {lo}")


def _check_triple(path: str, value: Any, what: str) -> None:
    if not (isinstance(value, tuple) and len(value) == 3):
        raise SpecError(f"{path}: {value!r}, must be 3 integers (t, h, w)")
    for axis, v in zip(("temporal", "height", "width"), value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise SpecError(f"{path}: {axis} {what} {v!r} is not an integer")
        if v < 1:
            raise SpecError(f"{path}: {axis} {what} {v}, must be >= 1")


def _check_choice(path: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"{path}: {value!r}, must be one of {', '.join(allowed)}")


def _check_float(path: str, value: Any, lo: float, hi: float, hi_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(f"{path}: {value!r} is not a number")
    bad = value < lo or (value >= hi if hi_open else value > hi)
    if bad:
        close = ")" if hi_open else "]"
        raise SpecError(f"{path}: {value}, must be in [{lo}, {hi}{close}")


def validate(spec: ArchSpec) -> None:
    """Raise `SpecError` naming the first bad field of `spec`."""
    _check_int("stem.filters", spec.stem.filters)
    _check_triple("stem.kernel", spec.stem.kernel, "size")
    _check_triple("stem.strides", spec.stem.strides, "stride")
    if spec.causal and (spec.stem.kernel[0] != 1 or spec.stem.strides[0] != 1):
        raise SpecError(f"stem: temporal kernel {spec.stem.kernel[0]} and stride {spec.stem.strides[0]}, "
                        "must both be 1 when causal")
    if not spec.stages:
        raise SpecError("stages: empty, must hold at least one stage")
    for i, stage in enumerate(spec.stages):
        _check_int(f"stages[{i}].filters", stage.filters)
        if not stage.blocks:
            raise SpecError(f"stages[{i}].blocks: empty stage, must hold at least one block")
        for j, block in enumerate(stage.blocks):
            p = f"stages[{i}].blocks[{j}]"
            _check_int(f"{p}.expand", block.expand)
            _check_triple(f"{p}.kernel", block.kernel, "size")
            _check_triple(f"{p}.strides", block.strides, "stride")
            if spec.causal and block.strides[0] != 1:
                raise SpecError(f"{p}.strides: temporal stride {block.strides[0]}, must be 1 when causal")
    _check_int("head.filters", spec.head.filters)
    _check_int("head.hidden", spec.head.hidden)
    _check_choice("conv_type", spec.conv_type, CONV_TYPES)
    _check_choice("se_type", spec.se_type, SE_TYPES)
    _check_choice("activation", spec.activation, ACTIVATIONS)
    _check_choice("classifier_activation", spec.classifier_activation, ACTIVATIONS)
    _check_choice("gating_activation", spec.gating_activation, GATINGS)
    if not isinstance(spec.causal, bool):
        raise SpecError(f"causal: {spec.causal!r}, must be true or false")
    if not isinstance(spec.positional_encoding, bool):
        raise SpecError(f"positional_encoding: {spec.positional_encoding!r}, must be true or false")
    if spec.positional_encoding and not spec.causal:
        raise SpecError("positional_encoding: true needs causal: true")
    if spec.positional_encoding and spec.se_type == "none":
        raise SpecError("positional_encoding: true needs an SE type other than 'none'")
    _check_float("se_ratio", spec.se_ratio, 0.0, 1.0)
    if spec.se_ratio <= 0:
        raise SpecError(f"se_ratio: {spec.se_ratio}, must be > 0")
    _check_float("bn_momentum", spec.bn_momentum, 0.0, 1.0, hi_open=True)
    _check_float("bn_epsilon", spec.bn_epsilon, 0.0, 1.0)
    if spec.bn_epsilon <= 0:
        raise SpecError(f"bn_epsilon: {spec.bn_epsilon}, must be > 0")
    _check_float("dropout", spec.dropout, 0.0, 1.0, hi_open=True)
    _check_float("stochastic_depth", spec.stochastic_depth, 0.0, 1.0, hi_open=True)
    _check_int("frames", spec.frames)
    _check_int("resolution", spec.resolution)
    if not isinstance(spec.name, str):
        raise SpecError(f"name: {spec.name!r}, must be a string")


# ---------------------------------------------------------------------------------------------
# dict / YAML


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _read_text(path_or_text: str | Path) -> tuple[str, str]:
    """Return (text, name for messages). A Path, or a one-line string naming a file, is read."""
    if isinstance(path_or_text, Path):
        if not path_or_text.is_file():
            raise SpecError(f"{path_or_text}: no such file")
        return path_or_text.read_text(), str(path_or_text)
    text = str(path_or_text)
    if "\n" not in text and text.strip().endswith((".yaml", ".yml")):
        p = Path(text.strip())
        if not p.is_file():
            raise SpecError(f"{p}: no such file")
        return p.read_text(), str(p)
    return text, "spec"


def _mapping(path: str, data: Any, cls: type) -> dict[str, Any]:
    """Check `data` is a mapping whose keys are fields of `cls`; name a misspelled one."""
    if not isinstance(data, dict):
        raise SpecError(f"{path or 'spec'}: {type(data).__name__}, must be a mapping")
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            raise SpecError(f"{where}: unknown field, allowed: {', '.join(names)}")
    required = [
        f.name
        for f in fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    for key in required:
        if key not in data:
            where = f"{path}.{key}" if path else key
            raise SpecError(f"{where}: missing")
    return data


def _triple(path: str, value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value, value)
    if isinstance(value, str):  # "3x3x3"
        try:
            parts = tuple(int(p) for p in value.lower().split("x"))
        except ValueError:
            raise SpecError(f"{path}: {value!r}, must be 3 integers (t, h, w) or 'TxHxW'") from None
        value = parts
    if isinstance(value, (list, tuple)):
        return tuple(value)
    raise SpecError(f"{path}: {value!r}, must be 3 integers (t, h, w)")


def _arch_from_dict(data: Any) -> ArchSpec:
    top = dict(_mapping("", data, ArchSpec))
    stem = dict(_mapping("stem", top["stem"], Stem))
    for k in ("kernel", "strides"):
        if k in stem:
            stem[k] = _triple(f"stem.{k}", stem[k])
    stages_raw = top["stages"]
    if not isinstance(stages_raw, (list, tuple)):
        raise SpecError(f"stages: {type(stages_raw).__name__}, must be a list")
    stages = []
    for i, st in enumerate(stages_raw):
        st = dict(_mapping(f"stages[{i}]", st, Stage))
        blocks_raw = st["blocks"]
        if not isinstance(blocks_raw, (list, tuple)):
            raise SpecError(f"stages[{i}].blocks: {type(blocks_raw).__name__}, must be a list")
        blocks = []
        for j, b in enumerate(blocks_raw):
            b = dict(_mapping(f"stages[{i}].blocks[{j}]", b, Block))
            for k in ("kernel", "strides"):
                if k in b:
                    b[k] = _triple(f"stages[{i}].blocks[{j}].{k}", b[k])
            blocks.append(Block(**b))
        stages.append(Stage(filters=st["filters"], blocks=tuple(blocks)))
    top["stem"] = Stem(**stem)
    top["stages"] = tuple(stages)
    top["head"] = Head(**_mapping("head", top["head"], Head))
    return ArchSpec(**top)


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet rounding: nearest multiple of `divisor`, never more than 10% below `value`."""
    n = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if n < 0.9 * value:
        n += divisor
    return n


__all__ = [
    "ArchSpec",
    "Block",
    "Head",
    "SpecError",
    "Stage",
    "Stem",
    "make_divisible",
    "validate",
    "CONV_TYPES",
    "SE_TYPES",
    "ACTIVATIONS",
    "GATINGS",
]
