"""`ArchSpec`: the one frozen description of a MoViNet-family network.

The builder, the cost model, the search storage, the report and the exporter all read this value;
nothing else describes an architecture. Build it from a preset, a dict or YAML; every entry point
validates and names the path of a bad field (``stages[2].blocks[1].kernel``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import validate as v

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
        text, where = v.path_or_text(path_or_text, "spec", error=SpecError)
        data = v.load_yaml(text, where, error=SpecError)
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None

    # -- small views -----------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return sum([len(s.blocks) for s in self.stages])  # a list, not a generator: read once per walk

    def replace(self, **changes: Any) -> ArchSpec:
        return dataclasses.replace(self, **changes)


# ---------------------------------------------------------------------------------------------
# validation


NUM_CLASSES = 600  # classifier outputs when none is given: Kinetics-600, as the MoViNet presets
MAX_CHANNELS = 100_000  # filters, expansion and hidden widths
MAX_KERNEL = 64  # kernel sizes and strides, per axis
MAX_FRAMES = 10_000
MAX_RESOLUTION = 4096


def _int(value: Any, path: str, hi: int = MAX_CHANNELS) -> None:
    if type(value) is not int or not 0 < value <= hi:  # fast path: specs are validated in hot loops
        v.integer(value, path, 1, hi, error=SpecError)


def _triple_ok(t: Any) -> bool:
    if type(t) is not tuple or len(t) != 3:
        return False
    a, b, c = t
    return (type(a) is int and type(b) is int and type(c) is int
            and 0 < a <= MAX_KERNEL and 0 < b <= MAX_KERNEL and 0 < c <= MAX_KERNEL)


def _triple(value: Any, path: str, what: str) -> None:
    if _triple_ok(value):
        return
    if not (isinstance(value, tuple) and len(value) == 3):
        raise SpecError(f"{path}: {v.quote(value)}, must be 3 integers (t, h, w)")
    for axis, x in zip(("temporal", "height", "width"), value):
        v.integer(x, f"{path}: {axis} {what}", 1, MAX_KERNEL, error=SpecError)


def _block(block: Any, path: str) -> None:
    """The slow path of a block that failed the fast check: raise naming its bad field."""
    if not isinstance(block, Block):
        raise SpecError(f"{path}: {v.quote(block)}, must be a Block")
    _int(block.expand, f"{path}.expand")
    _triple(block.kernel, f"{path}.kernel", "size")
    _triple(block.strides, f"{path}.strides", "stride")


def _choice(value: Any, path: str, allowed: tuple[str, ...]) -> None:
    if type(value) is not str or value not in allowed:
        v.choice(value, path, allowed, error=SpecError)


def _float(value: Any, path: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
    kind = type(value)
    if not ((kind is float or kind is int) and (value > lo if lo_open else value >= lo)
            and (value < hi if hi_open else value <= hi)):  # NaN fails every comparison
        v.number(value, path, lo, hi, lo_open=lo_open, hi_open=hi_open, error=SpecError)


def validate(spec: ArchSpec) -> None:
    """Raise `SpecError` naming the first bad field of `spec`."""
    for name, cls in (("stem", Stem), ("head", Head)):
        if not isinstance(getattr(spec, name), cls):
            raise SpecError(f"{name}: {v.quote(getattr(spec, name))}, must be a {cls.__name__}")
    _int(spec.stem.filters, "stem.filters")
    _triple(spec.stem.kernel, "stem.kernel", "size")
    _triple(spec.stem.strides, "stem.strides", "stride")
    if type(spec.causal) is not bool:
        v.boolean(spec.causal, "causal", error=SpecError)
    if spec.causal and (spec.stem.kernel[0] != 1 or spec.stem.strides[0] != 1):
        raise SpecError(f"stem: temporal kernel {spec.stem.kernel[0]} and stride {spec.stem.strides[0]}, "
                        "must both be 1 when causal")
    if not isinstance(spec.stages, tuple):
        raise SpecError(f"stages: {v.quote(spec.stages)}, must be a list of stages")
    if not spec.stages:
        raise SpecError("stages: empty, must hold at least one stage")
    causal = spec.causal
    for i, stage in enumerate(spec.stages):
        if not isinstance(stage, Stage):
            raise SpecError(f"stages[{i}]: {v.quote(stage)}, must be a Stage")
        _int(stage.filters, f"stages[{i}].filters")
        if not isinstance(stage.blocks, tuple):
            raise SpecError(f"stages[{i}].blocks: {v.quote(stage.blocks)}, must be a list of blocks")
        if not stage.blocks:
            raise SpecError(f"stages[{i}].blocks: empty stage, must hold at least one block")
        for j, block in enumerate(stage.blocks):
            if not (type(block) is Block and type(block.expand) is int and 0 < block.expand <= MAX_CHANNELS
                    and _triple_ok(block.kernel) and _triple_ok(block.strides)):
                _block(block, f"stages[{i}].blocks[{j}]")
            if causal and block.strides[0] != 1:
                raise SpecError(f"stages[{i}].blocks[{j}].strides: temporal stride {block.strides[0]}, "
                                "must be 1 when causal")
    _int(spec.head.filters, "head.filters")
    _int(spec.head.hidden, "head.hidden")
    _choice(spec.conv_type, "conv_type", CONV_TYPES)
    _choice(spec.se_type, "se_type", SE_TYPES)
    _choice(spec.activation, "activation", ACTIVATIONS)
    _choice(spec.classifier_activation, "classifier_activation", ACTIVATIONS)
    _choice(spec.gating_activation, "gating_activation", GATINGS)
    if type(spec.positional_encoding) is not bool:
        v.boolean(spec.positional_encoding, "positional_encoding", error=SpecError)
    if spec.positional_encoding and not spec.causal:
        raise SpecError("positional_encoding: true needs causal: true")
    if spec.positional_encoding and spec.se_type == "none":
        raise SpecError("positional_encoding: true needs an SE type other than 'none'")
    _float(spec.se_ratio, "se_ratio", 0.0, 1.0, lo_open=True)
    _float(spec.bn_momentum, "bn_momentum", 0.0, 1.0, hi_open=True)
    _float(spec.bn_epsilon, "bn_epsilon", 0.0, 1.0, lo_open=True)
    _float(spec.dropout, "dropout", 0.0, 1.0, hi_open=True)
    _float(spec.stochastic_depth, "stochastic_depth", 0.0, 1.0, hi_open=True)
    _int(spec.frames, "frames", MAX_FRAMES)
    _int(spec.resolution, "resolution", MAX_RESOLUTION)
    if type(spec.name) is not str or len(spec.name) > 200:
        v.string(spec.name, "name", error=SpecError)


# ---------------------------------------------------------------------------------------------
# dict / YAML


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _mapping(data: Any, path: str, cls: type) -> dict[str, Any]:
    """Check `data` is a mapping whose keys are fields of `cls`; name a misspelled or missing one."""
    names, required = _FIELDS[cls]
    if not isinstance(data, dict):
        raise SpecError(f"{path or 'spec'}: {v.quote(data)}, must be a mapping")
    return v.mapping(data, path, names, required, error=SpecError)


_FIELDS = {cls: v.dataclass_fields(cls) for cls in (ArchSpec, Stem, Stage, Block, Head)}


def _triple_of(value: Any, path: str) -> Any:
    return v.triple(value, path, 1, MAX_KERNEL, "stride" if path.endswith("strides") else "size", error=SpecError)


def _arch_from_dict(data: Any) -> ArchSpec:
    top = dict(_mapping(data, "", ArchSpec))
    stem = dict(_mapping(top["stem"], "stem", Stem))
    for k in ("kernel", "strides"):
        if k in stem:
            stem[k] = _triple_of(stem[k], f"stem.{k}")
    stages = []
    for i, st in enumerate(v.sequence(top["stages"], "stages", error=SpecError)):
        st = dict(_mapping(st, f"stages[{i}]", Stage))
        blocks = []
        for j, b in enumerate(v.sequence(st["blocks"], f"stages[{i}].blocks", error=SpecError)):
            b = dict(_mapping(b, f"stages[{i}].blocks[{j}]", Block))
            for k in ("kernel", "strides"):
                if k in b:
                    b[k] = _triple_of(b[k], f"stages[{i}].blocks[{j}].{k}")
            blocks.append(Block(**b))
        stages.append(Stage(filters=st["filters"], blocks=tuple(blocks)))
    top["stem"] = Stem(**stem)
    top["stages"] = tuple(stages)
    top["head"] = Head(**_mapping(top["head"], "head", Head))
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
