"""Keras 3 layers of the MoViNet block that Keras lacks: a fast 3D convolution (dense or depthwise,
same / causal / stream padding), the skip-path pool, activations, the ReZero scale.

Why `FrameConv3D` exists: Keras' grouped `Conv3D` (groups = channels) runs 15–20× slower on CPU than
a dense conv. A depthwise k_t×k_h×k_w conv is instead computed as k_t 2D depthwise convs over frames
folded into the batch (oneDNN kernels), one per temporal tap, whose results are summed with the
tap's time shift. Time shifts use `tf.slice` / `tf.pad`, never strided slicing, whose gradient is
slow on CPU. The kernel is stored as a grouped Conv3D kernel without its size-1 axis, so a Keras
`Conv3D(groups=C)` kernel converts by a reshape and the parameter count is the same.

Layers that carry stream state take ``states=(...)`` and then return ``(outputs, new_states)``;
without it they are the base / causal layer. Float states are float32 whatever the dtype policy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

PACKAGE = "movinas"
IMPLEMENTATIONS = ("fast", "grouped")


# ---------------------------------------------------------------------------------------------
# shape helpers (static ints where known, scalar tensors where not, so base models accept any
# number of frames and any resolution)


def dims(x: tf.Tensor) -> list:
    """Static sizes of `x` where known, else dynamic scalars."""
    static = list(x.shape)
    if None not in static:
        return static
    dynamic = tf.unstack(tf.shape(x))
    return [dynamic[i] if d is None else d for i, d in enumerate(static)]


def _maximum0(v):
    return max(v, 0) if isinstance(v, int) else tf.maximum(v, 0)


def same_pads(n, k: int, s: int) -> tuple:
    """TF 'SAME' padding (before, after) of an axis of size `n` (int or scalar tensor)."""
    if s == 1:
        return (k - 1) // 2, k - 1 - (k - 1) // 2
    total = _maximum0(((n + s - 1) // s - 1) * s + k - n)
    return total // 2, total - total // 2


def _ceil_div(n, s: int):
    return None if n is None else -(-n // s)


def with_states(outputs, states):
    """Symbolic outputs of a stateful layer: new states have the shapes and dtypes of the old."""
    if states is None:
        return outputs
    return outputs, tuple(keras.KerasTensor(s.shape, dtype=s.dtype) for s in states)


def pad_axis(x: tf.Tensor, axis: int, before, after) -> tf.Tensor:
    if isinstance(before, int) and isinstance(after, int) and before == after == 0:
        return x
    pads = [[0, 0]] * len(x.shape)
    pads[axis] = [before, after]
    return tf.pad(x, pads)


def slice_time(x: tf.Tensor, begin: int, length) -> tf.Tensor:
    """Frames [begin, begin + length) of [B, T, ...] (`tf.slice`: its gradient is a cheap pad)."""
    size = dims(x)
    size[1] = length
    return tf.slice(x, [0, begin] + [0] * (len(size) - 2), size)


def fold_frames(x: tf.Tensor) -> tf.Tensor:
    """[B, T, H, W, C] → [B·T, H, W, C]."""
    _, _, h, w, c = dims(x)
    return tf.reshape(x, [-1, h, w, c])


def unfold_frames(y: tf.Tensor, batch, frames) -> tf.Tensor:
    """[B·T, H, W, C] → [B, T, H, W, C]."""
    _, h, w, c = dims(y)
    return tf.reshape(y, [batch, frames, h, w, c])


def every_nth(x: tf.Tensor, axis: int, s: int) -> tf.Tensor:
    """Elements 0, s, 2s, … of `axis` (a reshape and a `tf.slice`, whose gradients are cheap; a
    strided slice's is slow on CPU)."""
    if s == 1:
        return x
    size = dims(x)
    n = (size[axis] + s - 1) // s
    x = pad_axis(x, axis, 0, n * s - size[axis])
    x = tf.reshape(x, [*size[:axis], n, s, *size[axis + 1:]])
    begin = [0] * (len(size) + 1)
    x = tf.slice(x, begin, [-1] * (axis + 1) + [1] + [-1] * (len(size) - axis - 1))
    return tf.reshape(x, [*size[:axis], n, *size[axis + 1:]])


# ---------------------------------------------------------------------------------------------
# convolution


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrameConv3D(keras.layers.Layer):
    """3D convolution without bias, depthwise (`filters=None`) or dense, 'SAME' in space.

    Time padding: 'SAME' (TF convention) by default; `causal=True` puts all k_t − 1 zero frames in
    front. With ``states=(buffer,)`` (stream mode, causal only) the conv runs on
    concat(buffer, inputs) without time padding and also returns the new buffer, the last k_t − 1
    frames of that concat. `implementation="grouped"` runs Keras' own (grouped) conv op instead,
    for benchmarks and equivalence tests; the weights are the same.
    """

    def __init__(self, kernel_size, strides=(1, 1, 1), filters=None, causal=False, implementation="fast",
                 **kwargs):
        super().__init__(**kwargs)
        if implementation not in IMPLEMENTATIONS:
            allowed = ", ".join(IMPLEMENTATIONS)
            raise ValueError(f"implementation: {implementation!r}, must be one of {allowed}")
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.filters = filters
        self.causal = bool(causal)
        self.implementation = implementation

    def build(self, input_shape):
        c = input_shape[-1]
        shape = (*self.kernel_size, c) if self.filters is None else (*self.kernel_size, c, self.filters)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="he_normal")

    def call(self, inputs, states=None):
        kt = self.kernel_size[0]
        x = inputs
        if states is not None:
            (buffer,) = states
            x = tf.concat([tf.cast(buffer, x.dtype), x], axis=1)
            pads = (0, 0)
        elif self.causal:
            pads = (kt - 1, 0)
        else:
            pads = same_pads(dims(x)[1], kt, self.strides[0])
        run = self._fast if self.implementation == "fast" else self._grouped
        y = run(x, *pads)
        if states is None:
            return y
        return y, (tf.cast(x[:, -(kt - 1):], "float32"),)

    def compute_output_spec(self, inputs, states=None):
        b, t, h, w, c = inputs.shape
        st, sh, sw = self.strides
        shape = (b, _ceil_div(t, st), _ceil_div(h, sh), _ceil_div(w, sw), self.filters or c)
        return with_states(keras.KerasTensor(shape, dtype=self.compute_dtype), states)

    # -- fast: one 2D conv per temporal tap --------------------------------------------------
    def _frames(self, x, w):
        """2D conv of every frame of `x` with the (kh, kw, C[, F]) kernel `w` of one tap."""
        _, sh, sw = self.strides
        b, t = dims(x)[:2]
        xf = fold_frames(x)
        if self.filters is None and sh != sw:  # TF's own kernels (no oneDNN, GPU) need equal strides
            _, h, wd, _ = dims(xf)
            xf = tf.pad(xf, [[0, 0], list(same_pads(h, self.kernel_size[1], sh)),
                             list(same_pads(wd, self.kernel_size[2], sw)), [0, 0]])
            y = tf.nn.depthwise_conv2d(xf, w[..., None], [1, 1, 1, 1], "VALID")
            y = every_nth(every_nth(y, 1, sh), 2, sw)
        elif self.filters is None:
            y = tf.nn.depthwise_conv2d(xf, w[..., None], [1, sh, sw, 1], "SAME")
        else:
            y = tf.nn.conv2d(xf, w, [1, sh, sw, 1], "SAME")
        return unfold_frames(y, b, t)

    def _temporal(self, x, p0, p1):
        """Depthwise k_t×1×1: one 2D depthwise conv over (time, pixels), the pixels of a frame laid
        out along one axis. A temporal stride keeps every s-th frame of the stride-1 result: TF's own
        depthwise kernels (CPU without oneDNN, GPU) refuse a stride along one axis only."""
        kt = self.kernel_size[0]
        x = pad_axis(x, 1, p0, p1)
        _, t, h, w, c = dims(x)
        y = tf.nn.depthwise_conv2d(tf.reshape(x, [-1, t, h * w, c]),
                                   tf.reshape(tf.cast(self.kernel, x.dtype), [kt, 1, c, 1]),
                                   [1, 1, 1, 1], "VALID")
        y = every_nth(y, 1, self.strides[0])
        return tf.reshape(y, [-1, dims(y)[1], h, w, c])

    def _fast(self, x, p0, p1):
        kt, kh, kw = self.kernel_size
        st, sh, sw = self.strides
        if self.filters is None and kh == kw == sh == sw == 1:
            return self._temporal(x, p0, p1)
        taps = tf.unstack(tf.cast(self.kernel, x.dtype), axis=0)
        t = dims(x)[1]
        if kt == 1 and st == 1:
            return self._frames(x, taps[0])
        if st > 1:  # strided time ('SAME' only): gather the frames each tap reads
            xp = pad_axis(x, 1, p0, p1)
            t_out = (t + st - 1) // st
            return tf.add_n([self._frames(tf.gather(xp, tf.range(t_out) * st + i, axis=1), w)
                             for i, w in enumerate(taps)])
        same_length = isinstance(p0, int) and p0 + p1 == kt - 1
        if same_length and sh * sw > 1:
            # spatial stride: convolve each frame once per tap, shift the (smaller) outputs in time
            outs = []
            for i, w in enumerate(taps):
                z = self._frames(x, w)
                d = i - p0
                z = pad_axis(z, 1, max(-d, 0), max(d, 0))
                outs.append(slice_time(z, max(d, 0), t))
            return tf.add_n(outs)
        # otherwise slice each tap's input frames from the padded clip
        xp = pad_axis(x, 1, p0, p1)
        t_out = t + p0 + p1 - kt + 1
        return tf.add_n([self._frames(slice_time(xp, i, t_out), w)
                         for i, w in enumerate(taps)])

    # -- grouped: Keras' conv op (groups = channels for depthwise) ----------------------------
    def _grouped(self, x, p0, p1):
        _, _, h, w, c = dims(x)
        kt, kh, kw = self.kernel_size
        _, sh, sw = self.strides
        # one tf.pad: TF 2.21's oneDNN rewrite fuses only the last of chained pads into a Conv3D
        x = tf.pad(x, [[0, 0], [p0, p1], list(same_pads(h, kh, sh)), list(same_pads(w, kw, sw)), [0, 0]])
        kernel = tf.cast(self.kernel, x.dtype)
        if self.filters is None:
            kernel = tf.reshape(kernel, (kt, kh, kw, 1, -1))
        return keras.ops.conv(x, kernel, strides=self.strides, padding="valid")

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                "filters": self.filters, "causal": self.causal, "implementation": self.implementation}


