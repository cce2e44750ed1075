"""Stream mode: a clip fed frame by frame or in sub-clips gives the causal whole-clip logits, with
constant-size explicit states whose size is what the cost model counts."""

import keras
import numpy as np
import pytest

from search_space import ArchSpec, estimate_cost, movinet, walk
from search_space.builder import build_model, init_states, stream_step
from search_space.stream import model_state_specs, state_specs

RES = 32


def small_causal_spec(conv_type="2plus1d", se_type="2plus3d", positional_encoding=True, last="2x3x3") -> ArchSpec:
    return ArchSpec.from_dict({
        "name": "tiny-causal",
        "stem": {"filters": 8},
        "stages": [
            {"filters": 8, "blocks": [{"expand": 16, "kernel": "1x3x3", "strides": "1x2x2"},
                                      {"expand": 8, "kernel": "3x3x3"}]},
            {"filters": 16, "blocks": [{"expand": 32, "kernel": "5x3x3", "strides": "1x2x2"},
                                       {"expand": 24, "kernel": "3x1x1"}]},
            {"filters": 24, "blocks": [{"expand": 48, "kernel": last, "strides": "1x2x2"}]},
        ],
        "head": {"filters": 32, "hidden": 64},
        "causal": True, "conv_type": conv_type, "se_type": se_type,
        "positional_encoding": positional_encoding,
        "activation": "hard_swish", "gating_activation": "hard_sigmoid",
    })


