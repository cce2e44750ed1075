"""Analytic costs of an `ArchSpec`: parameters, multiply-accumulates, peak activation memory and
stream-state size. Pure Python (no TensorFlow), fast enough to screen millions of candidates.

What is counted:

- `params`: exactly Keras' `count_params()` of `build_model(spec)`: conv kernels, batch-norm
  gamma/beta and moving mean/variance (4 per channel), SE and classifier biases, one ReZero scale
  per layer, one positional-encoding scale per layer when enabled.
- `macs`: multiply-accumulates of every convolution and dense layer (stem, expansion, depthwise,
  SE convs, projection, skip convs, head conv, classifier), batch 1, at the given input size.
  Batch norm is taken as folded into the preceding conv. Element-wise work (activations, SE
  pooling and gating, residual adds, skip pooling) is counted separately in `elementwise`.
  `flops = 2 × macs`.
- `activation_bytes`: the peak, over the ops of a forward pass at batch 1 in float32, of the
  tensors an op reads and writes plus the block input held for the residual.
- `state_bytes`: stream buffers of a causal spec, 4 bytes per element: per causal temporal conv
  its last k_t − 1 input frames; per cumulative pool (SE of type `3d` / `2plus3d`, head) a running
  sum and an int32 frame count; per layer with positional encoding a frame count. 0 for non-causal
  specs. `state_floats` counts the float elements alone (the figure MoViNet's docs quote).
"""

from __future__ import annotations

from typing import NamedTuple

from . import validate as v
from .plan import Plan, walk
from .spec import MAX_CHANNELS, MAX_FRAMES, MAX_RESOLUTION, NUM_CLASSES, ArchSpec, SpecError

BYTES = 4  # float32


class BlockCost(NamedTuple):
    """Cost of one part of the network (`stem`, `s2.b1` = stage 2 block 1 counted from 1 as the search parameters are, `head`, `classifier`)."""

    name: str
    params: int
    macs: int
    elementwise: int
    activation_bytes: int  # peak inside this part
    state_bytes: int
    out_shape: tuple[int, int, int, int]  # (t, h, w, channels)


class Cost(NamedTuple):
    params: int
    macs: int
    flops: int
    activation_bytes: int
    state_bytes: int
    state_floats: int
    state_tensors: int
    elementwise: int
    blocks: tuple[BlockCost, ...] = ()

    def as_dict(self) -> dict:
        d = self._asdict()
        d["blocks"] = [b._asdict() for b in self.blocks]
        return d


COST_NAMES = tuple(f for f in Cost._fields if f != "blocks")  # the one list of cost names


def _layers(spec: ArchSpec, plan: Plan, parts: list | None) -> tuple[int, int, int, int, int, int, int]:
    """Sum over the layers of `plan`: (params, macs, elementwise, peak elements, state floats, state
    counters, state tensors); append one `BlockCost` per layer to `parts`. The hot loop of screening:
    spec-wide switches hoisted, each layer one pass of integer arithmetic. The stream states' sizes
    are those of `LayerPlan.states` written as arithmetic, so that costing never builds the states
    (tests/test_cost.py holds the two equal)."""
    split = spec.conv_type != "3d"
    one_vec = spec.se_type == "3d" and not spec.causal  # one pooled SE vector per clip, else per frame
    pos = 1 if spec.positional_encoding else 0
    causal, pooled = plan.network.causal, 1 if plan.network.pooled else 0
    params = macs = ew = peak = floats = counters = tensors = 0
    for _, si, bi, c_in, c_out, e, kernel, strides, in_shape, out_shape, skip_conv, se_in, h, _ in plan.layers:
        kt, kh, kw = kernel
        ti, hi, wi = in_shape
        to, ho, wo = out_shape
        p_in, p_out = ti * hi * wi, to * ho * wo
        e1 = p_in * e  # elements of the expansion output
        e2 = p_out * e  # elements of the depthwise output
        o = p_out * c_out
        # expansion conv + BN, depthwise BN, projection conv + BN, ReZero scale; activations
        lpar = e * (c_in + c_out + 8) + 4 * c_out + 1
        lmac = e1 * c_in + e2 * c_out
        lew = e1 + e2 + 2 * o
        if split:  # spatial 1×kh×kw, then temporal kt×1×1 with its own BN and activation
            lpar += kh * kw * e
            lmac += e2 * kh * kw
            if kt > 1:
                lpar += (kt + 4) * e
                lmac += e2 * kt
                lew += e2
        else:
            kvol = kt * kh * kw
            lpar += kvol * e
            lmac += e2 * kvol
        if se_in:  # two 1×1×1 convs with bias on pooled vectors; pooling and gating are element-wise
            lpar += h * (se_in + e + 1) + e + pos
            n_vec = 1 if one_vec else to
            lmac += n_vec * h * (se_in + e)
            lew += 2 * e2 + n_vec * (h + e)
        if skip_conv:
            lpar += (c_in + 4) * c_out
            lmac += p_out * c_in * c_out
            if strides != (1, 1, 1):
                lew += p_out * c_in * 9  # 1×3×3 average pool
            # live: block input, then projection output + skip output
            lpk = p_in * c_in + (e1 + e2 if e1 + e2 > 2 * o else 2 * o)
        else:
            lpk = p_in * c_in + (e1 + e2 if e1 > o else e2 + o)
        params, macs, ew = params + lpar, macs + lmac, ew + lew
        if lpk > peak:
            peak = lpk
        lfl = lco = 0
        if causal:  # the temporal conv's buffer (k_t − 1, h, w, e), the SE pool's sum + count, the PE count
            lfl = (kt - 1) * (ho * wo if split else hi * wi) * e + pooled * e
            lco = pooled + pos
            floats, counters, tensors = floats + lfl, counters + lco, tensors + (kt > 1) + 2 * pooled + pos
        if parts is not None:
            parts.append(BlockCost(f"s{si + 1}.b{bi + 1}", lpar, lmac, lew, lpk * BYTES, (lfl + lco) * BYTES,
                                   (to, ho, wo, c_out)))
    return params, macs, ew, peak, floats, counters, tensors


