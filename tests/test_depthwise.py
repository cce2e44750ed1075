"""`FrameConv3D` (fast per-tap depthwise / dense 3D conv) equals Keras' `Conv3D`, forward and backward."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from search_space.layers import FrameConv3D, SkipPool

CHANNELS = 4


def keras_conv3d(kernel, strides, causal, groups):
    """Keras Conv3D holding `kernel` (kt, kh, kw, C_in / groups, F), and a function applying it.

    Causal: pad k_t − 1 frames in front, run the 'same' conv, keep the frames that saw that padding.
    """
    kt = kernel.shape[0]
    conv = keras.layers.Conv3D(kernel.shape[-1], kernel.shape[:3], strides=strides, padding="same",
                               groups=groups, use_bias=False)
    conv.build((None, None, None, None, kernel.shape[-2] * groups))
    conv.kernel.assign(kernel)

    def run(x):
        if not causal:
            return conv(x)
        p0 = (kt - 1) // 2
        y = conv(tf.pad(x, [[0, 0], [kt - 1, 0], [0, 0], [0, 0], [0, 0]]))
        return y[:, p0:p0 + x.shape[1]]

    return conv, run


def forward_and_grads(layer_fn, x, variable, upstream_seed=7):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer_fn(x)
        upstream = tf.random.stateless_normal(y.shape, seed=[upstream_seed, 0])
        loss = tf.reduce_sum(y * upstream)
    dx, dk = tape.gradient(loss, [x, variable])
    return y, dx, dk


CASES = [  # kernel, strides, causal, frames, size
    ((3, 3, 3), (1, 2, 2), False, 5, 8),
    ((3, 3, 3), (1, 2, 2), True, 5, 8),
    ((5, 3, 3), (1, 2, 2), True, 6, 9),
    ((5, 3, 3), (1, 1, 1), False, 6, 7),
    ((3, 3, 3), (1, 1, 1), True, 4, 6),
    ((3, 1, 1), (1, 1, 1), True, 5, 6),
    ((3, 1, 1), (1, 1, 1), False, 5, 6),
    ((3, 1, 1), (2, 1, 1), False, 5, 6),
    ((2, 1, 1), (2, 1, 1), False, 6, 5),
    ((1, 5, 5), (1, 2, 2), False, 3, 9),
    ((3, 3, 3), (2, 2, 2), False, 5, 8),
    ((3, 3, 3), (2, 2, 2), False, 6, 9),
    ((3, 1, 1), (3, 1, 1), False, 7, 4),
    ((3, 3, 3), (1, 2, 1), False, 4, 7),  # unequal spatial strides: TF's own depthwise kernel refuses them
    ((1, 3, 3), (1, 1, 2), False, 3, 8),
    ((3, 3, 3), (2, 1, 2), False, 5, 6),
]


@pytest.mark.parametrize("kernel_size, strides, causal, frames, size", CASES)
def test_fast_depthwise_matches_grouped_conv3d_forward_and_gradients(kernel_size, strides, causal, frames,
                                                                      size):
    rng = np.random.default_rng(sum(kernel_size) + frames)
    x = tf.constant(rng.normal(size=(2, frames, size, size, CHANNELS)).astype("float32"))
    kernel = rng.normal(size=(*kernel_size, CHANNELS)).astype("float32")
    layer = FrameConv3D(kernel_size, strides, causal=causal)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    conv, reference = keras_conv3d(kernel.reshape(*kernel_size, 1, CHANNELS), strides, causal, CHANNELS)

    y, dx, dk = forward_and_grads(layer, x, layer.kernel.value)
    y_ref, dx_ref, dk_ref = forward_and_grads(reference, x, conv.kernel.value)
    assert y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-5)
    np.testing.assert_allclose(dk, tf.reshape(dk_ref, dk.shape), atol=1e-4)


@pytest.mark.parametrize("kernel_size, strides, causal",
                         [((1, 3, 3), (1, 2, 2), False), ((3, 3, 3), (1, 2, 2), True)])
def test_fast_dense_conv_matches_conv3d(kernel_size, strides, causal):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(1, 4, 9, 9, 3)).astype("float32"))
    kernel = rng.normal(size=(*kernel_size, 3, 5)).astype("float32")
    layer = FrameConv3D(kernel_size, strides, filters=5, causal=causal)
    layer.build(x.shape)
    layer.kernel.assign(kernel)
    conv, reference = keras_conv3d(kernel, strides, causal, 1)
    y, dx, dk = forward_and_grads(layer, x, layer.kernel.value)
    y_ref, dx_ref, dk_ref = forward_and_grads(reference, x, conv.kernel.value)
    np.testing.assert_allclose(y, y_ref, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-5)
    np.testing.assert_allclose(dk, dk_ref, atol=1e-4)


def test_grouped_implementation_shares_weights_and_results_with_fast():
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(1, 5, 8, 8, CHANNELS)).astype("float32"))
    fast = FrameConv3D((3, 3, 3), (1, 2, 2), causal=True)
    grouped = FrameConv3D((3, 3, 3), (1, 2, 2), causal=True, implementation="grouped")
    fast.build(x.shape)
    grouped.build(x.shape)
    grouped.set_weights(fast.get_weights())
    assert fast.count_params() == grouped.count_params() == 27 * CHANNELS
    np.testing.assert_allclose(fast(x), grouped(x), atol=1e-5)


def test_fast_depthwise_accepts_any_frame_count_in_one_trace():
    layer = FrameConv3D((5, 3, 3), (1, 2, 2))
    layer.build((None, None, None, None, CHANNELS))
    fn = tf.function(layer, input_signature=[tf.TensorSpec((None, None, None, None, CHANNELS))])
    for frames, size in ((3, 8), (7, 9)):
        x = tf.random.normal((1, frames, size, size, CHANNELS))
        np.testing.assert_allclose(fn(x), layer(x), atol=1e-5)
        assert fn(x).shape == (1, frames, (size + 1) // 2, (size + 1) // 2, CHANNELS)
    assert fn.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("strides, out", [((1, 2, 2), (1, 3, 2, 2, 1)), ((2, 2, 2), (1, 2, 2, 2, 1))])
def test_skip_pool_leaves_padded_cells_out_of_the_mean(strides, out):
    y = SkipPool(strides)(tf.ones((1, 3, 4, 4, 1)))
    assert y.shape == out
    np.testing.assert_allclose(y, np.ones(out))  # counting zero padding would pull border cells below 1


def test_unknown_implementation_names_the_allowed_values():
    with pytest.raises(ValueError, match="fast, grouped"):
        FrameConv3D((3, 3, 3), implementation="xla")
