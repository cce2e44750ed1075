"""Latency on a named device, predicted from a latency profile: pure Python, no TensorFlow.

A `LatencyProfile` is data about a device and runtime (like the cost model's constants): for each op
kind the stream model (or the clip model) is made of, its time measured at a few shapes, as points
`(size, ms)` with `size = work + moved` (`work`: multiply-accumulates, or elements for element-wise
ops; `moved`: elements read and written), and a fixed per-call overhead. An op's time is interpolated
linearly in size between the two nearest points (proportional to size beyond the ends): a kind's cost
per unit of size is not constant (small maps pay per-op overheads, large ones miss the caches), and a
table follows it where a linear fit on size cannot. `evaluation.deploy.profile`
measures one on the machine it runs on (`movinas latency profile`); this module only reads it.

`ops(spec, mode)` lists the ops of a spec, each `(kind, shape)`, from the same walk the cost model
and the builder share (`search_space.plan.walk`); the profiler measures the shapes it lists and
`estimate_latency` sums the fits over the same ops in one loop (tests/test_latency.py holds the two
equal). Op kinds, as the one-frame TFLite stream graph (`evaluation.deploy.frame_graph`) runs them:

- `conv_{kh}x{kw}_s{s}`: the stem's dense conv; `pointwise`: every 1×1 conv (expansion, projection,
  skip, head conv); `depthwise_{kh}x{kw}_s{s}`: a spatial depthwise conv (one per temporal tap when
  a 3d conv has a spatial kernel);
- `elementwise`: one add or multiply on a feature map (temporal taps and their partial sums, the SE
  gate, the residual add); `act_{name}`: an activation on a feature map;
- `se`: squeeze-excite on vectors (spatial mean, two small convs, gate activation);
- `avgpool_s{s}`: the skip path's 3×3 average pool; `classifier`: head pool, hidden dense, logits;
- `overhead`: one call of the model, whatever its size (counted once).

Mode `stream` predicts milliseconds per frame (the walk at one frame); `clip` per clip of `frames`
frames, the same ops on every frame (a first approximation of the clip model: not validated).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .plan import walk
from .spec import NUM_CLASSES, ArchSpec

FORMAT = 1  # of the profile file
RUNTIMES = ("tflite", "tflite-int8", "keras")
MODES = ("stream", "clip")


class ProfileError(ValueError):
    """A profile that cannot be read or does not fit what is asked of it (one line)."""


@dataclass(frozen=True)
class LatencyProfile:
    """Per-op-kind latency tables of one runtime on one machine, read from JSON (`read_profile`).

    `kinds`: {kind: ((size, ms), ...)} in increasing size, each op timed alone; `scale`: what whole models
    timed on the device take over the sum of their ops timed alone (ops in a model find colder caches);
    `overhead_ms`: one call;
    `spread`: how noisy the measurements were and how well the fits hold (fractions); `versions`:
    of the runtime and movinas that measured; `command`: the template that ran the measurements
    elsewhere, or None for this machine."""

    runtime: str
    mode: str
    threads: int
    machine: str
    kinds: dict[str, tuple[tuple[float, float], ...]]
    overhead_ms: float
    versions: dict[str, str] = field(default_factory=dict)
    spread: dict[str, float] = field(default_factory=dict)
    space: str = ""
    command: str | None = None
    scale: float = 1.0
    clock: str = "wall"  # what timed the ops: "wall", "thread_cpu" (one thread's CPU time), "remote"
    created: str = ""
    samples: int = 0
    format: int = FORMAT

    def __post_init__(self) -> None:  # the lookup tables of `op_latency`, built once; layers already costed
        object.__setattr__(self, "_tables", {k: _table(v) for k, v in self.kinds.items()})
        object.__setattr__(self, "_layers", {})

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["kinds"] = {k: [list(p) for p in v] for k, v in sorted(self.kinds.items())}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    def at(self, kind: str, size: float) -> float:
        """ms of one op of `kind` whose size (work + moved) is `size`, timed alone (KeyError for a kind
        not profiled)."""
        return _at(self._tables[kind], size)

    def describe(self) -> str:
        """One line: runtime, mode, threads, machine."""
        where = f"via {self.command!r}" if self.command else self.machine
        return f"{self.runtime} {self.mode}, {self.threads} thread(s), {where}"

    def missing(self, kinds) -> list[str]:
        """The kinds of `kinds` this profile has no fit for, sorted."""
        return sorted(set(kinds) - set(self.kinds))


def read_profile(path: str | Path, runtime: str | None = None, mode: str | None = None) -> LatencyProfile:
    """The profile at `path`; `ProfileError` (one line naming the file) when it is unreadable, of
    another format, or of another `runtime` / `mode` than the ones asked for."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"profile {path}: not a readable JSON file ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    profile = profile_from_dict(data, f"profile {path}")
    if runtime is not None and profile.runtime != runtime:
        raise ProfileError(f"profile {path}: measured for runtime {profile.runtime!r}, not {runtime!r}; "
                           f"measure one with movinas latency profile --runtime {runtime}")
    if mode is not None and profile.mode != mode:
        raise ProfileError(f"profile {path}: mode {profile.mode!r}, not {mode!r}")
    return profile


