"""`movinas finetune` and starting from pretrained weights: a model fine-tuned on written videos survives a
SIGKILL, resumes and exports to TFLite; bad inputs are one line and exit 2 with nothing in --out; a new
classifier replaces the released one with every other weight carried; `proxy: {init: MODEL}` nests a
candidate in the pretrained model exactly as the supernet extracts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from nas.cli import main
from tests.models import randomize, small_causal_spec

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL = ROOT / "tests" / "fixtures" / "official"
SMALL = ["--frames", "4", "--resolution", "16", "--batch-size", "4", "--fps", "25"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A randomized 5-class causal model exported (yaml, keras; no stream files, so neither has its
    fine-tuned export: fewer conversions), and 3 classes × 4 written videos."""
    from evaluation.datasets import write_video
    from evaluation.deploy.export import export_model
    from search_space import build_model

    root = tmp_path_factory.mktemp("finetune")
    model = build_model(small_causal_spec(), 5)
    randomize(model, 0)
    export_model(small_causal_spec(), model, root / "tiny", ("yaml", "keras"), labels=list("abcde"))
    rng = np.random.default_rng(0)
    for c, name in enumerate(("jump", "run", "swim")):
        (root / "videos" / name).mkdir(parents=True)
        for i in range(4):
            frames = np.clip(rng.normal(60 + 70 * c, 20, (6, 16, 16, 3)), 0, 255).astype(np.uint8)
            write_video(root / "videos" / name / f"{name}{i}.avi", frames)
    return root


def test_finetune_survives_a_kill_resumes_and_exports_a_model_that_predicts(tiny, tmp_path, capsys):
    out, checkpoint = tmp_path / "tuned", tmp_path / ".tuned.finetune.npz"
    args = ["finetune", str(tiny / "tiny"), str(tiny / "videos"), "--out", str(out), "--epochs", "3", *SMALL,
            "--train", "head"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "nas", *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while not checkpoint.exists() and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)  # as soon as epoch 1 is checkpointed: epochs 2-3 and the export remain
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and checkpoint.exists() and not out.exists()

    assert main([*args, "--format", "yaml,tflite"]) == 0  # the formats may differ: only training resumes
    err = capsys.readouterr().err
    assert "resuming after epoch 1 of 3" in err and "epoch 3/3: loss" in err and "validation: accuracy" in err
    record = json.loads((out / "finetune.json").read_text())
    assert [e["epoch"] for e in record["history"]] == [1, 2, 3] and not checkpoint.exists()
    assert (out / "labels.txt").read_text().split() == ["jump", "run", "swim"]
    assert "| swim | 1 |" in (out / "model_card.md").read_text()

    assert main(["predict", str(out), str(tiny / "videos" / "run" / "run0.avi"), "--backend", "tflite",
                 "--frames", "4", "--top-k", "3"]) == 0
    top = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert {row[1] for row in top} == {"jump", "run", "swim"} and abs(sum(float(row[2]) for row in top) - 1) < 1e-3


