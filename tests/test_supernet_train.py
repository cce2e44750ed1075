"""One-shot training, scoring, search and export with a supernet, end to end on tiny shapes."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.oneshot.supernet import SupernetConfig, parse_supernet, read_checkpoint, sandwich
from nas.cli import main
from nas.config import config_from_dict
from nas.errors import UsageError
from search_space import SearchSpace

SPACE = """
name: tiny
frames: 4
resolution: 16
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 8, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2.0, 3.0]}
  - {width: 16, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2.0, 3.0]}
head: {ratio: 2.0, hidden: 16}
"""

CONFIG = """
study: tiny
space: space.yaml
dataset: {kind: synthetic, num_classes: 3, clips_per_class: 8, frames: 4, resolution: 16}
objectives: [maximize: val_accuracy, minimize: flops]
proxy: {kind: supernet}
supernet: {steps: 16, batch_size: 4, random_subnets: 1, checkpoint_every: 4, recalibration_clips: 8}
trials: 3
sampler: random
early_stopping: off
"""

CLI = [sys.executable, "-m", "nas"]


def _folder(path, config=CONFIG):
    path.mkdir(parents=True, exist_ok=True)
    (path / "space.yaml").write_text(SPACE)
    (path / "tiny.yaml").write_text(config)
    return path


def _train(folder, *extra, **kw):
    return subprocess.run([*CLI, "supernet", "train", "tiny.yaml", "--quiet", *extra], cwd=folder,
                          capture_output=True, text=True, timeout=600, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = _folder(tmp_path_factory.mktemp("oneshot"))
    run = _train(folder)
    assert run.returncode == 0, run.stderr[-2000:]
    return folder


def _weights(folder):
    _, arrays = read_checkpoint(folder / "results" / "tiny" / "supernet.npz")
    return arrays


# ---------------------------------------------------------------------------------------------
# configuration


def test_supernet_section_refuses_an_unknown_field_naming_it():
    with pytest.raises(UsageError, match=r"supernet\.stepz: unknown field, allowed: steps, batch_size"):
        config_from_dict({"study": "s", "supernet": {"stepz": 3}})
    with pytest.raises(UsageError, match=r"supernet\.random_subnets: -1, must be an integer >= 0"):
        config_from_dict({"study": "s", "supernet": {"random_subnets": -1}})
    with pytest.raises(UsageError, match=r"proxy\.epochs: unknown field for kind supernet"):
        config_from_dict({"study": "s", "proxy": {"kind": "supernet", "epochs": 2}})


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["steps", "batch_size", "random_subnets", "learning_rate", "distill",
                                        "strategy", "checkpoint", "val_clips", "grad_clip", "bogus"]),
                       st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.floats(allow_nan=True),
                                 st.text(max_size=5)), max_size=4))
def test_supernet_section_is_a_config_or_one_line_naming_the_field(fields):
    try:
        cfg = parse_supernet(fields)
    except ValueError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("supernet.")
        assert message.split(":")[0].removeprefix("supernet.") in fields
    else:
        assert isinstance(cfg, SupernetConfig)


def test_progressive_shrinking_opens_kernels_then_depth_then_widths():
    from search_space.supernet import Supernet

    net = Supernet(SearchSpace.from_yaml(SPACE), 3)
    cfg = SupernetConfig(steps=40, progressive=True, random_subnets=3)
    assert sandwich(net, cfg, 0, 0) == [net.largest]  # first quarter: the largest alone
    kernel_phase = sandwich(net, cfg, 0, 10)
    assert all(len(s.stages[i].blocks) == len(net.largest.stages[i].blocks) for s in kernel_phase for i in range(2))
    assert {b.expand for s in kernel_phase for st_ in s.stages for b in st_.blocks} == {
        b.expand for st_ in net.largest.stages for b in st_.blocks}
    last = sandwich(net, cfg, 0, 39)
    assert last[1] == net.smallest.replace(name=last[1].name)


# ---------------------------------------------------------------------------------------------
# training, distribution, resume


def test_training_under_a_two_device_mirrored_strategy_keeps_replicas_in_sync(tmp_path):
    folder = _folder(tmp_path)
    script = textwrap.dedent("""
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from evaluation.datasets import synthetic
        from evaluation.oneshot.supernet import SupernetConfig
        from evaluation.oneshot.train import make_strategy, train_supernet
        from search_space import SearchSpace
        data = synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16)
        cfg = SupernetConfig(steps=2, batch_size=4, random_subnets=0, checkpoint_every=2)
        r = train_supernet(SearchSpace.from_yaml(open("space.yaml").read()), data, cfg, "ck.npz",
                           strategy=make_strategy("mirrored"), progress=False)
        v = r["net"].variables["b0_expand/kernel"].value  # the tf.distribute MirroredVariable
        copies = [c.numpy() for c in v.values]
        print(json.dumps({"replicas": r["replicas"], "devices": [c.device for c in v.values],
                          "same": all((c == copies[0]).all() for c in copies), "losses": r["losses"]}))
    """)
    run = subprocess.run([sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2 and len(set(out["devices"])) == 2
    assert out["same"] and all(np.isfinite(out["losses"]))
    meta, _ = read_checkpoint(folder / "ck.npz")
    assert meta["step"] == 2


def test_sub_networks_that_cannot_run_as_masks_train_in_the_eager_step(tmp_path):
    from evaluation.datasets import synthetic
    from evaluation.oneshot.train import train_supernet
    from search_space.supernet import Supernet

    # 1x1x1 kernels (no mask of the 1x3x3); a stride-1 stage as wide as the last in the envelope only,
    # so the supernet adds a skip projection the masked step's envelope does not read
    space = SearchSpace.from_yaml(SPACE.replace("kernels: [1x3x3, 3x3x3]", "kernels: [1x1x1, 1x3x3]").replace(
        "{width: 8, depth", "{width: 16, width_mult: [0.5, 1.0], depth").replace("16, depth: [1, 2], strides: 1x2x2",
                                                                              "16, depth: [1, 2], strides: 1x1x1"))
    cfg = SupernetConfig(steps=1, batch_size=4, random_subnets=1, checkpoint_every=1)
    net = Supernet(space, 3)
    assert any(net.masks(s) is None for s in sandwich(net, cfg, 0, 0)) and net.masks(net.largest) is not None
    assert "b2_skip/kernel" in net.variables and "b2_skip/kernel" not in {w.path for w in net.envelope_model.weights}
    data = synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16)
    r = train_supernet(space, data, cfg, tmp_path / "ck.npz", progress=False)
    assert r["step"] == 1 and len(r["losses"]) == 3 and all(np.isfinite(r["losses"]))
    assert read_checkpoint(tmp_path / "ck.npz")[0]["step"] == 1


def test_a_run_killed_with_sigkill_resumes_to_the_same_weights(trained, tmp_path):
    folder = _folder(tmp_path)
    checkpoint = folder / "results" / "tiny" / "supernet.npz"
    proc = subprocess.Popen([*CLI, "supernet", "train", "tiny.yaml", "--quiet"], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 500
    try:
        while time.time() < deadline and proc.poll() is None:
            if checkpoint.exists() and read_checkpoint(checkpoint)[0]["step"] >= 4:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = read_checkpoint(checkpoint)[0]["step"]
    assert proc.returncode == -signal.SIGKILL and 4 <= killed_at < 16
    resumed = _train(folder)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_checkpoint(checkpoint)[0]["step"] == 16
    ours, reference = _weights(folder), _weights(trained)
    assert set(ours) == set(reference)
    for key in reference:
        np.testing.assert_allclose(ours[key], reference[key], rtol=1e-5, atol=1e-6, err_msg=key)


# ---------------------------------------------------------------------------------------------
# search and export on the trained supernet


def test_search_then_export_gives_the_scored_sub_network(trained, monkeypatch):
    monkeypatch.chdir(trained)
    assert main(["search", "tiny.yaml"]) == 0
    from evaluation.results.frames import load_results

    df = load_results("results/tiny")
    done = df[df["state"] == "COMPLETE"]
    assert len(done) == 3 and done["val_accuracy"].between(0, 1).all()
    row = done.iloc[0]
    assert main(["export", "results/tiny", "--trial", str(int(row["number"])), "--format", "yaml,keras",
                 "--out", "exported"]) == 0
    card = (trained / "exported" / "model_card.md").read_text()
    assert "inherited from the study's supernet" in card
    import keras

    from evaluation.datasets import synthetic

    model = keras.saving.load_model(trained / "exported" / "model.keras")
    data = synthetic(num_classes=3, clips_per_class=8, frames=4, resolution=16)
    accuracy = float((model.predict(data.val.x, verbose=0).argmax(1) == data.val.y).mean())
    assert accuracy == pytest.approx(row["val_accuracy"])


def test_a_checkpoint_of_another_space_is_refused_and_kept(trained, tmp_path, capsys, monkeypatch):
    other = _folder(tmp_path, CONFIG.replace("space.yaml", "other.yaml"))
    (other / "other.yaml").write_text(SPACE.replace("hidden: 16", "hidden: 24"))
    target = other / "results" / "tiny" / "supernet.npz"
    target.parent.mkdir(parents=True)
    target.write_bytes((trained / "results" / "tiny" / "supernet.npz").read_bytes())
    before = target.read_bytes()
    monkeypatch.chdir(other)
    assert main(["supernet", "train", "tiny.yaml", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a supernet of space 'tiny', not of this config's space" in err
    assert "head.hidden: 16 vs 24" in err
    assert main(["search", "tiny.yaml"]) == 2
    assert target.read_bytes() == before


def test_a_corrupt_checkpoint_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    folder = _folder(tmp_path)
    target = folder / "results" / "tiny" / "supernet.npz"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"PK\x03\x04 not really a zip")
    monkeypatch.chdir(folder)
    assert main(["supernet", "train", "tiny.yaml", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable supernet checkpoint" in err
    assert main(["search", "tiny.yaml"]) == 2
    assert "not a readable supernet checkpoint" in capsys.readouterr().err
    assert target.read_bytes() == b"PK\x03\x04 not really a zip"


def test_masked_scoring_equals_scoring_the_extracted_model():
    from evaluation.datasets import synthetic
    from evaluation.oneshot.score import Scorer, recalibration_clips, score_extracted
    from search_space.supernet import Supernet

    space = SearchSpace.from_yaml(SPACE)
    net = Supernet(space, 3)
    rng = np.random.default_rng(0)
    for v in net.variables.values():
        v.assign((rng.normal(0, 0.3, v.shape) + (1.0 if v.path.endswith("variance") else 0.0)).astype("float32"))
    data = synthetic(num_classes=3, clips_per_class=6, frames=4, resolution=16)
    recal = recalibration_clips(data.train.x, 8)
    scorer = Scorer(net, batch_size=4)
    for seed in range(3):
        spec = space.sample(seed)
        a = scorer.score(spec, recal, data.val.x, data.val.y)
        b = score_extracted(net, spec, recal, data.val.x, data.val.y, 4, time.perf_counter())
        assert a["val_accuracy"] == b["val_accuracy"]
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)


def test_postgresql_workers_score_on_one_read_only_checkpoint(trained, postgres_url, tmp_path):
    folder = _folder(tmp_path, CONFIG.replace("study: tiny", "study: tiny_pg").replace("trials: 3", "trials: 4"))
    checkpoint = folder / "results" / "tiny_pg" / "supernet.npz"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes((trained / "results" / "tiny" / "supernet.npz").read_bytes())
    before = checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()
    run = subprocess.run([*CLI, "search", "tiny.yaml", "--storage", postgres_url, "--workers", "2"], cwd=folder,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    import optuna

    from evaluation.results.storage import normalize_url

    study = optuna.load_study(study_name="tiny_pg", storage=normalize_url(postgres_url))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 4 and len({t.user_attrs["worker"] for t in done}) >= 1
    assert all(0 <= t.values[0] <= 1 for t in done)
    assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()) == before


def test_export_with_train_epochs_fine_tunes_the_inherited_weights_and_says_so(trained, monkeypatch, capsys):
    monkeypatch.chdir(trained)
    if not (trained / "results" / "tiny" / "study.db").exists():
        assert main(["search", "tiny.yaml"]) == 0
    capsys.readouterr()
    assert main(["export", "results/tiny", "--trial", "0", "--train-epochs", "1", "--format", "yaml",
                 "--out", "finetuned"]) == 0
    card = (trained / "finetuned" / "model_card.md").read_text()
    assert "inherited from the study's supernet" in card and "then fine-tuned for 1 epochs" in card
    err = capsys.readouterr().err
    assert "fine-tuning: 100%" in err  # the bar of the epochs
    accuracy = re.search(r"trained 1 epoch: validation accuracy ([\d.]+),", err)
    assert accuracy and f"proxy settings: validation accuracy {accuracy[1]}," in card


def test_an_exception_from_on_step_stops_training_and_a_rerun_resumes_from_the_checkpoint(tmp_path):
    """`movinas supernet train` raises a swallowed SIGTERM from this hook; training stops at a step."""
    from evaluation.datasets import synthetic
    from evaluation.oneshot.train import Progress, train_supernet

    class Stop(Exception):
        pass

    def stop_at_3(step):
        if step == 3:
            raise Stop

    space = SearchSpace.from_yaml(SPACE)
    cfg = SupernetConfig(steps=4, batch_size=4, random_subnets=1, checkpoint_every=1)
    data = synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16)
    with pytest.raises(Stop):
        train_supernet(space, data, cfg, tmp_path / "ck.npz", progress=Progress(bar=False, on_step=stop_at_3))
    assert read_checkpoint(tmp_path / "ck.npz")[0]["step"] == 3
    seen = []
    r = train_supernet(space, data, cfg, tmp_path / "ck.npz", progress=Progress(bar=False, on_step=seen.append))
    assert r["steps_run"] == 1 and r["step"] == 4 and seen == [4]
