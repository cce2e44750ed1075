"""The search-space YAML schema: the per-part dataclasses and the reader that validates a dict
into them, naming the field path and the allowed values of a bad field. Documented in
docs/search_space.md; `SearchSpace` (space.py) is built from what `parse_space` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from . import validate as v
from .spec import MAX_CHANNELS, MAX_FRAMES, MAX_KERNEL, MAX_RESOLUTION, ArchSpec, SpecError

BUILTIN_SPACES = ("paper", "small", "bench", "bench-large")  # search_space/spaces/<name>.yaml

# What a space may ask for: beyond these, counting, sampling or building would not finish.
MAX_CHOICES = 64  # per axis
MAX_STAGES = 16
MAX_STAGE_DEPTH = 32  # layers per stage
MAX_MULT = 100.0  # width multipliers, expansion and head ratios

Triple = tuple[int, int, int]

# Every global option of ArchSpec may be fixed (a value) or searched (a list); the parameter is
# named after the field. Derived from ArchSpec so a new option is searchable at once.
OPTIONS = tuple(f.name for f in fields(ArchSpec)
                if f.name not in ("stem", "stages", "head", "name", "frames", "resolution"))
OPTION_DEFAULTS = {f.name: f.default for f in fields(ArchSpec) if f.name in OPTIONS}


@dataclass(frozen=True)
class StemSpace:
    """Stem conv: base width scaled by the global and the stem's own multiplier."""

    width: int = 16
    width_mult: tuple[float, ...] = (1.0,)
    kernel: Triple = (1, 3, 3)
    strides: Triple = (1, 2, 2)


@dataclass(frozen=True)
class StageSpace:
    """One stage: depth range, width choices and the per-layer kernel and expansion choices."""

    width: int
    depth: tuple[int, int]
    kernels: tuple[Triple, ...]
    expand_ratios: tuple[float, ...]
    width_mult: tuple[float, ...] = (1.0,)
    strides: Triple = (1, 1, 1)  # of the stage's first layer; the others have stride 1


@dataclass(frozen=True)
class HeadSpace:
    """Head conv width: fixed `filters`, or `ratio` × the last stage's filters (rounded to 8)."""

    ratio: float | None = 4.45
    filters: int | None = None
    hidden: int = 2048


def kstr(t: Triple) -> str:
    return "x".join(str(v) for v in t)


# ---------------------------------------------------------------------------------------------
# reading and validation


_TOP = ("name", "frames", "resolution", "width_mult", *OPTIONS, "stem", "stages", "head")
_STEM = ("width", "width_mult", "kernel", "strides")
_STAGE = ("width", "width_mult", "depth", "strides", "kernels", "expand_ratios")
_HEAD = ("filters", "ratio", "hidden")


def read_source(source: str | Path) -> tuple[str, str]:
    """(YAML text, name for messages) of a built-in space name, a file path or YAML text."""
    if isinstance(source, str) and source.strip() in BUILTIN_SPACES:
        key = source.strip()
        return (resources.files("search_space") / "spaces" / f"{key}.yaml").read_text(), f"{key}.yaml"
    return v.path_or_text(source, "search space", error=SpecError)


