"""The one walk over a spec's layers, with channels and shapes, shared by the builder and the cost
model so the two cannot drift.

Shapes are (frames, height, width) of activations for a given input; 'SAME' padding gives
ceil(n / stride) in every axis (time included, causal or not).

The plan also describes, once, the stream states of a causal spec (`LayerPlan.states`,
`Plan.head_states`): the stream model's inputs (`search_space.stream`), the layers that consume them
(`search_space.builder`) and the state size (`search_space.cost`) are all read from it.
"""

from __future__ import annotations

from typing import NamedTuple

from .spec import ArchSpec

Shape = tuple[int, int, int]

CUMULATIVE_SE = ("3d", "2plus3d")
"""SE types that pool over time: cumulative when causal, so they carry a running sum and count."""


class State(NamedTuple):
    """One stream state: a named tensor a stream model takes and returns, batch axis left out.

    `feeds` says which layer reads it: "temporal_conv" (the last k_t - 1 input frames of a causal
    temporal conv, shape (k_t - 1, h, w, channels)), "se" (the SE pool's running sum (1, 1, 1, e)
    and frame count (1,), then the positional encoding's frame count (1,)), "head_pool" (the head's
    running sum and count). A layer takes its states in the order listed.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str  # "float32" or "int32"
    feeds: str


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
    states: tuple[State, ...]  # stream states of this layer (causal specs; empty otherwise)


class Plan(NamedTuple):
    stem_in: Shape
    stem_out: Shape
    layers: tuple[LayerPlan, ...]
    head_in: Shape  # (t, h, w) entering the head conv
    head_states: tuple[State, ...]  # the head pool's stream states (causal specs; empty otherwise)

    @property
    def states(self) -> tuple[State, ...]:
        """Every stream state, in the order of the stream model's inputs."""
        return (*(s for lp in self.layers for s in lp.states), *self.head_states)


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
    causal = spec.causal
    split = spec.conv_type != "3d"  # the causal temporal conv runs after the spatial stride
    pooled = spec.se_type in CUMULATIVE_SE
    pe = spec.positional_encoding
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
            states = _layer_states(i, block.kernel[0], e, out if split else shape, pooled, pe) if causal else ()
            i += 1
            add(new(LayerPlan, (
                i - 1, si, bi, c, c_out, e, block.kernel, s, shape, out, skip, se_in, hid, rate * i / n, states)))
            shape = out
            c = c_out
    head = ()
    if causal:
        head = (State("head_sum", (1, 1, 1, spec.head.filters), "float32", "head_pool"),
                State("head_count", (1,), "int32", "head_pool"))
    return Plan(stem_in, stem_out, tuple(layers), shape, head)


def _layer_states(i: int, kt: int, e: int, conv_in: Shape, pooled: bool, pe: bool) -> tuple[State, ...]:
    """Stream states of causal layer `i`: its temporal conv's frame buffer (k_t > 1; `conv_in` is
    that conv's input shape), the SE pool's sum and count, the positional encoding's count."""
    p = f"b{i}_"
    out = []
    if kt > 1:
        out.append(State(p + "buffer", (kt - 1, conv_in[1], conv_in[2], e), "float32", "temporal_conv"))
    if pooled:
        out += [State(p + "se_sum", (1, 1, 1, e), "float32", "se"), State(p + "se_count", (1,), "int32", "se")]
    if pe:
        out.append(State(p + "pe_count", (1,), "int32", "se"))
    return tuple(out)
