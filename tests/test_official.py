"""Importing the released MoViNet weights (`search_space.load_official`, `movinas import`).

Fixtures come from the official code (tests/fixtures/official/generate.py, run in a side environment
with tf-models-official; CI never installs it): for all 13 configurations the official variable names
and shapes and the official logits under deterministic weights (`weights.weight`), and for A0 base,
A0 stream and A0 stream with positional encoding the official checkpoint and SavedModel files.
Exactness: logits within 1e-5 of the official ones, relative to their range, clip and frame by frame.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from search_space import movinet
from search_space.official import OfficialError, from_arrays, load_official, official_names

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "official"
sys.path.insert(0, str(FIXTURES))
import weights as W  # noqa: E402  (tests/fixtures/official/weights.py)

MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
FRAMES, SIZE = MANIFEST["frames"], MANIFEST["size"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def official_logits():
    return dict(np.load(FIXTURES / "logits.npz"))


@pytest.fixture(scope="module")
def official_variables():
    return json.loads(gzip.decompress((FIXTURES / "variables.json.gz").read_bytes()))


class _Files(dict):
    """{config: folder with checkpoint/ and saved_model/}, each archive unpacked on first use."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, config: str) -> Path:
        with tarfile.open(FIXTURES / f"files-{config}.tar.xz") as tar:
            tar.extractall(self.root / config, filter="data")
        self[config] = self.root / config
        return self[config]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The official checkpoint and SavedModel files of A0 base, A0 stream and A0 stream with encoding."""
    return _Files(tmp_path_factory.mktemp("official"))


def gap(got, expected) -> float:
    """Largest difference relative to the range of the expected logits."""
    expected = np.asarray(expected)
    return float(np.abs(np.asarray(got) - expected).max() / np.ptp(expected))


def preset_of(config: str) -> tuple[str, bool]:
    preset, kind = config.split("-", 1)
    return preset, kind != "base"


def stream_frames(imported, size: int = SIZE) -> np.ndarray:
    """Logits after each frame of the fixture clip, streamed one frame at a time."""
    from search_space import build_model, init_states, stream_step

    model = build_model(imported.spec, imported.num_classes, mode="stream", resolution=size)
    model.set_weights(imported.model.get_weights())
    states = init_states(imported.spec, 1, size)
    clip, out = W.clip(FRAMES, size), []
    for t in range(FRAMES):
        logits, states = stream_step(model, clip[:, t:t + 1], states)
        out.append(np.asarray(logits)[0])
    return np.stack(out)


# Streamed frame by frame: A0 and A2. The stream layers of A1, A3-A5 are those of A0 and A2 (the same
# kinds, more of them) and streaming A1, A3-A5 took about 50 s of the suite; their clip logits are checked.
STREAMED_PRESETS = ("a0", "a2")


def check_logits(imported, expected: dict, key: str) -> None:
    clip = imported.model(W.clip(FRAMES, SIZE), training=False)
    assert gap(clip, expected[f"{key}/clip"]) <= TOLERANCE
    if imported.spec.causal and key.removeprefix("files/").split("-")[0] in STREAMED_PRESETS:
        assert gap(stream_frames(imported), expected[f"{key}/frames"]) <= TOLERANCE


# ---------------------------------------------------------------------------------------------
# all 13 configurations: names, shapes and logits of the official classifiers


def test_fixtures_cover_the_thirteen_released_configurations(official_variables):
    assert len(MANIFEST["configs"]) == 13 and set(official_variables) == set(MANIFEST["configs"])


@pytest.mark.slow
@pytest.mark.parametrize("config", MANIFEST["configs"])
def test_configuration_imports_with_the_official_logits(config, official_variables, official_logits):
    """Every official variable fills one movinas weight (none missing or extra, shapes agree), the preset is
    read from the variables, and the model gives the official logits, clip and frame by frame."""
    damp = W.DAMP.get(config, 1)
    arrays = {key: W.weight(W.canonical(key), shape, damp) for key, shape in official_variables[config]}
    imported = from_arrays(arrays)
    preset, stream = preset_of(config)
    assert imported.spec == movinet(preset, stream=stream, positional_encoding=config.endswith("-pe") or None)
    assert imported.num_classes == MANIFEST["classes"]
    check_logits(imported, official_logits, config)


def test_name_table_counts_every_official_variable(official_variables):
    for config, variables in official_variables.items():
        preset, stream = preset_of(config)
        spec = movinet(preset, stream=stream, positional_encoding=config.endswith("-pe") or None)
        assert len(official_names(spec)) == len(variables), config


# ---------------------------------------------------------------------------------------------
# the official files: tf.train.Checkpoint and the export script's SavedModel


@pytest.mark.slow
@pytest.mark.parametrize("config, kind", [("a0-base", "checkpoint"), ("a0-base", "saved_model"),
                                          ("a0-stream", "checkpoint"), ("a0-stream", "saved_model"),
                                          ("a0-stream-pe", "checkpoint")])
def test_official_files_import_with_the_official_logits(config, kind, files, official_logits):
    imported = load_official(files[config] / kind)
    preset, stream = preset_of(config)
    assert (imported.spec.name, imported.spec.positional_encoding) == (
        f"movinet-{preset}" + ("-stream" if stream else ""), config.endswith("-pe"))
    assert imported.source == ("savedmodel" if kind == "saved_model" else "checkpoint")
    check_logits(imported, official_logits, f"files/{config}")


def test_checkpoint_prefix_and_index_file_name_the_same_checkpoint(files):
    folder = files["a0-base"] / "checkpoint"
    a = load_official(folder / "ckpt-1", preset="a0", stream=False)
    b = load_official(folder / "ckpt-1.index")
    for x, y in zip(a.model.get_weights(), b.model.get_weights()):
        np.testing.assert_array_equal(x, y)


# ---------------------------------------------------------------------------------------------
# refusals: one line naming the first offending variable, nothing left at its initial value


def test_another_presets_checkpoint_is_refused_naming_the_variable(files):
    with pytest.raises(OfficialError, match=r"_stem/_conv/kernel has shape \[1, 3, 3, 3, 8\], movinet-a1 needs"):
        load_official(files["a0-base"] / "checkpoint", preset="a1")


def test_base_checkpoint_read_as_stream_is_refused(files):
    with pytest.raises(OfficialError, match="movinet-a0-stream"):
        load_official(files["a0-base"] / "checkpoint", stream=True)


def test_truncated_data_file_is_refused(files, tmp_path):
    folder = shutil.copytree(files["a0-base"] / "checkpoint", tmp_path / "ckpt")
    data = next(folder.glob("*.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    with pytest.raises(OfficialError, match=r"cannot be read \(truncated or corrupt file\?\)") as err:
        load_official(folder)
    assert "\n" not in str(err.value)


def test_truncated_index_is_refused(files, tmp_path):
    folder = shutil.copytree(files["a0-base"] / "checkpoint", tmp_path / "ckpt")
    index = next(folder.glob("*.index"))
    index.write_bytes(index.read_bytes()[:100])
    with pytest.raises(OfficialError, match="not a readable TensorFlow checkpoint"):
        load_official(folder)


def test_missing_and_extra_variables_are_named(official_variables):
    arrays = {key: W.weight(W.canonical(key), shape) for key, shape in official_variables["a0-base"]}
    dropped = "model/layer_with_weights-0/layer_with_weights-7/_projection/_batch_norm/moving_mean/.ATTRIBUTES/" \
              "VARIABLE_VALUE"
    with pytest.raises(OfficialError, match="missing variable layer_with_weights-0/layer_with_weights-7/_projection/"
                                            "_batch_norm/moving_mean"):
        from_arrays({k: v for k, v in arrays.items() if k != dropped})
    with pytest.raises(OfficialError, match="unexpected variable layer_with_weights-0/layer_with_weights-3/_extra"):
        from_arrays({**arrays, "model/layer_with_weights-0/layer_with_weights-3/_extra/kernel": np.zeros(3)})


def test_folder_without_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(OfficialError, match="not a MoViNet checkpoint or SavedModel folder"):
        load_official(tmp_path)


def test_savedmodel_that_is_not_movinet_is_refused(tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.dense = tf.Variable(np.ones((3, 2), np.float32))
    tf.saved_model.save(module, str(tmp_path / "other"))
    with pytest.raises(OfficialError, match="no variable of a MoViNet classifier"):
        load_official(tmp_path / "other")


# ---------------------------------------------------------------------------------------------
# movinas import


@pytest.mark.slow
def test_import_writes_an_export_folder_that_predicts_like_the_official_model(files, official_logits, tmp_path,
                                                                             capsys):
    from evaluation.deploy.predict import Sampling, predict_video

    out = tmp_path / "a0-stream"
    assert main(["import", str(files["a0-stream"] / "saved_model"), "--out", str(out)]) == 0
    for name in ("spec.yaml", "model.keras", "stream.keras", "export.json", "model_card.md"):
        assert (out / name).exists() and name in capsys.readouterr().out + name
    assert "released MoViNet A0 stream" in (out / "model_card.md").read_text()
    video = W.clip(FRAMES, SIZE)[0]
    clip = predict_video(out, video, sampling=Sampling(resolution=SIZE), top_k=3)
    assert gap(clip.logits, official_logits["files/a0-stream/clip"][0]) <= TOLERANCE


@pytest.mark.parametrize("case", ["other-preset", "truncated", "no-model", "missing"])
def test_import_bad_input_exits_2_with_one_line_and_no_output(case, files, tmp_path, capsys):
    source = shutil.copytree(files["a0-base"] / "checkpoint", tmp_path / "ckpt")
    args = {"other-preset": [str(source), "--preset", "a2"], "no-model": [str(tmp_path / "empty")],
            "truncated": [str(source)], "missing": [str(tmp_path / "nowhere")]}[case]
    (tmp_path / "empty").mkdir()
    if case == "truncated":
        data = next(source.glob("*.data-*"))
        data.write_bytes(data.read_bytes()[:1000])
    out = tmp_path / "out"
    assert main(["import", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("movinas import: error:")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_import_refuses_a_non_empty_out_folder(files, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["import", str(files["a0-base"] / "checkpoint"), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
