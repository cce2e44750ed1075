"""Export: every artifact loaded back gives the Keras model's outputs (within 1e-4)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from evaluation.deploy.export import ExportOptions, export_model, load_tflite, read_manifest
from search_space import ArchSpec, Stem
from search_space.stream import init_states, stream_step
from tests.models import randomize, small_causal_spec

CLASSES = 5
LABELS = ["walk", "run", "jump", "wave", "sit"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from search_space.builder import build_model

    spec = small_causal_spec()
    model = build_model(spec, num_classes=CLASSES, frames=8, resolution=32)  # a training-size model
    randomize(model, 0)
    out = tmp_path_factory.mktemp("export")
    paths = export_model(spec, model, out, stream=True, labels=LABELS)
    clip = np.random.default_rng(1).uniform(0, 1, (1, 8, 32, 32, 3)).astype(np.float32)
    return spec, model, paths, clip, np.asarray(model(clip, training=False))


def test_export_writes_every_format_and_a_manifest(exported):
    spec, _, paths, _, _ = exported
    for key in ("yaml", "labels", "keras", "savedmodel", "tflite", "stream_keras", "stream_savedmodel",
                "stream_tflite", "manifest"):
        assert paths[key].exists(), key
    assert ArchSpec.from_yaml(paths["yaml"]) == spec
    assert paths["labels"].read_text().splitlines() == LABELS
    manifest = read_manifest(paths["manifest"].parent)
    assert manifest == json.loads(paths["manifest"].read_text())
    assert (manifest["num_classes"], manifest["frames"], manifest["resolution"]) == (CLASSES, 8, 32)
    assert manifest["causal"] and manifest["stream"]
    assert manifest["tflite_image_shape"] == [1, None, 32, 32, 3]  # any number of frames
    assert {"shape", "dtype"} <= set(next(iter(manifest["states"].values())))
    assert any(s["dtype"] == "int32" for s in manifest["states"].values())  # frame counters


def _python(code: str, *args) -> str:
    """Run `code` in a fresh interpreter (argv[1:] = args); its stdout, or the test fails with stderr."""
    done = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("imports", ["import search_space, keras", "import keras, search_space"])
def test_keras_files_load_in_a_fresh_process_after_a_plain_import_search_space(exported, tmp_path, imports):
    _, _, paths, clip, expected = exported
    np.save(tmp_path / "clip.npy", clip)
    code = imports + textwrap.dedent("""
        import sys
        import numpy as np
        clip = np.load(sys.argv[3])
        np.save(sys.argv[4], keras.saving.load_model(sys.argv[1])(clip, training=False))
        stream = keras.saving.load_model(sys.argv[2])
        print(sorted(t.name for t in stream.inputs)[:2])
        """)
    _python(code, paths["keras"], paths["stream_keras"], tmp_path / "clip.npy", tmp_path / "out.npy")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-4)


def test_stream_savedmodel_steps_through_tf_hub_signatures_without_movinas(exported, tmp_path):
    import keras

    _, _, paths, clip, expected = exported
    video = np.concatenate([clip, clip[:, ::-1]])  # a batch of 2: init_states sizes the states by it
    np.save(tmp_path / "video.npy", video)
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import tensorflow as tf
        model = tf.saved_model.load(sys.argv[1])
        video = np.load(sys.argv[2])
        states = model.signatures["init_states"](input_shape=tf.constant(video.shape, tf.int32))
        for t in range(video.shape[1]):
            out = model.signatures["call"](image=tf.constant(video[:, t:t + 1]), **states)
            states = {name: out[name] for name in states}
        np.save(sys.argv[3], out["logits"].numpy())
        assert not [m for m in sys.modules if m.split(".")[0] in ("search_space", "evaluation", "nas")]
        """)
    _python(code, paths["stream_savedmodel"], tmp_path / "video.npy", tmp_path / "out.npy")
    stream = keras.saving.load_model(paths["stream_keras"])
    states = init_states(ArchSpec.from_yaml(paths["yaml"]), 2, 32)
    for t in range(video.shape[1]):
        logits, states = stream_step(stream, video[:, t:t + 1], states)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), np.asarray(logits), atol=1e-4)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy")[:1], expected, atol=1e-4)


def test_savedmodel_signature_takes_image_dict_of_any_size(exported):
    import tensorflow as tf

    from search_space.builder import build_model

    spec, model, paths, clip, expected = exported
    sig = tf.saved_model.load(str(paths["savedmodel"])).signatures["serving_default"]
    assert set(sig.structured_input_signature[1]) == {"image"}
    assert sig.structured_input_signature[1]["image"].shape.as_list() == [None, None, None, None, 3]
    np.testing.assert_allclose(sig(image=tf.constant(clip))["logits"].numpy(), expected, atol=1e-4)
    # another batch, clip length and size than the manifest's
    other = np.random.default_rng(2).uniform(0, 1, (2, 4, 48, 48, 3)).astype(np.float32)
    any_size = build_model(spec, num_classes=CLASSES)
    any_size.set_weights(model.get_weights())
    np.testing.assert_allclose(sig(image=tf.constant(other))["logits"].numpy(),
                               np.asarray(any_size(other, training=False)), atol=1e-4)


