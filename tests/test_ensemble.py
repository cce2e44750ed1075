"""Temporal ensemble: model A on frames 0, 2, 4, …, model B on 1, 3, 5, …, logits averaged."""

import numpy as np
import pytest

from evaluation.deploy.ensemble import StreamEnsemble, ensemble_logits, split_frames
from evaluation.deploy.predict import Sampling, StreamSession, predict_video, softmax_top_k
from tests.models import randomize, small_causal_spec


@pytest.fixture(scope="module")
def models():
    from search_space.builder import build_model

    spec = small_causal_spec()
    out = {}
    for key, seed in (("a", 1), ("b", 2)):
        base = build_model(spec, num_classes=5)
        randomize(base, seed)
        stream = build_model(spec, num_classes=5, mode="stream", resolution=32, batch_size=1)
        stream.set_weights(base.get_weights())
        out[key], out[key + "_stream"] = base, stream
    return out


@pytest.fixture(scope="module")
def clip():
    """Even and odd frames come from different distributions, so swapping them changes the result."""
    rng = np.random.default_rng(0)
    video = np.empty((1, 8, 32, 32, 3), np.float32)
    video[:, 0::2] = rng.uniform(0.0, 0.4, (1, 4, 32, 32, 3))
    video[:, 1::2] = rng.uniform(0.6, 1.0, (1, 4, 32, 32, 3))
    return video


def test_split_frames_gives_even_frames_to_a_and_odd_frames_to_b(clip):
    even, odd = split_frames(clip)
    np.testing.assert_array_equal(even, clip[:, [0, 2, 4, 6]])
    np.testing.assert_array_equal(odd, clip[:, [1, 3, 5, 7]])


def test_ensemble_logits_is_the_mean_of_each_model_on_its_half(models, clip):
    a = np.asarray(models["a"](clip[:, 0::2], training=False))
    b = np.asarray(models["b"](clip[:, 1::2], training=False))
    got = ensemble_logits(models["a"], models["b"], clip)
    np.testing.assert_allclose(got, (a + b) / 2, rtol=0, atol=1e-6)
    # the halves matter: swapping the models' frames gives another answer
    swapped = (np.asarray(models["a"](clip[:, 1::2])) + np.asarray(models["b"](clip[:, 0::2]))) / 2
    assert np.abs(got - swapped).max() > 1e-3


def test_softmax_is_applied_to_the_averaged_logits(models, clip):
    logits = ensemble_logits(models["a"], models["b"], clip)[0]
    labels = [f"c{i}" for i in range(5)]
    top = softmax_top_k(logits, labels, 5)
    p = np.exp(logits - logits.max())
    p /= p.sum()
    assert [name for name, _ in top] == [labels[i] for i in np.argsort(-p)]
    np.testing.assert_allclose([prob for _, prob in top], np.sort(p)[::-1], atol=1e-6)


def test_stream_ensemble_alternates_frames_and_matches_the_clip_ensemble(models, clip):
    ens = StreamEnsemble(StreamSession.from_keras(models["a_stream"]), StreamSession.from_keras(models["b_stream"]))
    ens.push(clip[:, :3])  # sub-clips of odd length exercise the parity bookkeeping
    ens.push(clip[:, 3:4])
    ens.push(clip[:, 4:])
    assert ens.frames_seen == 8
    assert [s.frames_seen for s in ens.sessions] == [4, 4]
    np.testing.assert_allclose(ens.logits, ensemble_logits(models["a"], models["b"], clip), atol=1e-4)


def test_predict_video_ensemble_in_clip_and_stream_mode(models, clip):
    expected = ensemble_logits(models["a"], models["b"], clip)[0]
    frames = clip[0]
    clip_pred = predict_video(models["a"], frames, ensemble=models["b"], sampling=Sampling(resolution=32))
    stream_pred = predict_video(models["a_stream"], frames, ensemble=models["b_stream"], stream=True)
    np.testing.assert_allclose(clip_pred.logits, expected, atol=1e-5)
    np.testing.assert_allclose(stream_pred.logits, expected, atol=1e-4)
    assert clip_pred.frames_seen == stream_pred.frames_seen == 8


def test_ensemble_needs_two_frames(models):
    with pytest.raises(ValueError, match="frames >= 2"):
        ensemble_logits(models["a"], models["b"], np.zeros((1, 1, 32, 32, 3), np.float32))
