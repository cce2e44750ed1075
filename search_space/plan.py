"""The one walk over a spec's layers, with channels and shapes, shared by the builder and the cost
model so the two cannot drift.

Shapes are (frames, height, width) of activations for a given input; 'SAME' padding gives
ceil(n / stride) in every axis (time included, causal or not).

The plan also describes, once, the stream states of a causal spec (`LayerPlan.states`,
`Plan.head_states`): the stream model's inputs (`search_space.stream`) and the layers that consume
them (`search_space.builder`) are read from it. They are derived on request, not by the walk: costing
a spec never builds them (`search_space.cost` counts their sizes in its own loop, held equal to
these by tests/test_cost.py).
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


class Network(NamedTuple):
    """Spec-wide values that the fields a layer derives on request read (one per walk, shared)."""

    num_layers: int
    stochastic_depth: float
    causal: bool
    split: bool  # the causal temporal conv runs after the spatial stride (conv types other than 3d)
    pooled: bool  # the SE pool is cumulative when causal (SE types 3d, 2plus3d): running sum and count
    positional_encoding: bool  # a frame count per layer when causal
    head_filters: int  # channels of the head pool's running sum


class LayerPlan(NamedTuple):
    """One inverted-bottleneck layer as the builder and the cost model see it.

    `drop_rate` and `states` are derived on request: the cost model, the walk's hot caller, reads
    neither."""

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
    network: Network

    @property
    def drop_rate(self) -> float:
        """Stochastic depth rate of this layer: growing linearly to the spec's rate at the last layer."""
        return self.network.stochastic_depth * (self.index + 1) / self.network.num_layers

    @property
    def states(self) -> tuple[State, ...]:
        """Stream states of this layer, in the order it takes them (empty for a non-causal spec)."""
        net = self.network
        if not net.causal:
            return ()
        conv_in = self.out_shape if net.split else self.in_shape
        return _layer_states(self.index, self.kernel[0], self.expand, conv_in, net.pooled, net.positional_encoding)


class Plan(NamedTuple):
    stem_in: Shape
    stem_out: Shape
    layers: tuple[LayerPlan, ...]
    head_in: Shape  # (t, h, w) entering the head conv
    network: Network

    @property
    def head_states(self) -> tuple[State, ...]:
        """The head pool's stream states (empty for a non-causal spec)."""
        if not self.network.causal:
            return ()
        return (State("head_sum", (1, 1, 1, self.network.head_filters), "float32", "head_pool"),
                State("head_count", (1,), "int32", "head_pool"))

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
    has_se = spec.se_type != "none"
    m = 2 if spec.se_type == "2plus3d" else 1
    ratio = spec.se_ratio * m
    net = Network(spec.num_layers, spec.stochastic_depth, spec.causal, spec.conv_type != "3d",
                  spec.se_type in CUMULATIVE_SE, spec.positional_encoding, spec.head.filters)
    new = tuple.__new__  # the hot loop of the cost model: skip NamedTuple's keyword binding
    layers = []
    add = layers.append
    widths = {}  # expansion width → (SE input, SE hidden width)
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
            if has_se:  # make_divisible(ratio · e, 8), inlined and computed once per width
                se = widths.get(e)
                if se is None:
                    v = ratio * e
                    hid = int(v + 4) // 8 * 8
                    if hid < 8:
                        hid = 8
                    if hid < 0.9 * v:
                        hid += 8
                    se = widths[e] = (m * e, hid)
                se_in, hid = se
            else:
                se_in = hid = 0
            add(new(LayerPlan, (i, si, bi, c, c_out, e, block.kernel, s, shape, out, skip, se_in, hid, net)))
            i += 1
            shape = out
            c = c_out
    return Plan(stem_in, stem_out, tuple(layers), shape, net)


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