def randomize(model: keras.Model, seed: int = 0) -> None:
    """Make every part matter: nonzero ReZero and positional-encoding scalars, BN statistics away
    from (0, 1). Kernels keep their random initialisation."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.2, c))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, c))
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0, 0.2, c))
    for w in model.weights:
        if len(w.shape) == 0:
            w.assign(rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0]))


def causal_and_stream(spec, num_classes=7):
    base = build_model(spec, num_classes)
    randomize(base)
    stream = build_model(spec, num_classes, mode="stream", resolution=RES)
    stream.set_weights(base.get_weights())
    return base, stream


def clip(frames=16, seed=1):
    return np.random.default_rng(seed).uniform(0, 1, (1, frames, RES, RES, 3)).astype("float32")


def run_stream(stream, spec, video, step):
    states = init_states(spec, 1, RES)
    logits = []
    for t in range(0, video.shape[1], step):
        out, states = stream_step(stream, video[:, t:t + step], states)
        logits.append(np.asarray(out))
    return logits


@pytest.mark.parametrize("conv_type, se_type", [("2plus1d", "2plus3d"), ("3d", "3d"), ("3d_2plus1d", "2d")])
def test_stream_frame_by_frame_equals_causal_prefixes(conv_type, se_type):
    spec = small_causal_spec(conv_type, se_type)
    base, stream = causal_and_stream(spec)
    video = clip()
    per_frame = run_stream(stream, spec, video, 1)
    for t in (0, 1, 4, 9, 15):  # each call's logits are the causal model's on the clip so far
        np.testing.assert_allclose(per_frame[t], base(video[:, : t + 1]), atol=1e-4)
    whole = np.asarray(base(video))
    assert np.abs(whole - np.asarray(base(video[:, :8]))).max() > 1e-3  # the test is not vacuous
    sub_clips = run_stream(stream, spec, video, 4)
    np.testing.assert_allclose(sub_clips[-1], whole, atol=1e-4)
    np.testing.assert_allclose(per_frame[-1], whole, atol=1e-4)


def test_a0_stream_structure_streams_like_the_causal_clip():
    spec = movinet("a0", stream=True, positional_encoding=True)
    base, stream = causal_and_stream(spec, num_classes=10)
    video = clip(seed=2)
    whole = base(video)
    np.testing.assert_allclose(run_stream(stream, spec, video, 1)[-1], whole, atol=1e-4)
    np.testing.assert_allclose(run_stream(stream, spec, video, 4)[-1], whole, atol=1e-4)


def test_sub_clip_shorter_than_the_temporal_kernel_keeps_the_right_buffer():
    spec = small_causal_spec("3d", "3d", positional_encoding=False)  # 5x3x3 buffers 4 frames
    base, stream = causal_and_stream(spec)
    video = clip(frames=9, seed=3)
    states = init_states(spec, 1, RES)
    for a, b in ((0, 2), (2, 3), (3, 6), (6, 9)):
        logits, states = stream_step(stream, video[:, a:b], states)
    np.testing.assert_allclose(logits, base(video), atol=1e-4)


@pytest.mark.parametrize("spec", [small_causal_spec(), small_causal_spec("3d", "3d", False),
                                  small_causal_spec("2plus1d", "2d", True),
                                  movinet("a0", stream=True), movinet("a3", stream=True)],
                         ids=["2plus1d-pe", "3d", "2d-se", "a0", "a3-pe"])
def test_init_states_match_the_cost_model(spec):
    states = init_states(spec, batch_size=1, resolution=64)
    cost = estimate_cost(spec, resolution=64)
    assert sum(v.size for v in states.values()) * 4 == cost.state_bytes
    assert sum(v.size for v in states.values() if v.dtype == np.float32) == cost.state_floats
    assert len(states) == cost.state_tensors
    assert {v.dtype for k, v in states.items() if k.endswith("count")} == {np.dtype("int32")}


def test_stream_model_inputs_and_outputs_are_the_named_states():
    spec = small_causal_spec()
    stream = build_model(spec, 5, mode="stream", resolution=RES)
    names = list(init_states(spec, 1, RES))
    assert sorted(t.name for t in stream.inputs) == sorted(["image", *names])
    out = stream({"image": clip(frames=2), **init_states(spec, 1, RES)})
    assert sorted(out) == sorted(["logits", *names])
    assert out["logits"].shape == (1, 5)
    assert out["b1_buffer"].shape == (1, 2, 8, 8, 8)  # 3x3x3 at 8x8 after two 1x2x2 strides: 2 frames
    assert int(out["head_count"][0, 0]) == 2


@pytest.mark.parametrize("spec", [small_causal_spec(), small_causal_spec("3d", "3d", False),
                                  small_causal_spec("2plus1d", "2d", True)], ids=["2plus1d-pe", "3d", "2d-se"])
def test_the_layer_plan_describes_the_stream_models_states(spec):
    plan = walk(spec, resolution=RES)
    stream = build_model(spec, 5, mode="stream", resolution=RES)
    assert model_state_specs(stream) == {s.name: (s.shape, s.dtype) for s in plan.states}
    assert list(state_specs(spec, RES)) == [s.name for s in plan.states]
    assert not walk(spec.replace(causal=False, positional_encoding=False)).states  # base: no states


def test_wrong_state_shape_names_the_state_and_both_shapes():
    spec = small_causal_spec()
    stream = build_model(spec, 5, mode="stream", resolution=RES)
    states = init_states(spec, 1, RES)
    states["b1_buffer"] = np.zeros((1, 1, 8, 8, 8), "float32")
    with pytest.raises(ValueError, match=r"b1_buffer.*\(1, 1, 8, 8, 8\).*\(.\?., 2, 8, 8, 8\)"):
        stream_step(stream, clip(frames=1), states)
    del states["b1_buffer"]
    with pytest.raises(ValueError, match="missing b1_buffer"):
        stream_step(stream, clip(frames=1), states)
    expected = r"stream image: shape \(1, 1, 16, 16, 3\), expected \('\?', '\?', 32, 32, 3\)"
    with pytest.raises(ValueError, match=expected):
        stream_step(stream, np.zeros((1, 1, 16, 16, 3), "float32"), init_states(spec, 1, RES))


def test_stream_needs_a_causal_spec():
    with pytest.raises(ValueError, match="causal"):
        build_model(movinet("a0"), mode="stream")
    with pytest.raises(ValueError, match="causal"):
        init_states(movinet("a0"))


@pytest.mark.slow
@pytest.mark.parametrize("conv_type, se_type, last", [("2plus1d", "2plus3d", "2x3x3"), ("3d", "3d", "2x3x3"),
                                                     ("3d_2plus1d", "2d", "2x3x3"), ("3d", "3d", "3x1x1")])
def test_tflite_frame_graph_equals_the_stream_model_at_every_frame(conv_type, se_type, last):
    """The graph the stream TFLite files are converted from (4-D, folded BN, partial-output taps, running
    means, rotating positional encoding) gives the Keras stream model's logits frame by frame, in its
    float form and in its int8-friendly form."""
    import tensorflow as tf

    from evaluation.deploy.frame_graph import frame_step, lite_state_specs

    spec = small_causal_spec(conv_type, se_type, last=last)  # 3x1x1: a temporal-only kernel on a strided block
    base, stream = causal_and_stream(spec)
    video = clip(frames=6)  # past the longest temporal kernel (5)
    want = run_stream(stream, spec, video, 1)
    for int8 in (False, True):
        step = tf.function(frame_step(spec, base, int8=int8))
        states = {n: np.zeros(s.shape, s.dtype) for n, s in lite_state_specs(spec, RES).items()}
        assert all(len(s.shape) <= 4 for s in lite_state_specs(spec, RES).values())
        for t in range(video.shape[1]):
            out = step({"image": video[:, t:t + 1], **states})
            states = {n: out[n] for n in states}
            np.testing.assert_allclose(out["logits"], want[t], atol=1e-4)
