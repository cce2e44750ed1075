"""Video inference: `predict_video` and `movinas predict` on videos the tests write."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.datasets import read_video, write_video
from evaluation.deploy.export import export_model
from evaluation.deploy.predict import Sampling, Updates, load_for_inference, predict_video, read_labels
from nas.cli import main
from tests.models import randomize, small_causal_spec

LABELS = ["walk", "run", "jump high", "wave", "sit"]
LINE = re.compile(r"^(\d+)\. (.+)  ([01]\.\d{4})$")


def moving_frames(n: int, height: int = 40, width: int = 48, seed: int = 0) -> np.ndarray:
    """A bright square moving right over noise: frames differ, so order and timing matter."""
    rng = np.random.default_rng(seed)
    frames = (rng.uniform(0, 60, (n, height, width, 3))).astype(np.uint8)
    for t in range(n):
        frames[t, 10:24, 3 * t:3 * t + 14] = (230, (40 + 10 * t) % 256, 90)
    return frames


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    from search_space.builder import build_model

    root = tmp_path_factory.mktemp("predict")
    spec = small_causal_spec()
    base = build_model(spec, num_classes=len(LABELS))
    randomize(base, 0)
    export_model(spec, base, root / "exported", formats=("yaml", "keras"), stream=True, labels=LABELS)
    frames = moving_frames(8)
    videos = {ext: write_video(root / f"clip.{ext}", frames, fps=25) for ext in ("mp4", "avi")}
    return {"root": root, "spec": spec, "base": base, "frames": frames, "videos": videos,
            "model": load_for_inference(root / "exported", stream=True)}


def run_cli(capsys, *argv):
    code = main(["predict", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.strip()


def test_cli_prints_top_k_lines_rank_label_probability(work, capsys):
    code, lines, _ = run_cli(capsys, work["root"] / "exported", work["videos"]["mp4"], "--top-k", "3")
    assert code == 0 and len(lines) == 3
    parsed = [LINE.match(line).groups() for line in lines]
    assert [int(rank) for rank, _, _ in parsed] == [1, 2, 3]
    assert all(label in LABELS for _, label, _ in parsed)
    probs = [float(p) for _, _, p in parsed]
    assert probs == sorted(probs, reverse=True)
    expected = predict_video(work["model"], work["videos"]["mp4"], top_k=3).top_k
    assert lines == [f"{i}. {label}  {p:.4f}" for i, (label, p) in enumerate(expected, 1)]


@pytest.mark.parametrize("ext", ["mp4", "avi"])
def test_stream_after_last_frame_equals_causal_clip(work, ext):
    path = work["videos"][ext]
    clip = predict_video(work["model"], path, top_k=5)
    stream = predict_video(work["model"], path, stream=True, top_k=5)
    assert clip.frames_seen == stream.frames_seen == 8
    np.testing.assert_allclose(stream.logits, clip.logits, atol=1e-4)
    # and clip mode is the base model on the decoded, resized RGB clip in [0, 1]
    whole = read_video(path, resolution=32)[None]
    np.testing.assert_allclose(clip.logits, np.asarray(work["base"](whole, training=False))[0], atol=1e-5)
    assert sum(p for _, p in clip.top_k) == pytest.approx(1.0, abs=1e-5)


def test_stream_reports_running_top1_every_n_frames(work, capsys):
    code, lines, _ = run_cli(capsys, work["root"] / "exported", work["videos"]["avi"], "--stream",
                             "--every", "3", "--top-k", "2")
    assert code == 0
    assert [line.split(":")[0] for line in lines[:2]] == ["frame 3", "frame 6"]
    assert re.fullmatch(r"frame 3: (.+)  [01]\.\d{4}", lines[0])
    assert [LINE.match(line)[1] for line in lines[2:]] == ["1", "2"]
    updates = []
    predict_video(work["model"], work["videos"]["avi"], stream=True, updates=Updates(3, updates.append))
    assert [u.frames_seen for u in updates] == [3, 6]
    assert lines[0] == f"frame 3: {updates[0].top_k[0][0]}  {updates[0].top_k[0][1]:.4f}"


def test_keras_and_tflite_classify_every_frame_of_a_long_video_alike(work, capsys):
    root = work["root"]
    export_model(work["spec"], work["base"], root / "long", formats=("yaml", "keras", "tflite"), labels=LABELS)
    video = write_video(root / "long.mp4", moving_frames(64, width=200, seed=3), fps=25)
    preds = {b: predict_video(load_for_inference(root / "long", backend=b), video) for b in ("keras", "tflite")}
    assert preds["keras"].frames_seen == preds["tflite"].frames_seen == 64
    np.testing.assert_allclose(preds["tflite"].logits, preds["keras"].logits, atol=1e-4)
    first_8 = predict_video(load_for_inference(root / "long", backend="keras"), video, sampling=Sampling(frames=8))
    assert np.abs(first_8.logits - preds["keras"].logits).max() > 1e-3  # the later frames count
    tops = {}
    for backend in ("keras", "tflite"):
        code, lines, _ = run_cli(capsys, root / "long", video, "--backend", backend, "--top-k", "1")
        assert code == 0
        tops[backend] = LINE.match(lines[0]).group(2)
    assert tops["keras"] == tops["tflite"] == preds["keras"].top_k[0][0]


def test_fps_sampling_is_the_same_in_clip_and_stream_mode(work, tmp_path):
    path = write_video(tmp_path / "long.mp4", moving_frames(16, seed=1), fps=25)
    clip = predict_video(work["model"], path, sampling=Sampling(fps=12.5))
    stream = predict_video(work["model"], path, sampling=Sampling(fps=12.5), stream=True)
    assert clip.frames_seen == stream.frames_seen == 8
    np.testing.assert_allclose(stream.logits, clip.logits, atol=1e-4)


def test_cli_ensemble_averages_two_models(work, capsys, tmp_path):
    from search_space.builder import build_model

    other = build_model(work["spec"], num_classes=len(LABELS))
    randomize(other, 7)
    export_model(work["spec"], other, tmp_path / "b", formats=("yaml", "keras"), labels=LABELS)
    video = work["videos"]["mp4"]
    clip = read_video(video, resolution=32)[None]
    mean = (np.asarray(work["base"](clip[:, 0::2])) + np.asarray(other(clip[:, 1::2]))) / 2
    pred = predict_video(work["model"], video, ensemble=tmp_path / "b")
    np.testing.assert_allclose(pred.logits, mean[0], atol=1e-5)
    code, lines, _ = run_cli(capsys, work["root"] / "exported", video, "--ensemble", tmp_path / "b", "--top-k", "5")
    assert code == 0
    assert lines == [f"{i}. {label}  {p:.4f}" for i, (label, p) in enumerate(pred.top_k, 1)]


def test_stdin_raw_frames_through_a_pipe(work):
    frames = moving_frames(6)
    cmd = [sys.executable, "-m", "nas", "predict", str(work["root"] / "exported"), "-", "--size", "48x40",
           "--stream", "--top-k", "2"]
    done = subprocess.run(cmd, input=frames.tobytes(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    expected = predict_video(work["model"], frames, stream=True, top_k=2)
    assert expected.frames_seen == 6
    assert done.stdout.decode().splitlines() == [
        f"{i}. {label}  {p:.4f}" for i, (label, p) in enumerate(expected.top_k, 1)]


def test_tf_hub_style_savedmodel_is_accepted(work, tmp_path):
    import tensorflow as tf

    base = work["base"]

    class Hub(tf.Module):  # the TF-Hub MoViNet signature: {"image": ...} -> one named output
        def __init__(self):
            self.model = base

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, None, 3], tf.float32, name="image")])
        def serve(self, image):
            return {"classifier_head": self.model(image, training=False)}

    hub = Hub()
    tf.saved_model.save(hub, str(tmp_path / "hub"), signatures={"serving_default": hub.serve})
    video = work["videos"]["avi"]
    pred = predict_video(str(tmp_path / "hub"), video, labels=LABELS, sampling=Sampling(resolution=32))
    np.testing.assert_allclose(pred.logits, predict_video(work["model"], video).logits, atol=1e-5)
    assert pred.top_k[0][0] in LABELS


def test_kinetics600_labels_ship_with_movinas_for_any_600_class_model(work, capsys, tmp_path):
    import tensorflow as tf

    from evaluation.deploy.export import save_signature
    from search_space.builder import build_model

    kinetics = Path(__file__).parents[2].joinpath("shared", "reference", "kinetics_600_labels.txt")
    names = read_labels("kinetics600", 600)
    assert len(names) == len(set(names)) == 600 and names[0] == "abseiling" and names[-1] == "zumba"
    if kinetics.is_file():  # the reference file the TF Hub pipeline reads, line for line
        assert names == kinetics.read_text().splitlines()
    model = build_model(work["spec"], num_classes=600)
    randomize(model, 1)
    export_model(work["spec"], model, tmp_path / "k600", formats=("yaml", "keras"))
    image = tf.TensorSpec([None, None, None, None, 3], tf.float32, name="image")
    save_signature(model, {"image": image}, tmp_path / "hub")  # a TF-Hub-style SavedModel folder
    video = work["videos"]["mp4"]
    for source in (tmp_path / "k600", tmp_path / "hub"):
        code, lines, err = run_cli(capsys, source, video, "--labels", "kinetics600", "--top-k", "3",
                                   "--resolution", "32")
        assert code == 0, err
        top = predict_video(load_for_inference(source), video, sampling=Sampling(resolution=32), top_k=3).top_k
        assert [LINE.match(line).group(2) for line in lines] == [names[int(label[6:])] for label, _ in top]
    code, _, err = run_cli(capsys, work["root"] / "exported", video, "--labels", "kinetics600")
    assert code == 2 and "600 lines, but the model has 5 classes" in err


def test_keras_file_and_spec_yaml_with_weights(work, tmp_path):
    video = work["videos"]["mp4"]
    expected = predict_video(work["model"], video).logits
    keras_file = load_for_inference(work["root"] / "exported" / "model.keras", stream=True)
    np.testing.assert_allclose(predict_video(keras_file, video, stream=True).logits, expected, atol=1e-4)
    export_model(work["spec"], work["base"], tmp_path, formats=("yaml", "weights"), labels=LABELS)
    from_yaml = load_for_inference(tmp_path / "spec.yaml")
    assert from_yaml.labels == LABELS
    np.testing.assert_allclose(predict_video(from_yaml, video).logits, expected, atol=1e-5)


# -- errors: one line, exit status 2 -------------------------------------------------------------


def test_missing_and_corrupt_videos_exit_2(work, capsys, tmp_path):
    model = work["root"] / "exported"
    code, out, err = run_cli(capsys, model, tmp_path / "nope.mp4")
    assert code == 2 and not out and "nope.mp4" in err and "no such" in err and "\n" not in err
    corrupt = tmp_path / "broken.avi"
    corrupt.write_bytes(b"RIFF\x00\x00garbage" * 50)
    for extra in ((), ("--stream",)):
        code, out, err = run_cli(capsys, model, corrupt, *extra)
        assert code == 2 and "broken.avi" in err and "\n" not in err, err


def test_label_file_of_the_wrong_length_names_both_counts(work, capsys, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\nc\n")
    code, _, err = run_cli(capsys, work["root"] / "exported", work["videos"]["mp4"], "--labels", labels)
    assert code == 2 and "3 lines" in err and "5 classes" in err and "labels.txt" in err


def test_model_of_no_accepted_kind_exits_2(work, capsys, tmp_path):
    bogus = tmp_path / "model.txt"
    bogus.write_text("hello")
    code, _, err = run_cli(capsys, bogus, work["videos"]["mp4"])
    assert code == 2 and "model.txt" in err and ".keras" in err and "SavedModel" in err


def test_stream_of_a_non_causal_model_exits_2(work, capsys, tmp_path):
    from search_space.builder import build_model

    spec = work["spec"].replace(causal=False, positional_encoding=False, name="tiny-base")
    export_model(spec, build_model(spec, num_classes=5), tmp_path / "nc", formats=("yaml", "keras"))
    code, _, err = run_cli(capsys, tmp_path / "nc", work["videos"]["mp4"], "--stream")
    assert code == 2 and "causal" in err and "\n" not in err


def test_stdin_needs_a_frame_size(work, capsys):
    code, _, err = run_cli(capsys, work["root"] / "exported", "-")
    assert code == 2 and "--size" in err