def test_tflite_base_model_matches_keras_on_any_clip_length(exported):
    spec, model, paths, clip, expected = exported
    runner = load_tflite(paths["tflite"])
    assert list(runner.get_input_details()["image"]["shape_signature"]) == [1, -1, 32, 32, 3]
    np.testing.assert_allclose(runner(image=clip)["logits"], expected, atol=1e-4)
    from search_space.builder import build_model

    any_length = build_model(spec, num_classes=CLASSES)
    any_length.set_weights(model.get_weights())
    longer = np.concatenate([clip, clip[:, ::-1]], axis=1)  # 16 frames: the file takes any clip length
    np.testing.assert_allclose(runner(image=longer)["logits"], np.asarray(any_length(longer, training=False)),
                               atol=1e-4)


def _stream_through(step, clip, states):
    for t in range(clip.shape[1]):
        out = step({"image": clip[:, t:t + 1], **states})
        states = {k: out[k] for k in states}
    return np.asarray(out["logits"])


def test_stream_tflite_frame_by_frame_equals_the_causal_clip(exported):
    _, _, paths, clip, expected = exported
    manifest = read_manifest(paths["manifest"].parent)
    runner = load_tflite(paths["stream_tflite"])
    details = runner.get_input_details()
    assert set(details) == {"image", *manifest["tflite_states"]}
    assert list(details["image"]["shape"]) == [1, 1, 32, 32, 3]
    states = {n: np.zeros(s["shape"], s["dtype"]) for n, s in manifest["tflite_states"].items()}
    np.testing.assert_allclose(_stream_through(lambda x: runner(**x), clip, states), expected, atol=1e-4)


def test_stream_savedmodel_and_keras_equal_the_causal_clip(exported):
    import keras
    import tensorflow as tf

    _, _, paths, clip, expected = exported
    manifest = read_manifest(paths["manifest"].parent)
    states = {n: np.zeros(s["shape"], s["dtype"]) for n, s in manifest["states"].items()}
    sig = tf.saved_model.load(str(paths["stream_savedmodel"])).signatures["serving_default"]
    np.testing.assert_allclose(_stream_through(lambda x: sig(**x), clip, states), expected, atol=1e-4)
    smodel = keras.saving.load_model(paths["stream_keras"])
    np.testing.assert_allclose(_stream_through(
        lambda x: smodel({k: tf.constant(v) for k, v in x.items()}, training=False), clip, states), expected,
                               atol=1e-4)


def test_export_from_a_weights_file_and_list(exported, tmp_path):
    spec, model, _, clip, expected = exported
    model.save_weights(tmp_path / "w.weights.h5")
    paths = export_model(spec, tmp_path / "w.weights.h5", tmp_path / "a", formats=("tflite",),
                         options=ExportOptions(num_classes=CLASSES))
    np.testing.assert_allclose(load_tflite(paths["tflite"])(image=clip)["logits"], expected, atol=1e-4)
    paths = export_model(spec, model.get_weights(), tmp_path / "b", formats=("yaml", "weights"),
                         options=ExportOptions(num_classes=CLASSES))
    assert paths["weights"].is_file() and "tflite" not in paths


def test_export_is_float32_under_a_global_mixed_precision_policy(exported, tmp_path):
    import keras

    spec, model, _, clip, expected = exported
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        paths = export_model(spec, model.get_weights(), tmp_path, formats=("tflite",),
                             options=ExportOptions(num_classes=CLASSES))
    finally:
        keras.config.set_dtype_policy(policy)
    np.testing.assert_allclose(load_tflite(paths["tflite"])(image=clip)["logits"], expected, atol=1e-4)


def test_export_rejects_bad_requests(exported, tmp_path):
    spec, model, _, _, _ = exported
    with pytest.raises(ValueError, match="formats.*onnx.*allowed|choose from"):
        export_model(spec, model, tmp_path, formats=("onnx",))
    with pytest.raises(ValueError, match="causal"):
        export_model(spec.replace(causal=False, positional_encoding=False), model, tmp_path, stream=True)
    with pytest.raises(ValueError, match="labels: 2 given.*5 classes"):
        export_model(spec, model, tmp_path, labels=["a", "b"])
    with pytest.raises(ValueError, match=r"weights\[\d+\]: shape"):
        export_model(spec.replace(stem=Stem(filters=16)), model, tmp_path)


@pytest.mark.parametrize("backend", ["keras", "savedmodel", "tflite", None])
def test_predict_runs_every_backend_of_an_export_in_clip_and_stream_mode(exported, backend):
    from evaluation.deploy.predict import load_for_inference, predict_video

    _, _, paths, clip, expected = exported
    model = load_for_inference(paths["manifest"].parent, stream=True, backend=backend)
    assert model.labels == LABELS and model.resolution == 32
    for stream in (False, True):
        pred = predict_video(model, clip[0], stream=stream)
        assert pred.frames_seen == 8
        np.testing.assert_allclose(pred.logits, expected[0], atol=1e-4)
