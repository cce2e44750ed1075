"""Sub-networks as masks on the envelope: one traced graph trains every sub-network.

Masking a weight by its sub-network's slice (zeros elsewhere) and running the *envelope* computes
what the sliced sub-network computes, because every unused channel stays exactly zero: its expansion
columns and BN scale and shift are zero (BN of an all-zero channel is 0, and every activation maps 0
to 0), SE rows and hidden units beyond the slice are zero, a layer beyond the stage's depth has its
ReZero scale at 0 (an identity layer), and a kernel tap outside the crop is zero. Gradients of the
masked weights are zero, as the sliced model's are absent.

Four cases break this and are reported by `maskable` (training then runs that sub-network sliced):
a layer whose skip path is an identity in one of the two networks and a projection in the other;
a narrower SE with a positional encoding (its sinusoid's channel layout depends on the width);
a 2+1D layer with a temporal kernel of 1 (it has no temporal conv, which the envelope has); a
kernel crop whose 'SAME' padding is not centred the same way (an even size difference, or a strided
axis where TF's padding shifts by another amount).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import same_pads
from .plan import LayerPlan, walk
from .spec import ArchSpec


def _offsets(env_k, k, strides, in_shape, causal: bool) -> tuple[int, int, int] | None:
    """Tap offsets of kernel `k` inside `env_k` (the kernel rule), or None when masking the larger
    kernel would not give the smaller kernel's output."""
    out = []
    for a in range(3):
        big, small, s, n = env_k[a], k[a], strides[a], in_shape[a]
        if a == 0 and causal:
            out.append(big - small)
            continue
        if (big - small) % 2:
            return None
        off = (big - small) // 2
        if same_pads(n, big, s)[0] - same_pads(n, small, s)[0] != off:
            return None
        out.append(off)
    return tuple(out)


def _region(shape, *bounds) -> tuple:
    return tuple(slice(b, b + n) for b, n in bounds) + (slice(None),) * (len(shape) - len(bounds))


def sub_masks(net: Any, spec: ArchSpec) -> dict[str, np.ndarray] | None:
    """Per envelope weight path, the 0/1 mask of `spec`'s slice; None when `spec` is not maskable."""
    env = net.envelope
    masks = {p: np.zeros(tuple(v.shape), np.float32) for p, v in net.variables.items() if v.trainable}

    def put(path, *bounds):
        """Ones over `bounds` (start, size) of the first axes of weight `path`; all of it without bounds."""
        m = masks[path]
        m[_region(m.shape, *bounds)] = 1.0

    def bn(prefix, c):
        put(prefix + "/gamma", (0, c))
        put(prefix + "/beta", (0, c))

    res = spec.resolution
    stem_f = spec.stem.filters
    put("stem_conv/kernel", (0, spec.stem.kernel[0]), (0, spec.stem.kernel[1]), (0, spec.stem.kernel[2]),
        (0, 3), (0, stem_f))
    bn("stem_bn", stem_f)
    env_layers = walk(env, spec.frames, res).layers
    starts = np.cumsum([0] + [len(s.blocks) for s in env.stages])
    for lp in walk(spec, spec.frames, res).layers:
        el = env_layers[starts[lp.stage] + lp.block]
        if lp.skip_conv != el.skip_conv or (spec.positional_encoding and lp.se_in and lp.expand != el.expand):
            return None  # (the positional encoding's channel layout depends on the width)
        if not _layer_masks(put, bn, lp, el, env, net.causal, spec.positional_encoding):
            return None
    c_last, head = spec.stages[-1].filters, spec.head.filters
    put("head_conv/kernel", (0, c_last), (0, head))
    bn("head_bn", head)
    put("classifier_hidden/kernel", (0, head))
    for path in ("classifier_hidden/bias", "classifier/kernel", "classifier/bias"):
        put(path)
    return masks


def _layer_masks(put, bn, lp: LayerPlan, el: LayerPlan, env: ArchSpec, causal: bool, pe: bool) -> bool:
    """Mark layer `lp`'s slice of envelope layer `el` with `put` / `bn`; False when it is not maskable."""
    p = f"b{el.index}_"
    e, c_in, c_out = lp.expand, lp.c_in, lp.c_out
    put(p + "expand/kernel", (0, c_in), (0, e))
    bn(p + "expand_bn", e)
    if not _depthwise_masks(put, bn, p, lp, el, env.conv_type, causal):
        return False
    if lp.se_in:
        h = lp.se_hidden
        put(p + "se/reduce/kernel", (0, e), (0, h))
        if env.se_type == "2plus3d":
            put(p + "se/reduce/kernel", (el.expand, e), (0, h))
        put(p + "se/reduce/bias", (0, h))
        put(p + "se/expand/kernel", (0, h), (0, e))
        put(p + "se/expand/bias", (0, e))
        if pe:
            put(p + "se/pe_scale")
    put(p + "project/kernel", (0, e), (0, c_out))
    bn(p + "project_bn", c_out)
    put(p + "scale/scale")
    if lp.skip_conv:
        put(p + "skip/kernel", (0, c_in), (0, c_out))
        bn(p + "skip_bn", c_out)
    return True


def _depthwise_masks(put, bn, p: str, lp: LayerPlan, el: LayerPlan, conv_type: str, causal: bool) -> bool:
    """The depthwise kernel crop (3D, or spatial then temporal for 2+1D) and its BN; False when the
    crop is not maskable."""
    e = lp.expand
    kt, kh, kw = lp.kernel
    if conv_type == "3d":
        off = _offsets(el.kernel, lp.kernel, lp.strides, lp.in_shape, causal)
        if off is None:
            return False
        put(p + "dw/kernel", (off[0], kt), (off[1], kh), (off[2], kw), (0, e))
        bn(p + "dw_bn", e)
        return True
    if (kt > 1) != (el.kernel[0] > 1):
        return False
    st = lp.strides
    sp = _offsets((1, *el.kernel[1:]), (1, kh, kw), (st[0] if kt == 1 else 1, *st[1:]), lp.in_shape, causal)
    if sp is None:
        return False
    put(p + "dw/kernel", (0, 1), (sp[1], kh), (sp[2], kw), (0, e))
    bn(p + "dw_bn", e)
    if kt > 1:
        off = _offsets((el.kernel[0], 1, 1), (kt, 1, 1), (st[0], 1, 1), lp.in_shape, causal)
        if off is None:
            return False
        put(p + "dw_t/kernel", (off[0], kt), (0, 1), (0, 1), (0, e))
        bn(p + "dw_t_bn", e)
    return True


def maskable(net: Any, spec: ArchSpec) -> bool:
    return sub_masks(net, spec) is not None


__all__ = ["maskable", "sub_masks"]