# ---------------------------------------------------------------------------------------------
# element-wise and pooling layers


def hard_swish(x):
    return x * tf.nn.relu6(x + 3.0) / 6.0


def hard_sigmoid(x):
    return tf.nn.relu6(x + 3.0) * 0.16667


ACTIVATIONS = {
    "swish": tf.nn.silu,
    "hard_swish": hard_swish,
    "relu": tf.nn.relu,
    "sigmoid": tf.sigmoid,
    "hard_sigmoid": hard_sigmoid,
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class Act(keras.layers.Layer):
    """One of `ACTIVATIONS` by name (hard-sigmoid uses MoViNet's 0.16667 literal)."""

    def __init__(self, kind, **kwargs):
        super().__init__(**kwargs)
        if kind not in ACTIVATIONS:
            raise ValueError(f"activation: {kind!r}, must be one of {', '.join(ACTIVATIONS)}")
        self.kind = kind

    def call(self, inputs):
        return ACTIVATIONS[self.kind](inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


@keras.saving.register_keras_serializable(package=PACKAGE)
class SkipPool(keras.layers.Layer):
    """Average pool of the skip path of a downsampling layer: window 3 along every strided axis
    (1 elsewhere), the layer's strides, 'SAME' padding with padded cells left out of the mean."""

    def __init__(self, strides, **kwargs):
        super().__init__(**kwargs)
        self.strides = tuple(int(s) for s in strides)

    def call(self, inputs):
        window = [3 if s > 1 else 1 for s in self.strides]
        st, sh, sw = self.strides
        if st > 1:
            return tf.nn.avg_pool3d(inputs, window, self.strides, "SAME")
        b, t = dims(inputs)[:2]
        y = tf.nn.avg_pool2d(fold_frames(inputs), window[1:], [sh, sw], "SAME")
        return unfold_frames(y, b, t)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *(_ceil_div(n, s) for n, s in zip(input_shape[1:4], self.strides)),
                input_shape[4])

    def get_config(self):
        return {**super().get_config(), "strides": self.strides}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LayerScale(keras.layers.Layer):
    """ReZero-style learnable scalar on a block's main branch, initialised to 0."""

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(), initializer="zeros")

    def call(self, inputs):
        return inputs * tf.cast(self.scale, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


from . import pooling  # noqa: E402, F401  the stream pooling layers register with Keras beside these