def profile_from_dict(data: Any, where: str = "profile") -> LatencyProfile:
    """Validate and build a profile from its JSON dict (errors name `where` and the field)."""
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: must be a JSON object, found {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise ProfileError(f"{where}: profile format {data.get('format')!r}, this movinas reads format {FORMAT}")
    known = set(LatencyProfile.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"{where}: unknown field {unknown[0]!r}")
    for key, allowed in (("runtime", RUNTIMES), ("mode", MODES)):
        if data.get(key) not in allowed:
            raise ProfileError(f"{where}: {key} {data.get(key)!r}, must be one of {', '.join(allowed)}")
    threads = data.get("threads")
    if type(threads) is not int or threads < 1:
        raise ProfileError(f"{where}: threads {threads!r}, must be a positive integer")
    kinds = data.get("kinds")
    if not isinstance(kinds, dict) or not kinds:
        raise ProfileError(f"{where}: kinds must be a non-empty object of kind: [[size, ms], ...]")
    table = {}
    for kind, points in kinds.items():
        ok = isinstance(points, list) and points and all(
            isinstance(p, list) and len(p) == 2 and _finite(p[0]) and p[0] > 0 and _finite(p[1]) and p[1] >= 0
            for p in points)
        if not ok or any(a[0] >= b[0] for a, b in zip(points, points[1:])):
            raise ProfileError(f"{where}: kinds.{kind}: must be [[size, ms], ...] with sizes > 0 increasing "
                               "and ms >= 0")
        table[str(kind)] = tuple((float(x), float(ms)) for x, ms in points)
    overhead = data.get("overhead_ms")
    if not (_finite(overhead) and overhead >= 0):
        raise ProfileError(f"{where}: overhead_ms {overhead!r}, must be a non-negative number")
    scale = data.get("scale", 1.0)
    if not (_finite(scale) and scale > 0):
        raise ProfileError(f"{where}: scale {scale!r}, must be a positive number")
    rest = {k: data[k] for k in ("machine", "versions", "spread", "space", "command", "scale", "clock", "created",
                                 "samples")
            if k in data}
    return LatencyProfile(runtime=data["runtime"], mode=data["mode"], threads=threads, kinds=table,
                          overhead_ms=float(overhead), **{"machine": "", **rest})


def _finite(x: Any) -> bool:
    return type(x) in (int, float) and math.isfinite(x)


# ---------------------------------------------------------------------------------------------
# the ops of a spec


def _hw(kernel: tuple[int, int, int], strides: tuple[int, int, int]) -> str:
    return f"{kernel[1]}x{kernel[2]}_s{strides[1]}x{strides[2]}"


def ops(spec: ArchSpec, mode: str = "stream", frames: int | None = None, resolution: int | None = None,
        num_classes: int = NUM_CLASSES) -> list[tuple[str, tuple[int, ...]]]:
    """Every op of `spec` as `(kind, shape)`, in network order; shapes start with (t, h, w) of the op's
    input (t = 1 in stream mode). `features(kind, shape)` gives an op's (work, moved)."""
    return [op for part in block_ops(spec, mode, frames, resolution, num_classes) for op in part]


def block_ops(spec: ArchSpec, mode: str = "stream", frames: int | None = None, resolution: int | None = None,
              num_classes: int = NUM_CLASSES) -> list[list[tuple[str, tuple[int, ...]]]]:
    """`ops` grouped as `search_space.Cost.blocks` are: the stem (with the call overhead), each layer,
    the head conv, the classifier (with the head pool)."""
    t = 1 if mode == "stream" else (frames or spec.frames)
    plan = walk(spec, t, resolution)
    act = "act_" + spec.activation
    (ti, hi, wi), (to, ho, wo) = plan.stem_in, plan.stem_out
    f = spec.stem.filters
    parts = [[("overhead", ()),
              ("conv_" + _hw(spec.stem.kernel, spec.stem.strides), (ti, hi, wi, 3, f, *spec.stem.kernel[1:])),
              (act, (to, ho, wo, f))]]
    split = spec.conv_type != "3d"
    for lp in plan.layers:
        kt, kh, kw = lp.kernel
        (ti, hi, wi), (to, ho, wo) = lp.in_shape, lp.out_shape
        e = lp.expand
        dw = ("depthwise_" + _hw(lp.kernel, lp.strides), (ti, hi, wi, e, kh, kw))
        taps = ("elementwise", (to, ho, wo, e))
        out = [("pointwise", (ti, hi, wi, lp.c_in, e)), (act, (ti, hi, wi, e))]
        if split or kt == 1:
            out += [dw, (act, (to, ho, wo, e))]
            if kt > 1:  # k_t multiplies, their partial sums and the bias
                out += [taps] * (2 * kt) + [(act, (to, ho, wo, e))]
        elif (kh, kw) == (1, 1):
            out += [taps] * (2 * kt) + [(act, (to, ho, wo, e))]
        else:  # a depthwise conv per temporal tap, their partial sums
            out += [dw] * kt + [taps] * kt + [(act, (to, ho, wo, e))]
        if lp.se_in:
            out += [("se", (to, ho, wo, e, lp.se_in, lp.se_hidden)), taps]
        out.append(("pointwise", (to, ho, wo, e, lp.c_out)))
        if lp.skip_conv:
            if lp.strides[1:] != (1, 1):
                out.append(("avgpool_" + _hw((1, 3, 3), lp.strides), (ti, hi, wi, lp.c_in)))
            out.append(("pointwise", (to, ho, wo, lp.c_in, lp.c_out)))
        out.append(("elementwise", (to, ho, wo, lp.c_out)))
        parts.append(out)
    t, h, w = plan.head_in
    c, hp = spec.stages[-1].filters, spec.head.filters
    parts += [[("pointwise", (t, h, w, c, hp)), (act, (t, h, w, hp))],
              [("classifier", (t, h, w, hp, spec.head.hidden, num_classes))]]
    return parts


def latency_breakdown(spec: ArchSpec, profile: LatencyProfile, frames: int | None = None,
                      resolution: int | None = None, num_classes: int = NUM_CLASSES) -> list[float]:
    """Predicted ms of each part of `block_ops` (stem with the call overhead, layers, head,
    classifier): they add up to `estimate_latency`."""
    out = []
    for part in block_ops(spec, profile.mode, frames, resolution, num_classes):
        ms = 0.0
        for kind, shape in part:
            if kind == "overhead":
                ms += profile.overhead_ms
                continue
            if kind not in profile.kinds:
                raise _missing(profile, kind, spec)
            ms += op_latency(profile, kind, shape)
        out.append(ms)
    return out


def space_kinds(space, mode: str = "stream", samples: int = 200, seed: int = 0) -> set[str]:
    """The op kinds the architectures of `space` need (a seeded sample; stream mode takes each as
    causal, the stream model of a non-causal space being its causal twin)."""
    out: set[str] = set()
    for spec in _sampled(space, mode, samples, seed):
        out |= kinds_of(spec, mode)
    return out


def _sampled(space, mode: str, samples: int, seed: int):
    """A seeded sample of `space`'s architectures as `mode` runs them (stream: their causal twins)."""
    import random

    rng = random.Random(seed)
    for _ in range(samples):
        spec = space.sample(rng)
        yield spec if mode == "clip" or spec.causal else spec.replace(causal=True)


def size_coverage(profile: LatencyProfile, space, mode: str = "stream", samples: int = 200,
                  seed: int = 0) -> tuple[int, int, int]:
    """(ops below the smallest size the profile timed for their kind, ops above the largest, all ops
    of a kind it has) over a seeded sample of `space`: outside that range `estimate_latency`
    extrapolates in proportion to size, which can be far off (a profile of another space's sizes)."""
    below = above = total = 0
    for spec in _sampled(space, mode, samples, seed):
        for kind, shape in ops(spec, mode):
            points = profile.kinds.get(kind)
            if not points or kind == "overhead":
                continue
            size = sum(features(kind, shape))
            total += 1
            below += size < points[0][0]
            above += size > points[-1][0]
    return below, above, total


def kind_strides(kind: str) -> tuple[int, int]:
    """The spatial strides a conv, depthwise or pool kind is named with (`depthwise_3x3_s2x2`); (1, 1)
    for other kinds."""
    if kind.startswith(("conv_", "depthwise_", "avgpool_")):
        sh, sw = kind.rsplit("_s", 1)[1].split("x")
        return int(sh), int(sw)
    return 1, 1


def features(kind: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """(work, moved) of one op: multiply-accumulates (elements for element-wise ops) and elements read
    plus written."""
    if kind == "overhead":
        return 0, 0
    t, h, w, *rest = shape
    p = t * h * w
    if kind == "pointwise":
        cin, cout = rest
        return p * cin * cout, p * (cin + cout)
    if kind.startswith("conv_") or kind.startswith("depthwise_"):
        sh, sw = kind_strides(kind)
        q = t * -(-h // sh) * -(-w // sw)
        if kind.startswith("conv_"):
            cin, cout, kh, kw = rest
            return q * kh * kw * cin * cout, p * cin + q * cout
        c, kh, kw = rest
        return q * kh * kw * c, (p + q) * c
    if kind.startswith("avgpool_"):
        sh, sw = kind_strides(kind)
        q = t * -(-h // sh) * -(-w // sw)
        return q * 9 * rest[0], (p + q) * rest[0]
    if kind.startswith("act_") or kind == "elementwise":
        return p * rest[0], 0
    if kind == "se":
        e, se_in, hidden = rest
        return hidden * (se_in + e), p * e
    if kind == "classifier":
        hp, hidden, classes = rest
        return hp * hidden + hidden * classes, p * hp
    raise ValueError(f"unknown op kind {kind!r}")


def kinds_of(spec: ArchSpec, mode: str = "stream") -> set[str]:
    """The op kinds `spec` needs (at a tiny input: the kinds do not depend on its size)."""
    return {k for k, _ in ops(spec, mode, frames=1, resolution=max(8, 2 * max_stride(spec)))} - {"overhead"}


def max_stride(spec: ArchSpec) -> int:
    """The product of the spatial strides of `spec` (the input size at which every map is 1×1)."""
    n = spec.stem.strides[1]
    for stage in spec.stages:
        for b in stage.blocks:
            n *= b.strides[1]
    return n


# ---------------------------------------------------------------------------------------------
# the estimate


def op_latency(profile: LatencyProfile, kind: str, shape: tuple[int, ...]) -> float:
    """Predicted ms of one op of `ops` in a model: timed alone, times the profile's `scale` (KeyError
    for a kind the profile lacks)."""
    return profile.at(kind, sum(features(kind, shape))) * profile.scale


def estimate_latency(spec: ArchSpec, profile: LatencyProfile, frames: int | None = None,
                     resolution: int | None = None, num_classes: int = NUM_CLASSES) -> float:
    """Predicted milliseconds per frame (stream profile) or per clip of `frames` (clip profile) of
    `spec` at `resolution`² (spec defaults), on the profile's device and runtime: the call overhead
    plus `op_latency` of every op of `ops(spec)`, in one pass over the walk (hot in screening).
    `ProfileError` names the first op kind the profile has no table for."""
    t = 1 if profile.mode == "stream" else (frames or spec.frames)
    plan = walk(spec, t, resolution)
    try:
        ms = _sum(spec, plan, profile._tables, profile._layers, num_classes)
    except KeyError as exc:
        raise _missing(profile, exc.args[0], spec) from None
    return ms * profile.scale + profile.overhead_ms


def _missing(profile: LatencyProfile, kind: str, spec: ArchSpec) -> ProfileError:
    return ProfileError(f"profile ({profile.describe()}) has no fit for op kind {kind!r} that spec {spec.name!r} "
                        f"needs; profile a space with its kernels and strides (movinas latency profile --space)")


def _table(points) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...], float, float]:
    """(sizes, ms, slopes between points, ms per unit below the first and above the last point)."""
    xs, ms = tuple(x for x, _ in points), tuple(m for _, m in points)
    slopes = tuple((ms[i + 1] - ms[i]) / (xs[i + 1] - xs[i]) for i in range(len(xs) - 1)) + (0.0,)
    return xs, ms, slopes, ms[0] / xs[0], ms[-1] / xs[-1]


def _at(table, x: float) -> float:
    """ms of an op of size `x`: linear between the two nearest points, proportional to size past the ends."""
    xs, ms, slopes, first, last = table
    i = bisect_right(xs, x)
    if i == 0:
        return first * x
    if i == len(xs):
        return last * x
    return ms[i - 1] + slopes[i - 1] * (x - xs[i - 1])


MEMO = 1 << 16  # layers whose time a profile keeps (then it starts over): screening meets the same layers often


def _sum(spec: ArchSpec, plan, k: dict, memo: dict, num_classes: int) -> float:
    """Milliseconds of every op of `plan` but the call overhead: the sizes of `features` written
    inline, in the order of `block_ops`; a layer's time is kept in `memo` by its shapes."""
    at = _at
    act, pw, ew = k["act_" + spec.activation], k["pointwise"], k["elementwise"]
    (ti, hi, wi), (to, ho, wo) = plan.stem_in, plan.stem_out
    f = spec.stem.filters
    _, kh, kw = spec.stem.kernel
    q = to * ho * wo
    ms = at(k["conv_" + _hw(spec.stem.kernel, spec.stem.strides)], q * kh * kw * 3 * f + ti * hi * wi * 3 + q * f)
    ms += at(act, q * f)
    split = spec.conv_type != "3d"
    se = k["se"] if spec.se_type != "none" else None
    tag = (split, spec.activation, se is not None)
    for lp in plan.layers:
        key = (tag, lp[3:13])  # channels, kernel, strides, shapes, skip, SE widths
        layer = memo.get(key)
        if layer is None:
            layer = _layer(k, (act, pw, ew, se), split, key[1])
            if len(memo) >= MEMO:
                memo.clear()
            memo[key] = layer
        ms += layer
    t, h, w = plan.head_in
    p = t * h * w
    c, hp, hidden = spec.stages[-1].filters, spec.head.filters, spec.head.hidden
    ms += at(pw, p * c * hp + p * (c + hp)) + at(act, p * hp)
    return ms + at(k["classifier"], hp * hidden + hidden * num_classes + p * hp)


def _layer(k: dict, tables: tuple, split: bool, fields: tuple) -> float:
    """Milliseconds of one layer's ops (see `block_ops`); `fields`: `LayerPlan` from c_in to se_hidden."""
    at = _at
    act, pw, ew, se = tables
    c_in, c_out, e, kernel, strides, in_shape, out_shape, skip, se_in, hid = fields
    kt, kh, kw = kernel
    (ti, hi, wi), (to, ho, wo) = in_shape, out_shape
    p_in, p_out = ti * hi * wi, to * ho * wo
    e1, e2 = p_in * e, p_out * e
    ms = at(pw, e1 * c_in + p_in * c_in + e1) + at(act, e1)  # expansion, activation
    if not split and kt > 1 and kh == 1 and kw == 1:  # k_t multiplies and their sums, no conv
        ms += 2 * kt * at(ew, e2) + at(act, e2)
    else:
        conv = at(k["depthwise_" + _hw(kernel, strides)], e2 * kh * kw + e1 + e2)
        if split or kt == 1:
            ms += conv + at(act, e2)
            if kt > 1:
                ms += 2 * kt * at(ew, e2) + at(act, e2)
        else:  # a depthwise conv per temporal tap, their partial sums
            ms += kt * (conv + at(ew, e2)) + at(act, e2)
    if se_in:
        ms += at(se, hid * (se_in + e) + e2) + at(ew, e2)
    o = p_out * c_out
    ms += at(pw, e2 * c_out + e2 + o) + at(ew, o)  # projection, residual add
    if skip:
        if strides[1] != 1 or strides[2] != 1:
            ms += at(k["avgpool_" + _hw((1, 3, 3), strides)], p_out * 9 * c_in + (p_in + p_out) * c_in)
        ms += at(pw, p_out * c_in * c_out + p_out * c_in + o)
    return ms
