"""`SearchSpace`: the axes a search varies, read from YAML, drawn through Optuna or a seeded RNG.

A space is data (frozen dataclasses, equal when their `to_dict()` are equal). `sample` draws a
STATIC set of categorical parameters (the same names in every trial, whatever the sampled depths:
the slots of unused layers are drawn and ignored) and `decode` turns those parameters into an
`ArchSpec`; both sampling paths go through `decode`, so a stored trial rebuilds without Optuna.
The YAML schema is read by space_schema.py; it and the parameter names are documented in
docs/search_space.md.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from . import validate
from .space_schema import (
    BUILTIN_SPACES,
    OPTION_DEFAULTS,
    OPTIONS,
    HeadSpace,
    StageSpace,
    StemSpace,
    kstr,
    parse_space,
    read_source,
)
from .spec import ArchSpec, Block, Head, SpecError, Stage, Stem, make_divisible


@dataclass(frozen=True)
class SearchSpace:
    """Choices for every axis of an `ArchSpec`. Build with `from_yaml` / `from_dict`."""

    stages: tuple[StageSpace, ...]
    stem: StemSpace = StemSpace()
    head: HeadSpace = HeadSpace()
    name: str = ArchSpec.name
    frames: tuple[int, ...] = (ArchSpec.frames,)  # the defaults of ArchSpec
    resolution: tuple[int, ...] = (ArchSpec.resolution,)
    width_mult: tuple[float, ...] = (1.0,)
    options: dict[str, tuple] = field(default_factory=dict, hash=False)  # ArchSpec option -> choices

    def __post_init__(self) -> None:
        full = {k: tuple(self.options.get(k, (OPTION_DEFAULTS[k],))) for k in OPTIONS}
        object.__setattr__(self, "options", full)
        _check_combinations(self)

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any) -> SearchSpace:
        return cls(**parse_space(data))

    @classmethod
    def from_yaml(cls, source: str | Path = "paper") -> SearchSpace:
        """A built-in space name (`paper`, `small`), a YAML file path, or YAML text."""
        text, where = read_source(source)
        data = validate.load_yaml(text, where, error=SpecError)
        if isinstance(data, str) and "\n" not in text.strip():
            raise SpecError(f"search space {validate.quote(text.strip())}: not a built-in space "
                            f"({', '.join(BUILTIN_SPACES)}), a YAML file or YAML text")
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain dict (every field, every choice list); two spaces are equal iff these are."""
        return {
            "name": self.name,
            "frames": list(self.frames),
            "resolution": list(self.resolution),
            "width_mult": list(self.width_mult),
            **{k: list(v) for k, v in self.options.items()},
            "stem": {"width": self.stem.width, "width_mult": list(self.stem.width_mult),
                     "kernel": kstr(self.stem.kernel), "strides": kstr(self.stem.strides)},
            "stages": [{"width": s.width, "width_mult": list(s.width_mult), "depth": list(s.depth),
                        "strides": kstr(s.strides), "kernels": [kstr(k) for k in s.kernels],
                        "expand_ratios": list(s.expand_ratios)} for s in self.stages],
            "head": {"filters": self.head.filters, "ratio": self.head.ratio, "hidden": self.head.hidden},
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def diff(self, other: SearchSpace) -> list[str]:
        """Human-readable differences, e.g. `stages[1].depth: [1, 3] vs [1, 4]`; empty when equal."""
        return _diff(self.to_dict(), other.to_dict(), "")

    # -- the parameters --------------------------------------------------------------------------
    @cached_property
    def _axes(self) -> dict[str, tuple]:
        """Every axis, fixed ones (a single choice) included, in a stable order."""
        axes: dict[str, tuple] = {"frames": self.frames, "resolution": self.resolution,
                                  "width_mult": self.width_mult, **self.options,
                                  "stem_width_mult": self.stem.width_mult}
        for i, st in enumerate(self.stages, 1):
            axes[f"s{i}_width_mult"] = st.width_mult
            axes[f"s{i}_depth"] = tuple(range(st.depth[0], st.depth[1] + 1))
            kernels = tuple(kstr(k) for k in st.kernels)
            for j in range(1, st.depth[1] + 1):
                axes[f"s{i}_b{j}_kernel"] = kernels
                axes[f"s{i}_b{j}_expand"] = st.expand_ratios
        return axes

    def param_choices(self) -> dict[str, list]:
        """The searched parameters (more than one choice) and their choices: the static set that
        every trial suggests, in the form `optuna.samplers.GridSampler` takes."""
        return {k: list(v) for k, v in self._axes.items() if len(v) > 1}

    def grid_size(self) -> int:
        """Points of the full parameter grid (masked slots included), what GridSampler enumerates."""
        return math.prod(len(v) for v in self.param_choices().values())

    def size(self) -> int:
        """Exact number of distinct architectures (`ArchSpec`s): masked slots do not multiply and
        choices that round to the same filters count once."""
        n = math.prod(len(self._axes[k]) for k in ("frames", "resolution", *OPTIONS))
        # A distinct architecture is one filters value per part (stem, stages) with a block sequence
        # per stage; it exists when some global multiplier reaches all its filters. Walk the parts
        # keeping, per set (bitmask) of multipliers still consistent, the number of partial choices:
        # each tuple of filters follows one path, so it is counted once, in polynomial time.
        states = {(1 << len(self.width_mult)) - 1: 1}
        parts = [(self.stem.width, self.stem.width_mult, None)] + [(s.width, s.width_mult, s) for s in self.stages]
        for width, mults, stage in parts:
            reached: dict[int, int] = {}  # filters -> bitmask of global multipliers reaching them
            for gi, g in enumerate(self.width_mult):
                for m in mults:
                    f = stage_filters(width, g, m)
                    reached[f] = reached.get(f, 0) | (1 << gi)
            weight = {f: 1 if stage is None else _stage_count(stage, f) for f in reached}
            nxt: dict[int, int] = {}
            for mask, count in states.items():
                for f, gm in reached.items():
                    if mask & gm:
                        nxt[mask & gm] = nxt.get(mask & gm, 0) + count * weight[f]
            states = nxt
        return n * sum(states.values())

    # -- sampling --------------------------------------------------------------------------------
    def sample(self, source: Any, name: str = "sampled") -> ArchSpec:
        """Draw an architecture through an Optuna trial (anything with `suggest_categorical`) or
        without Optuna from a `numpy.random.Generator`, a `random.Random` or an int seed."""
        choices = self.param_choices()
        if hasattr(source, "suggest_categorical"):
            params = {k: source.suggest_categorical(k, c) for k, c in choices.items()}
        else:
            pick = _picker(source)
            params = {k: c[pick(len(c))] for k, c in choices.items()}
        return self.decode(params, name=name)

    def decode(self, params: Mapping[str, Any], name: str = "sampled") -> ArchSpec:
        """The architecture of `params` (as Optuna stores them, `trial.params`). Fixed axes may be
        left out; slots beyond a stage's depth are not read; unknown keys are ignored."""
        axes = self._axes

        def get(key: str) -> Any:
            choices = axes[key]
            if key in params:
                value = params[key]
                for c in choices:
                    if c == value and isinstance(c, bool) == isinstance(value, bool):
                        return c
                raise SpecError(f"params.{key}: {value!r}, must be one of {list(choices)}")
            if len(choices) == 1:
                return choices[0]
            raise SpecError(f"params.{key}: missing, must be one of {list(choices)}")

        return self._build(get, name)

    def _build(self, get, name: str) -> ArchSpec:
        kernel_of = {kstr(k): k for st in self.stages for k in st.kernels}
        g = get("width_mult")
        stem = Stem(stage_filters(self.stem.width, g, get("stem_width_mult")), self.stem.kernel, self.stem.strides)
        stages = []
        for i, st in enumerate(self.stages, 1):
            f = stage_filters(st.width, g, get(f"s{i}_width_mult"))
            blocks = tuple(
                Block(expand_filters(get(f"s{i}_b{j}_expand"), f), kernel_of[get(f"s{i}_b{j}_kernel")],
                      st.strides if j == 1 else (1, 1, 1))
                for j in range(1, get(f"s{i}_depth") + 1))
            stages.append(Stage(f, blocks))
        head_filters = self.head.filters or make_divisible(self.head.ratio * stages[-1].filters)
        return ArchSpec(stem=stem, stages=tuple(stages), head=Head(head_filters, self.head.hidden), name=name,
                        frames=get("frames"), resolution=get("resolution"), **{k: get(k) for k in OPTIONS})

    def nearest(self, spec: ArchSpec) -> dict[str, Any]:
        """Parameters of the point of this space closest to `spec` (e.g. a preset, to seed a study
        with `study.enqueue_trial`): nearest frames, resolution, filters, depth (clipped), kernel
        and expansion width, compared on a log scale; options kept when offered."""
        if not isinstance(spec, ArchSpec):
            raise SpecError(f"nearest: {validate.quote(spec)}, must be an ArchSpec")
        v: dict[str, Any] = {k: _closest(self._axes[k], getattr(spec, k)) for k in ("frames", "resolution")}
        for k in OPTIONS:
            value = getattr(spec, k)
            v[k] = value if value in self.options[k] else self.options[k][0]
        src = [spec.stages[min(i, len(spec.stages) - 1)] for i in range(len(self.stages))]
        parts = [(self.stem.width, self.stem.width_mult, spec.stem.filters)]
        parts += [(st.width, st.width_mult, s.filters) for st, s in zip(self.stages, src)]
        best = None
        for g in self.width_mult:
            mults = [min(ms, key=lambda m, w=w, t=t: _dist(stage_filters(w, g, m), t)) for w, ms, t in parts]
            err = sum(_dist(stage_filters(w, g, m), t) for (w, _, t), m in zip(parts, mults))
            if best is None or err < best[0]:
                best = (err, g, mults)
        _, v["width_mult"], mults = best
        v["stem_width_mult"] = mults[0]
        for i, (st, s, m) in enumerate(zip(self.stages, src, mults[1:]), 1):
            f = stage_filters(st.width, v["width_mult"], m)
            v[f"s{i}_width_mult"] = m
            v[f"s{i}_depth"] = min(max(len(s.blocks), st.depth[0]), st.depth[1])
            for j in range(1, st.depth[1] + 1):
                b = s.blocks[min(j, len(s.blocks)) - 1]
                k = min(st.kernels, key=lambda k, b=b: sum(_dist(x, y) for x, y in zip(k, b.kernel)))
                v[f"s{i}_b{j}_kernel"] = kstr(k)
                v[f"s{i}_b{j}_expand"] = min(st.expand_ratios, key=lambda r, f=f, b=b: _dist(expand_filters(r, f), b.expand))
        return {k: v[k] for k in self.param_choices()}


# ---------------------------------------------------------------------------------------------
# the arithmetic shared by decode, size and nearest


def stage_filters(width: int, global_mult: float, mult: float) -> int:
    return make_divisible(width * global_mult * mult)


def expand_filters(ratio: float, filters: int) -> int:
    return make_divisible(ratio * filters)


def _stage_count(st: StageSpace, filters: int) -> int:
    """Distinct block sequences of a stage of `filters` output channels."""
    per_layer = len(st.kernels) * len({expand_filters(r, filters) for r in st.expand_ratios})
    return sum(per_layer**d for d in range(st.depth[0], st.depth[1] + 1))


def _dist(a: float, b: float) -> float:
    return abs(math.log(a / b))


def _closest(choices: tuple, target: float) -> Any:
    return min(choices, key=lambda c: abs(c - target))


def _picker(source: Any):
    if isinstance(source, int) and not isinstance(source, bool):
        return random.Random(source).randrange
    if isinstance(source, random.Random):
        return source.randrange
    if hasattr(source, "integers"):  # numpy.random.Generator
        return lambda n: int(source.integers(n))
    raise SpecError(f"sample: {validate.quote(source)}, must be an Optuna trial, a numpy Generator, "
                    "a random.Random or an int seed")


def _check_combinations(space: SearchSpace) -> None:
    """Let ArchSpec judge every combination of option choices on the space's smallest point."""
    if True in space.options["causal"]:
        for i, st in enumerate(space.stages):
            if st.strides[0] != 1:
                raise SpecError(f"stages[{i}].strides: temporal stride {st.strides[0]}, must be 1 when causal")
    axes = space._axes
    try:  # the widest point: every width, depth and ratio at its largest must still be a valid spec
        space._build(lambda k: OPTION_DEFAULTS[k] if k in OPTIONS else max(axes[k]) if "kernel" not in k
                     else axes[k][0], "largest")
    except SpecError as exc:
        raise SpecError(f"{exc} (in the space's widest architecture: reduce the widths, multipliers or "
                        "ratios)") from None
    probe = space._build(lambda k: OPTION_DEFAULTS[k] if k in OPTIONS else axes[k][0], "probe")
    names = [k for k in OPTIONS if len(space.options[k]) > 1]
    for combo in itertools.product(*(space.options[k] for k in names)):
        values = {k: space.options[k][0] for k in OPTIONS} | dict(zip(names, combo))
        try:
            probe.replace(**values)
        except SpecError as exc:
            key, _, rest = str(exc).partition(":")
            when = ", ".join(f"{k}: {v!r}" for k, v in zip(names, combo))
            if key in names:
                key = f"{key}[{space.options[key].index(values[key])}]"
            raise SpecError(f"{key}:{rest}" + (f" (in the combination {when})" if when else "")) from None


def _diff(a: Any, b: Any, path: str) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                out.append(f"{p}: {a.get(k, '(absent)')!r} vs {b.get(k, '(absent)')!r}")
            else:
                out += _diff(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list) and a and b and isinstance(a[0], dict):
        out = [f"{path}: {len(a)} entries vs {len(b)} entries"] if len(a) != len(b) else []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


__all__ = ["BUILTIN_SPACES", "HeadSpace", "SearchSpace", "StageSpace", "StemSpace"]
