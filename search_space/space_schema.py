"""The search-space YAML schema: the per-part dataclasses and the reader that validates a dict
into them, naming the field path and the allowed values of a bad field. Documented in
docs/search_space.md; `SearchSpace` (space.py) is built from what `parse_space` returns.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from .spec import ArchSpec, SpecError

BUILTIN_SPACES = ("paper", "small")

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
    if isinstance(source, Path):
        if not source.is_file():
            raise SpecError(f"{source}: no such file")
        return source.read_text(), str(source)
    text = str(source)
    key = text.strip()
    if "\n" in key:
        return text, "search space"
    if key in BUILTIN_SPACES:
        path = resources.files("search_space") / "spaces" / f"{key}.yaml"
        return path.read_text(), f"{key}.yaml"
    if key.endswith((".yaml", ".yml")) or Path(key).is_file():
        if not Path(key).is_file():
            raise SpecError(f"{key}: no such file")
        return Path(key).read_text(), key
    return text, "search space"


def _mapping(path: str, data: Any, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(data, dict):
        raise SpecError(f"{path or 'search space'}: {type(data).__name__}, must be a mapping")
    for key in data:
        if key not in allowed:
            raise SpecError(f"{path + '.' if path else ''}{key}: unknown field, allowed: {', '.join(allowed)}")
    for key in required:
        if key not in data:
            raise SpecError(f"{path + '.' if path else ''}{key}: missing")
    return data


def _int(path: str, value: Any, lo: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{path}: {value!r}, must be an integer >= {lo}")
    if value < lo:
        raise SpecError(f"{path}: {value}, must be >= {lo}")
    return value


def _positive(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise SpecError(f"{path}: {value!r}, must be a number > 0")
    return float(value)


def parse_triple(path: str, value: Any) -> Triple:
    """'TxHxW' or [t, h, w], every size >= 1."""
    parts = value.lower().split("x") if isinstance(value, str) else value
    try:
        if not isinstance(parts, (list, tuple)) or len(parts) != 3:
            raise ValueError
        out = tuple(int(p) if isinstance(p, str) else p for p in parts)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in out):
            raise ValueError
    except ValueError:
        raise SpecError(f"{path}: {value!r}, must be 'TxHxW' (three integers >= 1, e.g. '3x3x3')") from None
    return out  # type: ignore[return-value]


def _choices(path: str, value: Any, item) -> tuple:
    """A value or a list of choices, each checked by `item(path, v)`; no duplicates."""
    if not isinstance(value, (list, tuple)):
        return (item(path, value),)
    if not value:
        raise SpecError(f"{path}: empty, must list at least one choice")
    out = tuple(item(f"{path}[{i}]", v) for i, v in enumerate(value))
    for i, v in enumerate(out):
        if v in out[:i]:
            raise SpecError(f"{path}[{i}]: {value[i]!r} listed twice")
    return out


def _depth(path: str, value: Any) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise SpecError(f"{path}: {value!r}, must be an integer or [min, max]")
    lo, hi = (_int(f"{path}[{i}]", v) for i, v in enumerate(value))
    if lo > hi:
        raise SpecError(f"{path}: [{lo}, {hi}], min must be <= max")
    return lo, hi


def _option(name: str):
    default = OPTION_DEFAULTS[name]

    def item(path: str, v: Any) -> Any:  # values are checked by ArchSpec in _check_combinations
        if isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            return float(v)
        if v is None or isinstance(v, (list, dict)):
            raise SpecError(f"{path}: {v!r}, must be a single value (default {default!r})")
        return v

    return item


def parse_space(data: Any) -> dict[str, Any]:
    """Validate a search-space dict; return the keyword arguments of `SearchSpace`."""
    top = _mapping("", data, _TOP, required=("stages",))
    stem = _mapping("stem", top.get("stem", {}), _STEM)
    head = _mapping("head", top.get("head", {}), _HEAD)
    stages_raw = top["stages"]
    if not isinstance(stages_raw, list) or not stages_raw:
        raise SpecError(f"stages: {stages_raw!r}, must be a non-empty list of stages")
    stages = []
    for i, raw in enumerate(stages_raw):
        p = f"stages[{i}]"
        st = _mapping(p, raw, _STAGE, required=("width", "depth", "kernels", "expand_ratios"))
        stages.append(StageSpace(
            width=_int(f"{p}.width", st["width"]),
            depth=_depth(f"{p}.depth", st["depth"]),
            kernels=_choices(f"{p}.kernels", st["kernels"], parse_triple),
            expand_ratios=_choices(f"{p}.expand_ratios", st["expand_ratios"], _positive),
            width_mult=_choices(f"{p}.width_mult", st.get("width_mult", 1.0), _positive),
            strides=parse_triple(f"{p}.strides", st.get("strides", "1x1x1")),
        ))
    filters, ratio = head.get("filters"), head.get("ratio")
    if filters is not None and ratio is not None:
        raise SpecError("head: give filters or ratio, not both")
    name = top.get("name", "custom")
    if not isinstance(name, str):
        raise SpecError(f"name: {name!r}, must be a string")
    return dict(
        stages=tuple(stages),
        stem=StemSpace(
            width=_int("stem.width", stem.get("width", 16)),
            width_mult=_choices("stem.width_mult", stem.get("width_mult", 1.0), _positive),
            kernel=parse_triple("stem.kernel", stem.get("kernel", "1x3x3")),
            strides=parse_triple("stem.strides", stem.get("strides", "1x2x2")),
        ),
        head=HeadSpace(
            filters=None if filters is None else _int("head.filters", filters),
            ratio=None if filters is not None else _positive("head.ratio", 4.45 if ratio is None else ratio),
            hidden=_int("head.hidden", head.get("hidden", 2048)),
        ),
        name=name,
        frames=_choices("frames", top.get("frames", 8), _int),
        resolution=_choices("resolution", top.get("resolution", 172), _int),
        width_mult=_choices("width_mult", top.get("width_mult", 1.0), _positive),
        options={k: _choices(k, top[k], _option(k)) for k in OPTIONS if k in top},
    )


__all__ = ["BUILTIN_SPACES", "OPTIONS", "OPTION_DEFAULTS", "HeadSpace", "StageSpace", "StemSpace",
           "kstr", "parse_space", "parse_triple", "read_source"]
