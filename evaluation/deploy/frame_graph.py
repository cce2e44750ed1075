"""The stream model lowered for TFLite: one frame a call, 4-D tensors only, every op one XNNPACK and the
LiteRT GPU delegate take, states that quantize.

`frame_step(spec, model)` reads the weights of a Keras model built from causal `spec` (base or stream:
same layer names) and returns a function of ``{"image": frame, **states}`` → ``{"logits", **new states}``
that gives the Keras stream model's logits frame by frame (float32, within rounding). What differs from
the Keras stream graph, and why:

- every tensor is [1, H, W, C] (a frame) or smaller: no 5-D state, no frame axis, no folding reshapes;
- batch norm and the ReZero scale are folded into the conv weights and biases: a conv is one op;
- a causal temporal conv keeps its k_t − 1 *partial outputs* instead of its last input frames: each
  tap convolves the new frame once and adds into the partial sum of the output it belongs to, so the
  state update is adds, with no concatenation nor slice (states ``b{i}_tap{j}``, after the stride);
- the running means (SE pools and head) are means, not sums: ``m −= (m − x) / n`` with one shared
  frame count n (state ``frames``, float: no int32, no cast), so a state stays in the range of a frame
  mean however long the stream; written with SUB and DIV alone, which an int8 export keeps in float
  (XNNPACK runs both, and the Q/DQ around them): an int8 running mean would stop moving once an
  update (m − x) / n falls under half its quantization step, a few dozen frames in;
- the positional encoding is a rotation of its (sin, cos) pair per frame (MUL and ADD), not SIN/COS of a
  count; its states hold the offset from frame 0's value so zero states are the start of a stream.

States start at zero (`lite_state_specs`), like the Keras stream model's.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from search_space.plan import CUMULATIVE_SE, walk
from search_space.spec import ArchSpec


class LiteState(NamedTuple):
    shape: tuple[int, ...]  # with the batch axis (1)
    dtype: str


def lite_state_specs(spec: ArchSpec, resolution: int) -> dict[str, LiteState]:
    """The states of `frame_step`'s function for causal `spec` at `resolution`, in order."""
    if not spec.causal:
        raise ValueError(f"spec {spec.name!r}: stream states need causal: true, found causal: false")
    plan = walk(spec, 1, resolution)
    out: dict[str, LiteState] = {"frames": LiteState((1, 1, 1, 1), "float32")}
    for lp in plan.layers:
        p = f"b{lp.index}_"
        _, h, w = lp.out_shape
        for j in range(1, lp.kernel[0]):
            out[f"{p}tap{j}"] = LiteState((1, h, w, lp.expand), "float32")
        if lp.se_in and spec.se_type in CUMULATIVE_SE:
            out[p + "se_mean"] = LiteState((1, 1, 1, lp.expand), "float32")
        if lp.se_in and spec.positional_encoding:
            out[p + "pe_sin"] = LiteState((1, 1, 1, lp.se_in), "float32")
            out[p + "pe_cos"] = LiteState((1, 1, 1, lp.se_in), "float32")
    out["head_mean"] = LiteState((1, 1, 1, spec.head.filters), "float32")
    return out


def frame_step(spec: ArchSpec, model: Any, image_rank: int = 5, int8: bool = False):
    """The one-frame stream function of `spec` with `model`'s weights. `image_rank` 5: ``image`` is
    [1, 1, H, W, 3] (like the Keras stream model's, one frame); 4: [1, H, W, 3] (no rank-5 tensor at all,
    for the GPU delegate). Call it inside a `tf.function`.

    `int8=True` writes the two ops XNNPACK has no int8 kernel for in forms it has: hard-swish as
    x · relu6(x + 3) · 1/6 (ADD, MUL, MUL instead of HARD_SWISH) and the skip path's average pool as a
    depthwise conv of 1/9 times a constant map of 9 / (cells inside the frame) (instead of
    AVERAGE_POOL_2D); the same function in float, a few more ops."""
    if image_rank not in (4, 5):
        raise ValueError(f"image_rank: {image_rank}, must be 4 or 5")
    lowering = _Lowering(spec, model, int8)

    def step(features: dict) -> dict:
        import tensorflow as tf

        image = features["image"]
        if image_rank == 5:
            image = tf.reshape(image, [1, *image.shape[2:]])
        return lowering.run(image, features)

    return step




