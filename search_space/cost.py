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
    """Sum over the inverted-bottleneck layers of `plan`: (params, macs, elementwise, peak elements,
    state floats, state counters, state tensors); append one `BlockCost` per layer to `parts`.

    The hot loop of screening: spec-wide switches are hoisted and each layer is one pass of plain
    integer arithmetic.
    """
    split = spec.conv_type != "3d"
    one_vec = spec.se_type == "3d" and not spec.causal  # one pooled SE vector per clip, else per frame
    pos = 1 if spec.positional_encoding else 0
    params = macs = ew = peak = floats = counters = tensors = 0
    for (_, si, bi, c_in, c_out, e, kernel, strides, in_shape, out_shape, skip_conv, se_in, h, _,
         states) in plan.layers:
        kt, kh, kw = kernel
        ti, hi, wi = in_shape
        to, ho, wo = out_shape
        p_in = ti * hi * wi
        p_out = to * ho * wo
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
        params += lpar
        macs += lmac
        ew += lew
        if lpk > peak:
            peak = lpk
        lfl = lco = 0
        if states:  # the plan's stream states (causal specs)
            lfl, lco = _state_elements(states)
            floats += lfl
            counters += lco
            tensors += len(states)
        if parts is not None:
            parts.append(BlockCost(f"s{si + 1}.b{bi + 1}", lpar, lmac, lew, lpk * BYTES, (lfl + lco) * BYTES,
                                   (to, ho, wo, c_out)))
    return params, macs, ew, peak, floats, counters, tensors


def _state_elements(states) -> tuple[int, int]:
    """(float32 elements, int32 elements) of stream states."""
    floats = ints = 0
    for state in states:
        n = 1
        for d in state.shape:
            n *= d
        if state.dtype == "float32":
            floats += n
        else:
            ints += n
    return floats, ints


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
    if not isinstance(spec, ArchSpec):
        raise SpecError(f"spec: {v.quote(spec)}, must be an ArchSpec")
    if frames is not None:
        v.integer(frames, "frames", 1, MAX_FRAMES, error=SpecError)
    if resolution is not None:
        v.integer(resolution, "resolution", 1, MAX_RESOLUTION, error=SpecError)
    v.integer(num_classes, "num_classes", 1, MAX_CHANNELS, error=SpecError)
    plan: Plan = walk(spec, frames, resolution)
    kt, kh, kw = spec.stem.kernel
    f = spec.stem.filters
    p_stem = plan.stem_out[0] * plan.stem_out[1] * plan.stem_out[2]
    p_in = plan.stem_in[0] * plan.stem_in[1] * plan.stem_in[2]
    params = kt * kh * kw * 3 * f + 4 * f
    macs = p_stem * kt * kh * kw * 3 * f
    ew = p_stem * f
    peak = p_in * 3 + p_stem * f
    parts = []
    if breakdown:
        parts.append(BlockCost("stem", params, macs, ew, peak * BYTES, 0, (*plan.stem_out, f)))
    lpar, lmac, lew, lpk, floats, counters, tensors = _layers(spec, plan, parts if breakdown else None)
    params += lpar
    macs += lmac
    ew += lew
    peak = max(peak, lpk)
    c = spec.stages[-1].filters
    hp = spec.head.filters
    th, hh, wh = plan.head_in
    p_head = th * hh * wh
    h_par = c * hp + 4 * hp
    h_mac = p_head * c * hp
    h_ew = 2 * p_head * hp
    h_peak = p_head * (c + hp)
    h_floats, h_counters = _state_elements(plan.head_states)
    floats += h_floats
    counters += h_counters
    tensors += len(plan.head_states)
    h_state = (h_floats + h_counters) * BYTES
    hidden = spec.head.hidden
    k_par = hp * hidden + hidden + hidden * num_classes + num_classes
    k_mac = hp * hidden + hidden * num_classes
    params += h_par + k_par
    macs += h_mac + k_mac
    ew += h_ew + hidden
    peak = max(peak, h_peak)
    if breakdown:
        parts.append(BlockCost("head", h_par, h_mac, h_ew, h_peak * BYTES, h_state, (1, 1, 1, hp)))
        parts.append(BlockCost("classifier", k_par, k_mac, hidden, (hp + hidden + num_classes) * BYTES,
                               0, (1, 1, 1, num_classes)))
    return Cost(
        params=params,
        macs=macs,
        flops=2 * macs,
        activation_bytes=peak * BYTES,
        state_bytes=(floats + counters) * BYTES,
        state_floats=floats,
        state_tensors=tensors,
        elementwise=ew,
        blocks=tuple(parts),
    )
