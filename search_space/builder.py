"""`build_model`: an `ArchSpec` → a Keras 3 model, base (whole clip; causal when the spec is) or
stream (a sub-clip at a time, states explicit).

The network is wired top to bottom from `search_space.plan.walk`, the same walk the cost model
uses, so `model.count_params() == estimate_cost(spec, num_classes=K).params`. Base and stream
models of one spec create the same layers in the same order: `stream.set_weights(base.get_weights())`
moves trained weights of the causal model into its stream model.
"""

from __future__ import annotations

import keras

from . import validate
from .layers import IMPLEMENTATIONS, Act, FrameConv3D, LayerScale, SkipPool
from .plan import LayerPlan, walk
from .pooling import HeadPool, SqueezeExcite
from .spec import NUM_CLASSES, ArchSpec
from .stream import check_states, init_states, state_specs, stream_step

MODES = ("base", "stream")

__all__ = ["MODES", "build_model", "check_states", "init_states", "stream_step"]


def build_model(
    spec: ArchSpec,
    num_classes: int = NUM_CLASSES,
    mode: str = "base",
    *,
    frames: int | None = None,
    resolution: int | None = None,
    batch_size: int | None = None,
    depthwise: str = "fast",
) -> keras.Model:
    """Keras model of `spec` with `num_classes` logits (float32, no softmax).

    mode "base": input ``image`` float32 [batch, frames, height, width, 3] in [0, 1], output logits
    [batch, num_classes]. A causal spec gives the causal whole-clip model.
    mode "stream" (causal specs): inputs ``{"image": [batch, t, H, W, 3], **states}`` (t >= 1),
    outputs ``{"logits": ..., **new_states}`` under the same names (see `search_space.stream`);
    logits are the running clip prediction. Start from `init_states` and call through
    `stream_step`, which checks every state's shape by name (calling the model directly leaves that
    to Keras). It takes the causal base model's weights: ``stream.set_weights(base.get_weights())``.
    `frames`, `resolution`, `batch_size` fix those input sizes (None: any). `depthwise="grouped"`
    runs Keras' grouped Conv3D op (slow on CPU; for benchmarks and equivalence checks).
    """
    _check_args(spec, num_classes, mode, frames, resolution, batch_size, depthwise)
    image = keras.Input((frames, resolution, resolution, 3), batch_size=batch_size, name="image")
    wiring = _Wiring(spec, depthwise, mode == "stream", resolution, batch_size)
    logits = wiring.network(image, num_classes)
    if not wiring.stream:
        return keras.Model(image, logits, name=_model_name(spec))
    return keras.Model({"image": image, **wiring.state_inputs}, {"logits": logits, **wiring.state_outputs},
                       name=_model_name(spec) + "_stream")


def _check_args(spec, num_classes, mode, frames, resolution, batch_size, depthwise) -> None:
    if not isinstance(spec, ArchSpec):
        raise ValueError(f"spec: {type(spec).__name__}, must be an ArchSpec (movinet(...), "
                         "ArchSpec.from_yaml(...))")
    if mode not in MODES:
        raise ValueError(f"mode: {mode!r}, must be one of {', '.join(MODES)}")
    if depthwise not in IMPLEMENTATIONS:
        raise ValueError(f"depthwise: {depthwise!r}, must be one of {', '.join(IMPLEMENTATIONS)}")
    for name, value, optional in (("num_classes", num_classes, False), ("frames", frames, True),
                                  ("resolution", resolution, True), ("batch_size", batch_size, True)):
        validate.integer(value, name, 1, optional=optional)
    if mode == "stream":
        if not spec.causal:
            raise ValueError(f"mode 'stream' needs a causal spec; {spec.name!r} has causal: false")
        if spec.stem.kernel[0] != 1 or spec.stem.strides[0] != 1:
            raise ValueError(f"mode 'stream': stem.kernel {spec.stem.kernel} and stem.strides "
                             f"{spec.stem.strides} must have temporal size 1 to stream")


def _model_name(spec: ArchSpec) -> str:
    return "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in spec.name) or "movinas"


