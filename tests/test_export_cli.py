"""`movinas export`: picks a trial (--trial or a --best rule), optionally retrains it, writes every
format plus a model card; each artifact loaded back gives the same outputs. Bad input exits 2."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from evaluation.results.frames import load_results
from evaluation.results.pareto import best_trial
from nas.cli import main
from search_space import ArchSpec

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
RULE = "val_accuracy under flops<=1e9"
CAUSAL_SPACE = {"name": "tiny-causal", "frames": 8, "resolution": 32, "causal": True, "conv_type": "2plus1d",
                "se_type": "2plus3d", "activation": "hard_swish", "gating_activation": "hard_sigmoid",
                "stem": {"width": 8, "kernel": "1x3x3", "strides": "1x2x2"},
                "stages": [{"width": 8, "depth": 1, "strides": "1x2x2", "kernels": ["1x3x3", "3x3x3"],
                            "expand_ratios": [2.0]},
                           {"width": 16, "depth": [1, 2], "strides": "1x2x2", "kernels": ["3x3x3"],
                            "expand_ratios": [2.0, 3.0]}],
                "head": {"filters": 32, "hidden": 32}}


def clip_for(spec: ArchSpec, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (1, spec.frames, spec.resolution, spec.resolution, 3)).astype(
        np.float32)


@pytest.fixture(scope="module")
def reference_df():
    return load_results(REFERENCE)


def test_best_rule_retrained_export_every_format_agrees(reference_df, tmp_path, capsys):
    import keras
    import tensorflow as tf

    import search_space.builder  # noqa: F401  registers the custom layers
    from evaluation.deploy.export import load_tflite

    out = tmp_path / "best"
    args = ["export", str(REFERENCE), "--best", RULE, "--format", "yaml,keras,savedmodel,tflite",
            "--train-epochs", "1", "--out", str(out)]
    assert main(args) == 0
    stdout, stderr = capsys.readouterr()
    row = best_trial(reference_df, RULE)
    spec = ArchSpec.from_yaml(out / "spec.yaml")
    assert spec == row["spec"]
    for name in ("model.keras", "saved_model", "model.tflite", "export.json", "model_card.md"):
        assert (out / name).exists() and name in stdout
    clip = clip_for(spec)
    expected = np.asarray(keras.saving.load_model(out / "model.keras")(clip, training=False))
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    np.testing.assert_allclose(served(image=tf.constant(clip))["logits"].numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(load_tflite(out / "model.tflite")(image=clip)["logits"], expected, atol=1e-4)
    card = (out / "model_card.md").read_text()
    number = int(row["number"])
    assert f"trial {number} (selected by `--best \"{RULE}\"`)" in card
    assert "trained from scratch for 1 epochs" in card and "RANDOMLY" not in card
    assert re.search(r"training: 100%.* 1/1 .*val_accuracy=[\d.]+", stderr)  # the bar of the epochs
    accuracy = re.search(r"trained 1 epoch: validation accuracy ([\d.]+), validation loss [\d.]+\n", stderr)
    assert accuracy and f"validation accuracy {accuracy[1]}," in card
    config = reference_df.attrs["config"]
    assert f"sampler: `{yaml.safe_dump(config['sampler'], default_flow_style=True, width=1000).strip()}`" in card
    assert f"| flops | {row['flops'] / 1e6:.3g}M ({int(row['flops']):,}) |" in card
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["num_classes"] == reference_df.attrs["num_classes"]
    assert (out / "labels.txt").read_text().splitlines() == _class_names(config, spec)


def _class_names(config: dict, spec) -> list[str]:
    from evaluation.datasets import load_dataset
    from nas.config import dataset_for

    return list(load_dataset(dataset_for(config["dataset"], spec)).class_names)


def test_untrained_export_says_so_loudly_and_matches_the_cost_model(reference_df, tmp_path, capsys):
    import keras

    import search_space.builder  # noqa: F401

    # a copy of the reference whose trial lost its kept weights: the export falls back to fresh ones
    number = int(reference_df.loc[reference_df["state"] == "COMPLETE", "number"].iloc[0])
    study = tmp_path / "reference"
    shutil.copytree(REFERENCE, study)
    (study / "trials" / str(number) / "weights.npz").unlink()
    out = tmp_path / "plain"
    assert main(["export", str(study), "--trial", str(number), "--format", "yaml,keras", "--out", str(out)]) == 0
    assert "WARNING: the exported weights are RANDOMLY INITIALIZED" in capsys.readouterr().err
    assert "RANDOMLY INITIALIZED, not trained" in (out / "model_card.md").read_text()
    row = reference_df[reference_df["number"] == number].iloc[0]
    assert keras.saving.load_model(out / "model.keras").count_params() == row["params"]
    assert not (out / "model.tflite").exists()


def test_stream_export_of_a_causal_trial_runs_frame_by_frame_like_the_clip(tmp_path):
    from evaluation.deploy.export import load_tflite, read_manifest

    config = {"study": "causal", "space": CAUSAL_SPACE, "num_classes": 3, "sampler": "random", "trials": 1,
              "objectives": [{"minimize": "flops"}, {"minimize": "state_bytes"}]}
    (tmp_path / "causal.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", str(tmp_path / "causal.yaml"), "--results-dir", str(tmp_path / "results")]) == 0
    out = tmp_path / "stream"
    assert main(["export", str(tmp_path / "results" / "causal"), "--best", "min flops", "--stream",
                 "--format", "yaml,tflite", "--out", str(out)]) == 0
    manifest = read_manifest(out)
    spec = ArchSpec.from_yaml(out / "spec.yaml")
    clip = clip_for(spec, 1)
    expected = load_tflite(out / "model.tflite")(image=clip)["logits"]
    runner = load_tflite(out / "stream.tflite")
    states = {n: np.zeros(s["shape"], s["dtype"]) for n, s in manifest["tflite_states"].items()}
    for t in range(spec.frames):
        result = runner(image=clip[:, t:t + 1], **states)
        states = {n: result[n] for n in states}
    np.testing.assert_allclose(result["logits"], expected, atol=1e-4)
    assert "`stream.tflite` (stream_tflite)" in (out / "model_card.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--trial", "9999"], "--trial 9999: no such trial in study 'reference' (trials 0 to"),
    (["--best", "accuracy under flops<=1e9"], "unknown column 'accuracy'; columns: "),
    (["--best", "val_accuracy under flops<=1"], "no COMPLETE trial qualifies"),
    (["--best", "val_accuracy", "--format", "yaml,onnx"], "--format: onnx, must be a comma-separated list of"),
    (["--best", "val_accuracy", "--stream"], "is not causal"),
    (["--best", "val_accuracy", "--train-epochs", "0"], "--train-epochs: 0, must be >= 1"),
])
def test_bad_requests_exit_2_with_one_line(tmp_path, capsys, args, message):
    assert main(["export", str(REFERENCE), *args, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_a_trial_that_did_not_complete_is_refused(reference_df, tmp_path, capsys):
    number = int(reference_df.loc[reference_df["state"] != "COMPLETE", "number"].iloc[0])
    assert main(["export", str(REFERENCE), "--trial", str(number), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert f"--trial {number}: trial is PRUNED" in err and "only COMPLETE trials can be exported" in err


def test_a_results_path_that_is_not_a_study_exits_2(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--trial", "0", "--out", str(tmp_path / "x")]) == 2
    assert "not a study folder" in capsys.readouterr().err
