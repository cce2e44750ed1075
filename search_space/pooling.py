"""Layers built on global pooling: squeeze-excitation (with the optional positional encoding) and
the head pool, each in base, causal and stream form.

Causal pooling is cumulative: the pooled value at frame t is the mean of frames 0..t. In stream mode
the running sum and frame count are explicit states (see `search_space.stream`), accumulated in
float32 whatever the dtype policy.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .layers import ACTIVATIONS, PACKAGE, with_states

SE_POOLS = ("3d", "2d", "2plus3d")


def frame_means(x: tf.Tensor) -> tf.Tensor:
    """Spatial mean of every frame, in float32: [B, T, 1, 1, C]."""
    return tf.reduce_mean(tf.cast(x, "float32"), axis=[2, 3], keepdims=True)


def _as_count(count: tf.Tensor) -> tf.Tensor:
    """int32 [B, 1] (or [B]) counter → float32 [B, 1, 1, 1, 1]."""
    return tf.reshape(tf.cast(count, "float32"), [-1, 1, 1, 1, 1])


def positional_encoding(positions: tf.Tensor, channels: int) -> tf.Tensor:
    """MoViNet's sinusoid: [..., T] float positions → [..., T, channels].

    Channel j's angle is p / 10000^(2⌊j/2⌋ / C); the vector is [sin(even-j angles) | cos(odd-j angles)].
    """
    j = tf.range(channels)
    power = tf.cast(2 * (j // 2), "float32") / float(channels)
    angles = positions[..., None] / tf.pow(10000.0, power)
    return tf.concat([tf.sin(angles[..., 0::2]), tf.cos(angles[..., 1::2])], axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class SqueezeExcite(keras.layers.Layer):
    """Pool → [+ positional encoding] → 1×1×1 conv with bias to `hidden` → activation → 1×1×1 conv
    with bias to `channels` → gating → multiply the input.

    `pool`: "3d" global (cumulative over time when causal), "2d" per frame, "2plus3d" both,
    concatenated [3d | 2d]. Stream states, in order: se_sum and se_count (3d / 2plus3d), pe_count
    (with `positional_encoding`).
    """

    def __init__(self, channels, hidden, pool="3d", causal=False, activation="swish", gating="sigmoid",
                 positional_encoding=False, **kwargs):
        super().__init__(**kwargs)
        if pool not in SE_POOLS:
            raise ValueError(f"pool: {pool!r}, must be one of {', '.join(SE_POOLS)}")
        self.channels = int(channels)
        self.hidden = int(hidden)
        self.pool = pool
        self.causal = bool(causal)
        self.activation = activation
        self.gating = gating
        self.positional_encoding = bool(positional_encoding)
        self._convert_input_args = False  # keep float32 states float32; inputs are cast in call
        self.reduce = keras.layers.Dense(self.hidden, kernel_initializer="he_normal", dtype=self.dtype_policy,
                                         name="reduce")
        self.expand = keras.layers.Dense(self.channels, kernel_initializer="he_normal",
                                         dtype=self.dtype_policy, name="expand")

    @property
    def pool_in(self) -> int:
        return 2 * self.channels if self.pool == "2plus3d" else self.channels

    def build(self, input_shape):
        self.reduce.build((None, self.pool_in))
        self.expand.build((None, self.hidden))
        if self.positional_encoding:
            self.pe_scale = self.add_weight(name="pe_scale", shape=(), initializer="zeros")

    def call(self, inputs, states=None):
        x = tf.cast(inputs, self.compute_dtype)
        states = list(states) if states is not None else None
        new_states = []
        means = frame_means(x)
        frames = tf.shape(means)[1]
        pooled = means
        if self.pool != "2d":
            if not self.causal:
                glob = tf.reduce_mean(means, axis=1, keepdims=True)
                if self.pool == "2plus3d":
                    glob = glob + tf.zeros_like(means)  # one clip vector for every frame
            else:
                cum = tf.cumsum(means, axis=1)
                count = tf.reshape(tf.cast(tf.range(1, frames + 1), "float32"), [1, -1, 1, 1, 1])
                if states is not None:
                    total, seen = states.pop(0), states.pop(0)
                    cum = cum + total
                    count = count + _as_count(seen)
                    new_states += [total + tf.reduce_sum(means, axis=1, keepdims=True), seen + frames]
                glob = cum / count
            pooled = glob if self.pool == "3d" else tf.concat([glob, means], axis=-1)
        if self.positional_encoding:
            positions = tf.cast(tf.range(frames), "float32")[None, :]
            if states is not None:
                seen = states.pop(0)
                positions = positions + tf.cast(tf.reshape(seen, [-1, 1]), "float32")
                new_states.append(seen + frames)
            pe = positional_encoding(positions, self.pool_in)[:, :, None, None, :]
            pooled = pooled + tf.cast(self.pe_scale, "float32") * pe
        h = ACTIVATIONS[self.activation](self.reduce(tf.cast(pooled, self.compute_dtype)))
        gate = ACTIVATIONS[self.gating](self.expand(h))
        y = x * gate
        return y if states is None else (y, tuple(new_states))

    def compute_output_spec(self, inputs, states=None):
        return with_states(keras.KerasTensor(inputs.shape, dtype=self.compute_dtype), states)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "hidden": self.hidden, "pool": self.pool,
                "causal": self.causal, "activation": self.activation, "gating": self.gating,
                "positional_encoding": self.positional_encoding}


@keras.saving.register_keras_serializable(package=PACKAGE)
class HeadPool(keras.layers.Layer):
    """Global average pool to [B, 1, 1, 1, C], a clip mean even when causal.

    With ``states=(sum, count)`` (stream) it returns the running mean over every frame seen so far,
    (sum + this clip's frame sums) / (count + frames), and the new states.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False

    def call(self, inputs, states=None):
        means = frame_means(inputs)
        if states is None:
            return tf.cast(tf.reduce_mean(means, axis=1, keepdims=True), self.compute_dtype)
        total, seen = states
        total = total + tf.reduce_sum(means, axis=1, keepdims=True)
        seen = seen + tf.shape(means)[1]
        return tf.cast(total / _as_count(seen), self.compute_dtype), (total, seen)

    def compute_output_spec(self, inputs, states=None):
        shape = (inputs.shape[0], 1, 1, 1, inputs.shape[-1])
        return with_states(keras.KerasTensor(shape, dtype=self.compute_dtype), states)