def _check(spec: ArchSpec, frames: int | None, resolution: int | None, num_classes: int) -> None:
    """`SpecError` naming the first bad argument of `estimate_cost` (a type-and-range fast path first:
    this runs once per screened spec)."""
    if not isinstance(spec, ArchSpec):
        raise SpecError(f"spec: {v.quote(spec)}, must be an ArchSpec")
    if frames is not None and not (type(frames) is int and 0 < frames <= MAX_FRAMES):
        v.integer(frames, "frames", 1, MAX_FRAMES, error=SpecError)
    if resolution is not None and not (type(resolution) is int and 0 < resolution <= MAX_RESOLUTION):
        v.integer(resolution, "resolution", 1, MAX_RESOLUTION, error=SpecError)
    if not (type(num_classes) is int and 0 < num_classes <= MAX_CHANNELS):
        v.integer(num_classes, "num_classes", 1, MAX_CHANNELS, error=SpecError)


def _stem(spec: ArchSpec, plan: Plan) -> tuple[int, int, int, int]:
    """(params, macs, elementwise, peak elements) of the stem conv + BN + activation."""
    kt, kh, kw = spec.stem.kernel
    f = spec.stem.filters
    t, h, w = plan.stem_out
    p_stem = t * h * w
    t, h, w = plan.stem_in
    kvol = kt * kh * kw * 3 * f
    return kvol + 4 * f, p_stem * kvol, p_stem * f, t * h * w * 3 + p_stem * f


def _head(spec: ArchSpec, plan: Plan, num_classes: int) -> tuple[int, int, int, int, int, int, int, int]:
    """(params, macs, elementwise, peak elements) of the head (conv, BN, pool), then of the classifier."""
    c = spec.stages[-1].filters
    hp = spec.head.filters
    hidden = spec.head.hidden
    t, h, w = plan.head_in
    p_head = t * h * w
    return (c * hp + 4 * hp, p_head * c * hp, 2 * p_head * hp, p_head * (c + hp),
            hp * hidden + hidden + hidden * num_classes + num_classes, hp * hidden + hidden * num_classes, hidden,
            hp + hidden + num_classes)


def _parts(spec: ArchSpec, plan: Plan, stem: tuple, layers: list, head: tuple, classes: int) -> tuple[BlockCost, ...]:
    """`Cost.blocks`: the stem, the layers' `BlockCost`s, the head and the classifier."""
    hp = spec.head.filters
    s_par, s_mac, s_ew, s_peak = stem
    h_par, h_mac, h_ew, h_peak, k_par, k_mac, k_ew, k_peak = head
    h_state = (hp + 1) * BYTES if plan.network.causal else 0  # the head pool's running sum and count
    return (BlockCost("stem", s_par, s_mac, s_ew, s_peak * BYTES, 0, (*plan.stem_out, spec.stem.filters)),
            *layers,
            BlockCost("head", h_par, h_mac, h_ew, h_peak * BYTES, h_state, (1, 1, 1, hp)),
            BlockCost("classifier", k_par, k_mac, k_ew, k_peak * BYTES, 0, (1, 1, 1, classes)))


def estimate_cost(
    spec: ArchSpec,
    frames: int | None = None,
    resolution: int | None = None,
    num_classes: int = NUM_CLASSES,
    breakdown: bool = False,
) -> Cost:
    """Costs of `spec` on a `frames` × `resolution`² RGB clip (the spec's own input by default).

    `breakdown=True` also fills `Cost.blocks`, one entry per stem / layer / head / classifier.
    Bad arguments raise `SpecError` naming the argument.
    """
    _check(spec, frames, resolution, num_classes)
    plan: Plan = walk(spec, frames, resolution)
    layers = [] if breakdown else None
    params, macs, ew, peak, floats, counters, tensors = _layers(spec, plan, layers)
    stem = _stem(spec, plan)
    head = _head(spec, plan, num_classes)
    if plan.network.causal:  # the head pool's running sum and frame count
        floats += spec.head.filters
        counters += 1
        tensors += 2
    macs += stem[1] + head[1] + head[5]
    blocks = _parts(spec, plan, stem, layers, head, num_classes) if breakdown else ()
    return Cost(  # positional: keywords cost a tenth of the wrapper's time
        params + stem[0] + head[0] + head[4],  # params
        macs,
        2 * macs,  # flops
        max(peak, stem[3], head[3]) * BYTES,  # activation_bytes
        (floats + counters) * BYTES,  # state_bytes
        floats,  # state_floats
        tensors,  # state_tensors
        ew + stem[2] + head[2] + head[6],  # elementwise
        blocks,
    )