@pytest.mark.filterwarnings("ignore::evaluation.datasets.DatasetWarning")
@pytest.mark.parametrize("case, message", [
    ("missing model", "MODEL .*nothing: no such export folder or checkpoint"),
    ("folder without a model", "not a MoViNet checkpoint or SavedModel folder"),
    ("missing data", "DATA .*nowhere: no such folder or file"),
    ("list of missing files", r"no readable videos \(2 found, 2 unreadable; first: .*gone0\.avi: no such video"),
    ("out not empty", "--out .*: exists and is not empty"),
    ("zero epochs", "--epochs: 0, must be"),
])
def test_bad_input_is_one_line_and_exit_2_with_nothing_in_out(tiny, tmp_path, capsys, case, message):
    model, data, out = str(tiny / "tiny"), str(tiny / "videos"), tmp_path / "out"
    extra = []
    if case == "missing model":
        model = str(tmp_path / "nothing")
    elif case == "folder without a model":
        (tmp_path / "empty").mkdir()
        model = str(tmp_path / "empty")
    elif case == "missing data":
        data = str(tmp_path / "nowhere")
    elif case == "list of missing files":
        (tmp_path / "list.txt").write_text("jump/gone0.avi jump\nrun/gone1.avi run\n")
        data = str(tmp_path / "list.txt")
    elif case == "out not empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        extra = ["--epochs", "0"]
    assert main(["finetune", model, data, "--out", str(out), *SMALL, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("movinas finetune: error: "), err
    import re

    assert re.search(message, err[0]), err[0]
    assert sorted(p.name for p in out.iterdir()) == (["keep.txt"] if case == "out not empty" else []) \
        if out.exists() else True
    assert not list(tmp_path.glob(".out*"))


def test_released_checkpoint_gets_a_new_classifier_and_keeps_every_other_weight(tmp_path):
    from evaluation.datasets import synthetic
    from evaluation.deploy.finetune import FinetuneConfig, start_model
    from evaluation.deploy.pretrained import load_pretrained

    with tarfile.open(OFFICIAL / "files-a0-base.tar.xz") as tar:
        tar.extractall(tmp_path, filter="data")
    pretrained = load_pretrained(tmp_path / "checkpoint")
    assert pretrained.spec.name == "movinet-a0" and pretrained.num_classes != 3
    data = synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16)
    spec, model, replaced = start_model(pretrained, data, FinetuneConfig(train="last-stages", last_stages=1))
    assert replaced and (spec.frames, spec.resolution) == (4, 16) and model.output_shape[-1] == 3
    for w in model.weights:
        if not w.path.startswith("classifier/") and "seed_generator" not in w.path:
            np.testing.assert_array_equal(w.numpy(), pretrained.weights[w.path], err_msg=w.path)
    trained = {w.path.split("/")[0] for w in model.trainable_weights}
    last = sum(len(st.blocks) for st in spec.stages[:-1])
    assert {"classifier", "classifier_hidden", "head_conv", f"b{last}_dw"} <= trained
    assert not any(name.startswith(("stem", f"b{last - 1}_")) for name in trained)


def test_proxy_init_nests_a_candidate_as_the_supernet_extracts_it(tiny):
    """Starting from a model (here a supernet's envelope, with random weights) gives each sub-network the
    weights `extract` gives it, every one but the skip projections the envelope lacks."""
    from evaluation.evaluator import TrainProxy, TrainScorer, parse_proxy
    from search_space import SearchSpace
    from search_space.nested import nested_report, nested_weights
    from search_space.supernet import Supernet, extract
    from tests.test_supernet import CAUSAL

    net = Supernet(SearchSpace.from_yaml(CAUSAL), num_classes=3)
    rng = np.random.default_rng(7)
    for path, v in net.variables.items():  # random weights: equal values are no accident of the init
        value = rng.normal(0, 0.2, v.shape)
        v.assign((1 + np.abs(value) if path.endswith(("moving_variance", "gamma")) else value).astype("float32"))
    source = {w.path: w.numpy() for w in net.envelope_model.weights}
    for seed in (2,):
        spec = net.space.sample(seed)
        extracted = extract(net, spec)
        shapes = {w.path: tuple(w.shape) for w in extracted.weights}
        nested = nested_weights(net.envelope, source, spec, shapes)
        moved, total, fresh = nested_report(shapes, nested)
        assert moved > 0.9 * total and all("_skip" in p for p in fresh), fresh
        for w in extracted.weights:
            if w.path in nested:
                np.testing.assert_array_equal(nested[w.path], w.numpy(), err_msg=w.path)

    proxy = parse_proxy({"init": "tiny", "epochs": 1}, base=tiny)
    assert proxy == TrainProxy(proxy.budget, str(tiny / "tiny"))
    scorer = TrainScorer(proxy, context=None)
    assert scorer.pretrained.spec == small_causal_spec() and scorer.pretrained.num_classes == 5
