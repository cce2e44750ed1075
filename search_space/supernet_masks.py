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
kernel crop whose 'SAME' padding is not centred the same way (an odd size difference, or a strided
axis where TF's padding shifts by another amount).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import same_pads
from .plan import LayerPlan
from .spec import ArchSpec
from .weight_map import crop_offset, layer_pairs, weight_map


def sub_masks(net: Any, spec: ArchSpec) -> dict[str, np.ndarray] | None:
    """Per trainable envelope weight path, the 0/1 mask of `spec`'s slice (`search_space.weight_map`);
    None when `spec` is not maskable."""
    if not maskable(net, spec):
        return None
    masks = {p: np.zeros(tuple(v.shape), np.float32) for p, v in net.variables.items() if v.trainable}
    for part in weight_map(net.envelope, spec, net.num_classes).values():
        m = masks.get(part.source)
        if m is not None:  # BN moving statistics are not masked
            for box in part.boxes:
                m[tuple(slice(b, b + n) for b, n in box)] = 1.0
    return masks


def maskable(net: Any, spec: ArchSpec) -> bool:
    """Whether the envelope of `net`, masked by `spec`'s slices, computes `spec`'s sub-network (see the
    module docstring for the four cases where it does not)."""
    env = net.envelope
    for lp, el in layer_pairs(env, spec):
        if lp.skip_conv != el.skip_conv:
            return False
        if spec.positional_encoding and lp.se_in and lp.expand != el.expand:
            return False  # the positional encoding's channel layout depends on the width
        if not _depthwise_maskable(lp, el, env.conv_type, spec.causal):
            return False
    return True


def _depthwise_maskable(lp: LayerPlan, el: LayerPlan, conv_type: str, causal: bool) -> bool:
    """Whether the envelope's depthwise conv(s), masked to the crop, pad as the sub-network's do."""
    if conv_type == "3d":
        return _aligned(el.kernel, lp.kernel, lp.strides, lp.in_shape, causal)
    kt, kh, kw = lp.kernel
    if (kt > 1) != (el.kernel[0] > 1):
        return False  # one of the two has no temporal conv
    st = lp.strides
    spatial = _aligned((1, *el.kernel[1:]), (1, kh, kw), (st[0] if kt == 1 else 1, *st[1:]), lp.in_shape, causal)
    return spatial and (kt == 1 or _aligned((el.kernel[0], 1, 1), (kt, 1, 1), (st[0], 1, 1), lp.in_shape, causal))


def _aligned(big: tuple, small: tuple, strides: tuple, in_shape: tuple, causal: bool) -> bool:
    """Whether the crop of kernel `small` inside `big` (`crop_offset`) sits where 'SAME' padding puts
    the smaller kernel, on every axis: masking the larger kernel then gives the smaller one's output.
    A causal time axis pads only the past, by k - 1: the most recent taps always align."""
    for a in range(3):
        if a == 0 and causal:
            continue
        b, k, s, n = big[a], small[a], strides[a], in_shape[a]
        if (b - k) % 2 or same_pads(n, b, s)[0] - same_pads(n, k, s)[0] != crop_offset(b, k, False):
            return False
    return True


__all__ = ["maskable", "sub_masks"]