class _Wiring:
    """Wires one spec's layers; in stream mode it holds the state inputs and collects new states."""

    def __init__(self, spec: ArchSpec, depthwise: str, stream: bool, resolution, batch_size):
        self.spec = spec
        self.impl = depthwise
        self.stream = stream
        self.plan = walk(spec)
        self.state_inputs: dict = {}
        self.state_outputs: dict = {}
        if stream:
            for name, s in state_specs(spec, resolution).items():
                self.state_inputs[name] = keras.Input(s.shape, batch_size=batch_size, dtype=s.dtype,
                                                      name=name)

    # -- small pieces ---------------------------------------------------------------------------
    def bn(self, x, name):
        s = self.spec
        return keras.layers.BatchNormalization(momentum=s.bn_momentum, epsilon=s.bn_epsilon, name=name)(x)

    def act(self, x, name, kind=None):
        return Act(kind or self.spec.activation, name=name)(x)

    def pointwise(self, x, filters, name):
        """1×1×1 conv without bias (a Dense over channels)."""
        return keras.layers.Dense(filters, use_bias=False, kernel_initializer="he_normal", name=name)(x)

    def stateful(self, layer, x, names):
        """Call `layer`, feeding it the named states in stream mode and keeping its new states."""
        if not self.stream or not names:
            return layer(x)
        y, new = layer(x, states=tuple(self.state_inputs[n] for n in names))
        self.state_outputs.update(zip(names, new))
        return y

    def conv(self, x, kernel, strides, name, states=(), filters=None):
        layer = FrameConv3D(kernel, strides, filters=filters, causal=self.spec.causal, implementation=self.impl,
                            name=name)
        return self.stateful(layer, x, states)

    # -- the network ------------------------------------------------------------------------------
    def network(self, image, num_classes):
        spec = self.spec
        x = self.conv(image, spec.stem.kernel, spec.stem.strides, "stem_conv", filters=spec.stem.filters)
        x = self.act(self.bn(x, "stem_bn"), "stem_act")
        for lp in self.plan.layers:
            x = self.block(x, lp)
        x = self.act(self.bn(self.pointwise(x, spec.head.filters, "head_conv"), "head_bn"), "head_act")
        x = self.stateful(HeadPool(name="head_pool"), x, [s.name for s in self.plan.head_states])
        x = keras.layers.Dense(spec.head.hidden, kernel_initializer="he_normal", name="classifier_hidden")(x)
        x = self.act(x, "classifier_act", spec.classifier_activation)
        x = keras.layers.Dropout(spec.dropout, name="classifier_dropout")(x)
        x = keras.layers.Dense(num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
                               name="classifier")(x)
        return keras.layers.Reshape((num_classes,), dtype="float32", name="logits")(x)

    def block(self, x, lp: LayerPlan):
        """Inverted bottleneck: expand → depthwise → SE → project → scale → drop path → + skip."""
        spec = self.spec
        p = f"b{lp.index}_"
        kt, kh, kw = lp.kernel
        st, sh, sw = lp.strides
        inputs = x
        fed = {feeds: [s.name for s in lp.states if s.feeds == feeds] for feeds in ("temporal_conv", "se")}
        x = self.act(self.bn(self.pointwise(x, lp.expand, p + "expand"), p + "expand_bn"), p + "expand_act")
        if spec.conv_type == "3d":
            x = self.conv(x, lp.kernel, lp.strides, p + "dw", fed["temporal_conv"])
            x = self.act(self.bn(x, p + "dw_bn"), p + "dw_act")
        else:  # 2plus1d / 3d_2plus1d: spatial 1×kh×kw, then temporal kt×1×1 with its own BN
            x = self.conv(x, (1, kh, kw), (st if kt == 1 else 1, sh, sw), p + "dw")
            x = self.act(self.bn(x, p + "dw_bn"), p + "dw_act")
            if kt > 1:
                x = self.conv(x, (kt, 1, 1), (st, 1, 1), p + "dw_t", fed["temporal_conv"])
                x = self.act(self.bn(x, p + "dw_t_bn"), p + "dw_t_act")
        if lp.se_in:
            se = SqueezeExcite(lp.expand, lp.se_hidden, pool=spec.se_type, causal=spec.causal,
                               activation=spec.activation, gating=spec.gating_activation,
                               positional_encoding=spec.positional_encoding, name=p + "se")
            x = self.stateful(se, x, fed["se"])
        x = self.bn(self.pointwise(x, lp.c_out, p + "project"), p + "project_bn")
        x = LayerScale(name=p + "scale")(x)
        if lp.drop_rate > 0:
            x = keras.layers.Dropout(lp.drop_rate, noise_shape=(None, 1, 1, 1, 1), name=p + "drop_path")(x)
        skip = inputs
        if lp.skip_conv:
            if lp.strides != (1, 1, 1):
                skip = SkipPool(lp.strides, name=p + "skip_pool")(skip)
            skip = self.bn(self.pointwise(skip, lp.c_out, p + "skip"), p + "skip_bn")
        return keras.layers.Add(name=p + "add")([skip, x])
