"""The one walk over a spec's layers, with channels and shapes, shared by the builder and the cost
model so the two cannot drift.

Shapes are (frames, height, width) of activations for a given input; 'SAME' padding gives
ceil(n / stride) in every axis (time included, causal or not).
"""

from __future__ import annotations

from typing import NamedTuple

from .spec import ArchSpec, make_divisible

Shape = tuple[int, int, int]


class LayerPlan(NamedTuple):
    """One inverted-bottleneck layer as the builder and the cost model see it."""

    index: int  # over the whole network, from 0
    stage: int
    block: int
    c_in: int
    c_out: int
    expand: int
    kernel: tuple[int, int, int]
    strides: tuple[int, int, int]
    in_shape: Shape  # (t, h, w) of the layer input
    out_shape: Shape  # after the depthwise stride
    skip_conv: bool  # False: identity residual
    se_in: int  # channels the first SE conv sees (2e for 2plus3d, 0 when no SE)
    se_hidden: int
    drop_rate: float  # stochastic depth rate of this layer


class Plan(NamedTuple):
    stem_in: Shape
    stem_out: Shape
    layers: tuple[LayerPlan, ...]
    head_in: Shape  # (t, h, w) entering the head conv


def out_size(n: int, s: int) -> int:
    return -(-n // s)


def se_width(spec: ArchSpec, expand: int) -> tuple[int, int]:
    """(channels into the first SE conv, hidden width) for an expansion width."""
    if spec.se_type == "none":
        return 0, 0
    m = 2 if spec.se_type == "2plus3d" else 1
    return m * expand, make_divisible(spec.se_ratio * expand * m, 8)


def walk(spec: ArchSpec, frames: int | None = None, resolution: int | None = None) -> Plan:
    """Plan every layer of `spec` for an input of `frames` × `resolution`² (spec defaults)."""
    t = frames or spec.frames
    h = w = resolution or spec.resolution
    stem_in = (t, h, w)
    st, sh, sw = spec.stem.strides
    shape = (-(-t // st), -(-h // sh), -(-w // sw))
    stem_out = shape
    c = spec.stem.filters
    n = spec.num_layers
    rate = spec.stochastic_depth
    has_se = spec.se_type != "none"
    m = 2 if spec.se_type == "2plus3d" else 1
    ratio = spec.se_ratio * m
    new = tuple.__new__  # the hot loop of the cost model: skip NamedTuple's keyword binding
    layers = []
    add = layers.append
    i = 0
    for si, stage in enumerate(spec.stages):
        c_out = stage.filters
        for bi, block in enumerate(stage.blocks):
            s = block.strides
            if s == (1, 1, 1):
                out = shape
                skip = c != c_out
            else:
                out = (-(-shape[0] // s[0]), -(-shape[1] // s[1]), -(-shape[2] // s[2]))
                skip = True
            e = block.expand
            if has_se:  # make_divisible(ratio · e, 8), inlined
                v = ratio * e
                hid = int(v + 4) // 8 * 8
                if hid < 8:
                    hid = 8
                if hid < 0.9 * v:
                    hid += 8
                se_in = m * e
            else:
                se_in = hid = 0
            i += 1
            add(new(LayerPlan, (
                i - 1, si, bi, c, c_out, e, block.kernel, s, shape, out, skip, se_in, hid, rate * i / n)))
            shape = out
            c = c_out
    return Plan(stem_in, stem_out, tuple(layers), shape)
