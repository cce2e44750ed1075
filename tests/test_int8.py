"""Int8 TFLite export (`tflite-int8`): full-integer post-training quantization, base and stream,
calibrated on clips of a dataset; float32 in and out, and within a recorded tolerance of float."""

import numpy as np
import pytest

from evaluation.deploy.export import export_model, load_tflite, read_manifest
from tests.models import exported_small_stream, small_causal_spec

CLASSES = 5
# recorded on this model (2026-11-29): int8 logits differ from float by at most 0.008 where the
# logits span about 1.6, and top-1 agrees on every clip; the test allows 4x that
TOLERANCE = 0.035


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, paths, data = exported_small_stream(tmp_path_factory.mktemp("int8"), ("yaml", "tflite", "tflite-int8"),
                                               clips_per_class=8, frames=8, classes=CLASSES)
    paths["keras_logits"] = model.predict(data.val.x, verbose=0)
    return paths, data.val.x


def _stream_logits(runner, states: dict, clip: np.ndarray) -> np.ndarray:
    for t in range(clip.shape[0]):
        out = runner(image=clip[None, t:t + 1], **states)
        states = {k: out[k] for k in states}
    return out["logits"]


def test_int8_files_hold_int8_weights_and_take_float_inputs(exported):
    from ai_edge_litert.interpreter import Interpreter

    paths, _ = exported
    manifest = read_manifest(paths["manifest"].parent)
    assert manifest["int8_calibration"] == {"clips": 24, "frames": 8}
    for key in ("tflite-int8", "stream_tflite-int8"):
        interpreter = Interpreter(model_path=str(paths[key]))
        assert any(t["dtype"] == np.int8 for t in interpreter.get_tensor_details()), key
        assert interpreter.get_signature_runner().get_input_details()["image"]["dtype"] == np.float32


def test_int8_matches_float_within_the_recorded_tolerance(exported):
    paths, clips = exported
    states = {n: np.zeros(s["shape"], s["dtype"])
              for n, s in read_manifest(paths["manifest"].parent)["tflite_states"].items()}
    for kind in ("", "stream_"):
        flt, q8 = load_tflite(paths[kind + "tflite"]), load_tflite(paths[kind + "tflite-int8"])
        if kind:
            a = np.concatenate([_stream_logits(flt, states, c) for c in clips])
            b = np.concatenate([_stream_logits(q8, states, c) for c in clips])
        else:  # against the float Keras model itself (see the note on issue 16: one full-suite run saw
            # the float base TFLite give atypical logits on 3 of 16 clips, never reproduced alone)
            a = paths["keras_logits"]
            b = np.concatenate([q8(image=c[None])["logits"] for c in clips])
        assert np.abs(a - b).max() <= TOLERANCE, kind or "base"
        assert (a.argmax(1) == b.argmax(1)).mean() >= 0.875, kind or "base"


def test_predict_runs_the_int8_backend(exported):
    from evaluation.deploy.predict import load_for_inference, predict_video

    paths, clips = exported
    folder = paths["manifest"].parent
    want = predict_video(load_for_inference(folder, backend="tflite"), clips[0])
    for stream in (False, True):
        got = predict_video(load_for_inference(folder, stream=stream, backend="tflite-int8"), clips[0],
                            stream=stream)
        assert got.frames_seen == 8
        np.testing.assert_allclose(got.logits, want.logits, atol=TOLERANCE)


def test_int8_needs_representative_clips(exported, tmp_path):
    from search_space.builder import build_model

    spec = small_causal_spec()
    with pytest.raises(ValueError, match="tflite-int8 needs representative clips"):
        export_model(spec, build_model(spec, CLASSES), tmp_path, formats=("tflite-int8",))
    with pytest.raises(ValueError, match=r"representative: clips of shape \(8, 32, 32, 3\)"):
        export_model(spec, build_model(spec, CLASSES), tmp_path, formats=("tflite-int8",),
                     representative=np.zeros((8, 32, 32, 3), np.float32))


def test_cli_export_calibrates_on_the_studys_dataset(tmp_path, capsys):
    from nas.cli import main

    code = main(["export", "results/reference", "--best", "val_accuracy", "--format", "yaml,tflite-int8",
                 "--out", str(tmp_path / "q")])
    assert code == 0, capsys.readouterr().err
    manifest = read_manifest(tmp_path / "q")
    assert manifest["int8_calibration"]["clips"] == 32  # validation clips of the demo's synthetic dataset
    assert load_tflite(tmp_path / "q" / "model_int8.tflite").get_input_details()["image"]["dtype"] == np.float32
