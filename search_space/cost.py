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

from .plan import LayerPlan, Plan, walk
from .spec import ArchSpec

BYTES = 4  # float32


class BlockCost(NamedTuple):
    """Cost of one part of the network (`stem`, `s2.b1`, `head`, `classifier`)."""

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


def _layer(spec: ArchSpec, lp: LayerPlan) -> tuple[int, int, int, int, int, int, int]:
    """(params, macs, elementwise, peak elements, state floats, state counters, state tensors)."""
    c_in, c_out, e = lp.c_in, lp.c_out, lp.expand
    kt, kh, kw = lp.kernel
    ti, hi, wi = lp.in_shape
    to, ho, wo = lp.out_shape
    p_in = ti * hi * wi
    p_out = to * ho * wo
    split = spec.conv_type != "3d"

    params = c_in * e + 4 * e + e * c_out + 4 * c_out + 1
    macs = p_in * c_in * e + p_out * e * c_out
    if split:
        params += kh * kw * e + 4 * e
        macs += p_out * kh * kw * e
        if kt > 1:
            params += kt * e + 4 * e
            macs += p_out * kt * e
    else:
        params += kt * kh * kw * e + 4 * e
        macs += p_out * kt * kh * kw * e
    ew = p_in * e + p_out * e * (2 if split and kt > 1 else 1) + 2 * p_out * c_out
    if lp.se_in:
        h = lp.se_hidden
        params += lp.se_in * h + h + h * e + e
        n_vec = 1 if spec.se_type == "3d" and not spec.causal else to
        macs += n_vec * (lp.se_in * h + h * e)
        ew += 2 * p_out * e + n_vec * (h + e)
        if spec.positional_encoding:
            params += 1
    skip = 0
    if lp.skip_conv:
        params += c_in * c_out + 4 * c_out
        macs += p_out * c_in * c_out
        skip = p_out * c_out
        if lp.strides != (1, 1, 1):
            ew += p_out * c_in * 9
    x, e1, e2, o = p_in * c_in, p_in * e, p_out * e, p_out * c_out
    peak = x + max(e1 + e2, 2 * e2, e2 + o, o + skip)

    floats = counters = tensors = 0
    if spec.causal:
        if kt > 1:
            floats += (kt - 1) * (ho * wo if split else hi * wi) * e
            tensors += 1
        if spec.se_type in ("3d", "2plus3d"):
            floats += e
            counters += 1
            tensors += 2
        if spec.positional_encoding:
            counters += 1
            tensors += 1
    return params, macs, ew, peak, floats, counters, tensors


def estimate_cost(
    spec: ArchSpec,
    frames: int | None = None,
    resolution: int | None = None,
    num_classes: int = 600,
    breakdown: bool = False,
) -> Cost:
    """Costs of `spec` on a `frames` × `resolution`² RGB clip (the spec's own input by default).

    `breakdown=True` also fills `Cost.blocks`, one entry per stem / layer / head / classifier.
    """
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
    floats = counters = tensors = 0
    for lp in plan.layers:
        lpar, lmac, lew, lpk, lfl, lco, lte = _layer(spec, lp)
        params += lpar
        macs += lmac
        ew += lew
        if lpk > peak:
            peak = lpk
        floats += lfl
        counters += lco
        tensors += lte
        if breakdown:
            parts.append(BlockCost(f"s{lp.stage}.b{lp.block}", lpar, lmac, lew, lpk * BYTES,
                                   (lfl + lco) * BYTES, (*lp.out_shape, lp.c_out)))
    c = spec.stages[-1].filters
    hp = spec.head.filters
    th, hh, wh = plan.head_in
    p_head = th * hh * wh
    h_par = c * hp + 4 * hp
    h_mac = p_head * c * hp
    h_ew = 2 * p_head * hp
    h_peak = p_head * (c + hp)
    h_state = 0
    if spec.causal:
        floats += hp
        counters += 1
        tensors += 2
        h_state = (hp + 1) * BYTES
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
