"""Stream TFLite files as `export_model` writes them (the one-frame graph of `evaluation.deploy.frame_graph`):
every op of the float file in XNNPACK, the 4-D-only file for the GPU delegate, float16, and int8 that
agrees with float over 32-frame streams without drifting."""

import numpy as np
import pytest

from evaluation.deploy.export import load_tflite, read_manifest
from evaluation.deploy.tflite_ops import op_profile
from tests.models import exported_small_stream

pytestmark = pytest.mark.slow

CLASSES = 5
FRAMES = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    _, paths, data = exported_small_stream(tmp_path_factory.mktemp("tflite-stream"),
                                           ("tflite", "tflite-fp16", "tflite-int8"), clips_per_class=4,
                                           frames=FRAMES, classes=CLASSES, gpu_compatible=True)
    return paths, data.val.x


def stream_logits(path, clip: np.ndarray, states: dict) -> np.ndarray:
    """Logits [frames, classes] after each frame of `clip` [frames, H, W, 3] streamed through `path`."""
    runner = load_tflite(path)
    rank = len(runner.get_input_details()["image"]["shape"])
    out = []
    for frame in clip:
        result = runner(image=frame.reshape((1,) * (rank - 3) + frame.shape), **states)
        states = {k: result[k] for k in states}
        out.append(result["logits"][0])
    return np.stack(out)


def zero_states(paths) -> dict:
    manifest = read_manifest(paths["manifest"].parent)
    return {n: np.zeros(s["shape"], s["dtype"]) for n, s in manifest["tflite_states"].items()}


def test_every_op_of_the_float_and_fp16_stream_files_runs_in_xnnpack(exported):
    paths, _ = exported
    for key in ("stream_tflite", "stream_tflite-fp16", "stream_tflite-gpu"):
        profile = op_profile(paths[key])
        assert profile.delegated_fraction == 1.0, (key, profile.describe_not_delegated())
        assert profile.partitions == 1, key
        assert "CAST" not in profile.ops and "CONCATENATION" in profile.ops  # SE 2plus3d: [clip | frame] pool


def test_gpu_compatible_file_has_no_tensor_above_rank_4_and_the_5d_files_logits(exported):
    from ai_edge_litert.interpreter import Interpreter

    paths, clips = exported
    interpreter = Interpreter(model_path=str(paths["stream_tflite-gpu"]))
    ranks = {t["name"]: len(t["shape"]) for t in interpreter.get_tensor_details()}
    assert max(ranks.values()) <= 4, {n: r for n, r in ranks.items() if r > 4}
    assert list(load_tflite(paths["stream_tflite-gpu"]).get_input_details()["image"]["shape"]) == [1, 32, 32, 3]
    assert read_manifest(paths["manifest"].parent)["stream_gpu_image_shape"] == [1, 32, 32, 3]
    states = zero_states(paths)
    want = stream_logits(paths["stream_tflite"], clips[0, :8], states)
    np.testing.assert_allclose(stream_logits(paths["stream_tflite-gpu"], clips[0, :8], states), want, atol=1e-5)


def test_fp16_stream_file_holds_float16_weights_and_gives_the_float_logits(exported):
    from ai_edge_litert.interpreter import Interpreter

    paths, clips = exported

    def dtypes(key):
        return {t["dtype"] for t in Interpreter(model_path=str(paths[key])).get_tensor_details()}

    assert np.float16 in dtypes("stream_tflite-fp16") and np.float16 not in dtypes("stream_tflite")
    assert load_tflite(paths["stream_tflite-fp16"]).get_input_details()["image"]["dtype"] == np.float32
    states = zero_states(paths)
    want = stream_logits(paths["stream_tflite"], clips[0, :8], states)
    np.testing.assert_allclose(stream_logits(paths["stream_tflite-fp16"], clips[0, :8], states), want, atol=5e-3)


def test_int8_stream_agrees_with_float_over_32_frames_without_drift(exported):
    paths, clips = exported
    states = zero_states(paths)
    flt = np.stack([stream_logits(paths["stream_tflite"], c, states) for c in clips])  # [clips, frames, K]
    q8 = np.stack([stream_logits(paths["stream_tflite-int8"], c, states) for c in clips])
    err = np.abs(flt - q8)
    spread = np.ptp(flt, axis=2).mean()
    assert err.max() <= 0.15 * spread, (err.max(), spread)
    drift = err.mean(axis=(0, 2))  # per frame
    assert drift[FRAMES // 2:].mean() <= 1.5 * drift[:FRAMES // 2].mean() + 0.01 * spread, drift  # no growth
    assert (flt[:, -1].argmax(-1) == q8[:, -1].argmax(-1)).all()
    profile = op_profile(paths["stream_tflite-int8"])
    assert profile.delegated_fraction == 1.0, profile.describe_not_delegated()  # int8 + the float running means