def _inside(n: int, k: int, s: int) -> np.ndarray:
    """Cells of each 'SAME' window (size k, stride s) that lie inside an axis of n cells."""
    out = -(-n // s)
    before = max((out - 1) * s + k - n, 0) // 2
    starts = np.arange(out) * s - before
    return np.minimum(starts + k, n) - np.maximum(starts, 0)


def _f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


class _Lowering:
    """Walks the plan with folded weights; `run` builds one frame's graph and collects new states."""

    def __init__(self, spec: ArchSpec, model: Any, int8: bool = False):
        from search_space.layers import ACTIVATIONS

        self.spec = spec
        self.model = model
        self.acts = dict(ACTIVATIONS)
        self.int8 = int8
        if int8:  # no HARD_SWISH op: XNNPACK has no int8 kernel for it
            import tensorflow as tf

            self.acts["hard_swish"] = lambda x: tf.nn.relu6(x + 3.0) * (x * np.float32(1 / 6))
        self.plan = walk(spec)
        self.weights = {v.path: np.asarray(v.numpy(), np.float64) for v in model.weights}  # read once, eagerly

    def weight(self, name: str, attr: str = "kernel") -> np.ndarray:
        return self.weights[f"{name}/{attr}"]

    def bn(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) of inference-mode BatchNormalization `name`."""
        gamma, beta, mean, var = (self.weight(name, a) for a in ("gamma", "beta", "moving_mean", "moving_variance"))
        scale = gamma / np.sqrt(var + self.model.get_layer(name).epsilon)
        return scale, beta - mean * scale

    # -- ops ----------------------------------------------------------------------------------
    def pointwise(self, x, name, bn=None, scale=1.0):
        """1×1 conv (a Dense of the Keras model) with the following BN (and ReZero scale) folded."""
        import tensorflow as tf

        kernel = self.weight(name)
        s, b = self.bn(bn) if bn else (np.ones(kernel.shape[1]), np.zeros(kernel.shape[1]))
        kernel = (kernel * s * scale)[None, None]
        return tf.nn.bias_add(tf.nn.conv2d(x, _f32(kernel), 1, "SAME"), _f32(b * scale))

    def spatial(self, x, name, bn, strides, tap=0):
        """The spatial part (kernel tap `tap`) of FrameConv3D `name`, its BN folded (conv, then bias)."""
        import tensorflow as tf

        kernel = self.weight(name)[tap]
        s, b = self.bn(bn)
        stride = [1, *strides, 1]
        if kernel.ndim == 4:  # dense (the stem): (kh, kw, C, F)
            return tf.nn.bias_add(tf.nn.conv2d(x, _f32(kernel * s), stride, "SAME"), _f32(b))
        w = _f32((kernel * s)[..., None])
        return tf.nn.bias_add(tf.nn.depthwise_conv2d(x, w, stride, "SAME"), _f32(b))

    def temporal(self, x, name, bn, strides, features, new, prefix):
        """A causal k_t × k_h × k_w depthwise conv of one frame through its partial-output states."""
        import tensorflow as tf

        kernel = self.weight(name)
        kt = kernel.shape[0]
        s, b = self.bn(bn)
        if kernel.shape[1:3] == (1, 1) and tuple(strides) == (1, 1):  # k_t × 1 × 1: a per-channel multiply a tap
            taps = [x * _f32(kernel[i, 0, 0] * s) for i in range(kt)]
        else:
            taps = [tf.nn.depthwise_conv2d(x, _f32((kernel[i] * s)[..., None]), [1, *strides, 1], "SAME")
                    for i in range(kt)]
        partial = [features[f"{prefix}tap{j}"] for j in range(1, kt)]
        for j in range(1, kt):  # the output j frames ahead gets tap kt-1-j of this frame
            new[f"{prefix}tap{j}"] = partial[j] + taps[kt - 1 - j] if j < kt - 1 else taps[0]
        return tf.nn.bias_add(partial[0] + taps[kt - 1], _f32(b))

    def act(self, x, kind=None):
        return self.acts[kind or self.spec.activation](x)

    def running_mean(self, x_mean, name, features, new):
        """Mean over the frames seen, this one included: m − (m − x) / n, written with SUB and DIV only
        (an int8 export keeps those two op types in float: `evaluation.deploy.export.save_tflite`)."""
        m = features[name] - (features[name] - x_mean) / self.seen
        new[name] = m
        return m

    def dense(self, x, name):
        """A Dense with bias of the Keras model on a [1, 1, 1, C] vector, as a 1×1 conv."""
        import tensorflow as tf

        kernel, bias = self.weight(name), self.weight(name, "bias")
        return tf.nn.bias_add(tf.nn.conv2d(x, _f32(kernel[None, None]), 1, "VALID"), _f32(bias))

    def positional(self, lp, features, new):
        """MoViNet's sinusoid at this frame's position: channel k is sin(n·θ_k + φ_k) (φ = 0 for the sine
        half, π/2 for the cosine half), advanced one frame by a rotation of (sin, cos)."""
        p = f"b{lp.index}_"
        c = lp.se_in
        j = np.arange(c)
        theta = 1.0 / np.power(10000.0, 2 * (j // 2) / c)
        theta = np.concatenate([theta[0::2], theta[1::2]])
        phase = np.concatenate([np.zeros(len(j[0::2])), np.full(len(j[1::2]), np.pi / 2)])
        u0, v0 = _f32(np.sin(phase)), _f32(np.cos(phase))
        cos, sin = _f32(np.cos(theta)), _f32(np.sin(theta))
        u, v = features[p + "pe_sin"] + u0, features[p + "pe_cos"] + v0
        new[p + "pe_sin"] = u * cos + v * sin - u0
        new[p + "pe_cos"] = v * cos - u * sin - v0
        return u

    def squeeze_excite(self, x, lp, features, new):
        import tensorflow as tf

        spec = self.spec
        p = f"b{lp.index}_"
        means = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
        pooled = means
        if spec.se_type in CUMULATIVE_SE:
            glob = self.running_mean(means, p + "se_mean", features, new)
            pooled = glob if spec.se_type == "3d" else tf.concat([glob, means], axis=-1)
        if spec.positional_encoding:
            scale = float(self.weight(p + "se", "pe_scale"))
            pooled = pooled + self.positional(lp, features, new) * np.float32(scale)
        h = self.act(self.dense(pooled, p + "se/reduce"))
        return x * self.act(self.dense(h, p + "se/expand"), spec.gating_activation)

    def block(self, x, lp, features, new):
        """One inverted bottleneck on one frame (see `search_space.builder`)."""

        spec = self.spec
        p = f"b{lp.index}_"
        kt = lp.kernel[0]
        strides = lp.strides[1:]
        inputs = x
        x = self.act(self.pointwise(x, p + "expand", p + "expand_bn"))
        if spec.conv_type == "3d":
            if kt > 1:
                x = self.temporal(x, p + "dw", p + "dw_bn", strides, features, new, p)
            else:
                x = self.spatial(x, p + "dw", p + "dw_bn", strides)
            x = self.act(x)
        else:  # 2plus1d: spatial, then the temporal k_t × 1 × 1 with its own BN
            x = self.act(self.spatial(x, p + "dw", p + "dw_bn", strides))
            if kt > 1:
                x = self.act(self.temporal(x, p + "dw_t", p + "dw_t_bn", (1, 1), features, new, p))
        if lp.se_in:
            x = self.squeeze_excite(x, lp, features, new)
        scale = float(self.weight(p + "scale", "scale"))
        x = self.pointwise(x, p + "project", p + "project_bn", scale=scale)
        skip = inputs
        if lp.skip_conv:
            if strides != (1, 1):
                skip = self.skip_pool(skip, strides)
            skip = self.pointwise(skip, p + "skip", p + "skip_bn")
        return skip + x

    def skip_pool(self, x, strides):
        """`search_space.layers.SkipPool` on a frame: 'SAME' average pool, padded cells left out."""
        import tensorflow as tf

        window = [3 if s > 1 else 1 for s in strides]
        if not self.int8:
            return tf.nn.avg_pool2d(x, window, list(strides), "SAME")
        _, h, w, c = x.shape
        inside = np.outer(_inside(h, window[0], strides[0]), _inside(w, window[1], strides[1]))
        correction = _f32(np.prod(window) / inside)[None, :, :, None]
        mean = tf.nn.depthwise_conv2d(x, _f32(np.full([*window, c, 1], 1 / np.prod(window))), [1, *strides, 1],
                                      "SAME")
        return mean * correction if np.any(correction != 1) else mean

    def run(self, image, features: dict) -> dict:
        """One frame [1, H, W, 3] through the network; {"logits": [1, K], **new states}."""
        import tensorflow as tf

        spec = self.spec
        new: dict = {}
        self.seen = features["frames"] - np.float32(-1.0)  # SUB: kept float in int8 files, never saturates
        new["frames"] = self.seen
        x = self.act(self.spatial(image, "stem_conv", "stem_bn", spec.stem.strides[1:]))
        for lp in self.plan.layers:
            x = self.block(x, lp, features, new)
        x = self.act(self.pointwise(x, "head_conv", "head_bn"))
        x = self.running_mean(tf.reduce_mean(x, axis=[1, 2], keepdims=True), "head_mean", features, new)
        x = self.act(self.dense(x, "classifier_hidden"), spec.classifier_activation)
        logits = tf.reshape(self.dense(x, "classifier"), [1, -1])
        return {"logits": logits, **new}