def _mapping(value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{path or 'search space'}: {v.quote(value)}, must be a mapping")
    return v.mapping(value, path, allowed, required, error=SpecError)


def _int(hi: int):
    return lambda value, path: v.integer(value, path, 1, hi, error=SpecError)


def _positive(value: Any, path: str) -> float:
    return float(v.number(value, path, 0, MAX_MULT, lo_open=True, error=SpecError))


def parse_triple(value: Any, path: str) -> Triple:
    """'TxHxW' or [t, h, w] (or one integer for all three), every size in [1, MAX_KERNEL]."""
    return v.triple(value, path, 1, MAX_KERNEL, "stride" if path.endswith("strides") else "size", error=SpecError)


def _choices(value: Any, path: str, item) -> tuple:
    """A value or a list of at most MAX_CHOICES choices, each checked by `item(v, path)`; no duplicates."""
    if not isinstance(value, (list, tuple)):
        return (item(value, path),)
    if not value:
        raise SpecError(f"{path}: empty, must list at least one choice")
    if len(value) > MAX_CHOICES:
        raise SpecError(f"{path}: {len(value)} choices, at most {MAX_CHOICES} allowed")
    out = tuple(item(x, f"{path}[{i}]") for i, x in enumerate(value))
    for i, x in enumerate(out):
        if x in out[:i]:
            raise SpecError(f"{path}[{i}]: {v.quote(value[i])} listed twice")
    return out


def _depth(value: Any, path: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{path}: {v.quote(value)}, must be an integer or [min, max]")
    lo, hi = (_int(MAX_STAGE_DEPTH)(x, f"{path}[{i}]") for i, x in enumerate(value))
    if lo > hi:
        raise SpecError(f"{path}: [{lo}, {hi}], min must be <= max")
    return lo, hi


def _option(name: str):
    default = OPTION_DEFAULTS[name]

    def item(x: Any, path: str) -> Any:  # values are checked by ArchSpec in _check_combinations
        if isinstance(default, float) and isinstance(x, int) and not isinstance(x, bool):
            return float(x)
        if x is None or isinstance(x, (list, dict)):
            raise SpecError(f"{path}: {v.quote(x)}, must be a single value (default {default!r})")
        return x

    return item


_STEM_D, _HEAD_D, _STAGE_D = StemSpace(), HeadSpace(), {f.name: f.default for f in fields(StageSpace)}


def parse_space(data: Any) -> dict[str, Any]:
    """Validate a search-space dict; return the keyword arguments of `SearchSpace`."""
    top = _mapping(data, "", _TOP, required=("stages",))
    v.check_size(data, "search space", error=SpecError)
    stem = _mapping(top.get("stem", {}), "stem", _STEM)
    head = _mapping(top.get("head", {}), "head", _HEAD)
    stages_raw = top["stages"]
    if not isinstance(stages_raw, list) or not stages_raw or len(stages_raw) > MAX_STAGES:
        raise SpecError(f"stages: {v.quote(stages_raw)}, must be a non-empty list of at most {MAX_STAGES} stages")
    stages = []
    for i, raw in enumerate(stages_raw):
        p = f"stages[{i}]"
        st = _mapping(raw, p, _STAGE, required=("width", "depth", "kernels", "expand_ratios"))
        stages.append(StageSpace(
            width=_int(MAX_CHANNELS)(st["width"], f"{p}.width"),
            depth=_depth(st["depth"], f"{p}.depth"),
            kernels=_choices(st["kernels"], f"{p}.kernels", parse_triple),
            expand_ratios=_choices(st["expand_ratios"], f"{p}.expand_ratios", _positive),
            width_mult=_choices(st.get("width_mult", _STAGE_D["width_mult"]), f"{p}.width_mult", _positive),
            strides=parse_triple(st.get("strides", _STAGE_D["strides"]), f"{p}.strides"),
        ))
    filters, ratio = head.get("filters"), head.get("ratio")
    if filters is not None and ratio is not None:
        raise SpecError("head: give filters or ratio, not both")
    return dict(
        stages=tuple(stages),
        stem=StemSpace(
            width=_int(MAX_CHANNELS)(stem.get("width", _STEM_D.width), "stem.width"),
            width_mult=_choices(stem.get("width_mult", _STEM_D.width_mult), "stem.width_mult", _positive),
            kernel=parse_triple(stem.get("kernel", _STEM_D.kernel), "stem.kernel"),
            strides=parse_triple(stem.get("strides", _STEM_D.strides), "stem.strides"),
        ),
        head=HeadSpace(
            filters=None if filters is None else _int(MAX_CHANNELS)(filters, "head.filters"),
            ratio=None if filters is not None else _positive(_HEAD_D.ratio if ratio is None else ratio, "head.ratio"),
            hidden=_int(MAX_CHANNELS)(head.get("hidden", _HEAD_D.hidden), "head.hidden"),
        ),
        options={k: _choices(top[k], k, _option(k)) for k in OPTIONS if k in top},
        **{k: check(top[k], k) for k, check in _GLOBAL.items() if k in top},  # absent: SearchSpace's defaults
    )


_GLOBAL = {
    "name": lambda x, path: v.string(x, path, error=SpecError),
    "frames": lambda x, path: _choices(x, path, _int(MAX_FRAMES)),
    "resolution": lambda x, path: _choices(x, path, _int(MAX_RESOLUTION)),
    "width_mult": lambda x, path: _choices(x, path, _positive),
}


__all__ = ["BUILTIN_SPACES", "MAX_CHOICES", "MAX_STAGES", "MAX_STAGE_DEPTH", "MAX_MULT", "OPTIONS",
           "OPTION_DEFAULTS", "HeadSpace", "StageSpace", "StemSpace", "kstr", "parse_space", "parse_triple",
           "read_source"]
