"""`movinas search` / `movinas worker` as a user runs them: exit codes, resume after SIGKILL, Ctrl-C,
local workers sharing one SQLite study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from evaluation.results.record import Outcome, read_trial
from nas.cli import main
from nas.storage import default_url

# latency_ms builds and times the network: a trial lasts about a second, long enough to kill mid-trial
SLOW = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "latency_ms"}, {"minimize": "flops"}],
        "sampler": "random", "heartbeat": {"interval": 1, "grace_period": 3}}
FAST = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "flops"}, {"minimize": "params"}],
        "sampler": "random"}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def movinas(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas", *map(str, args)]


def load(results, study):
    return optuna.load_study(study_name=study, storage=default_url(results, study))


def wait_for_running_trial(results, study, proc, after: int = 0, timeout: float = 120):
    """Poll the storage until a feasible trial numbered >= `after` is RUNNING; return its number."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            trials = load(results, study).trials
        except (KeyError, Exception):
            trials = []
        for t in trials:
            if t.number >= after and t.state.name == "RUNNING" and t.user_attrs.get("feasible"):
                return t.number
        time.sleep(0.05)
    raise AssertionError("no running trial")


def test_bad_config_field_exits_2_with_one_line_naming_the_field(write_config):
    cfg = write_config({"sampler": {"name": "tpee"}}, name="demo.yaml")
    done = subprocess.run(movinas("search", cfg), capture_output=True, text=True, env=ENV)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"movinas search: error: {cfg}: sampler.name: 'tpee', must be one of tpe, nsga2, nsga3, random, grid, gp"]


def test_unreachable_storage_exits_2_naming_the_url(write_config, tmp_path, capsys):
    cfg = write_config(FAST)
    url = "postgresql://nobody@127.0.0.1:1/x"
    assert main(["search", str(cfg), "--storage", url, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"storage {url}: cannot open" in err


def test_changed_space_on_resume_exits_2_naming_the_difference(write_config, tmp_path, capsys):
    cfg = write_config({**FAST, "study": "changed", "trials": 2})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    wider = {"name": "small", "frames": 8, "resolution": [32, 48, 64], "width_mult": [0.5, 1.0],
             "stem": {"width": 8, "kernel": "1x3x3", "strides": "1x2x2"},
             "stages": [{"width": 16, "depth": 1, "strides": "1x2x2", "kernels": ["1x3x3"], "expand_ratios": [2.0]}],
             "head": {"ratio": 4.0, "hidden": 128}}
    cfg = write_config({**FAST, "study": "changed", "trials": 3, "space": wider})
    capsys.readouterr()
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "the search space changed" in err and "resolution: [32, 48] vs [32, 48, 64]" in err
    assert len(load(tmp_path, "changed").trials) == 2


def test_budget_no_architecture_meets_is_refused_up_front(write_config, tmp_path, capsys):
    cfg = write_config({**FAST, "study": "tight", "constraints": ["flops <= 1M", "params <= 30K"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "none of 2,000 architectures sampled from the space meets them all" in err
    assert "flops <= 1M: smallest flops reached" in err
    assert not (tmp_path / "tight" / "trials").exists()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_resume_after_sigkill_keeps_finished_trials_and_retries_the_killed_one(write_config, tmp_path):
    cfg = write_config({**SLOW, "study": "killed", "trials": 3})
    proc = subprocess.Popen(movinas("search", cfg, "--results-dir", tmp_path), env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = wait_for_running_trial(tmp_path, "killed", proc)
    killed = wait_for_running_trial(tmp_path, "killed", proc, after=first + 1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: t.params for t in load(tmp_path, "killed").trials if t.state.name == "COMPLETE"}
    assert before, "a trial finished before the kill"
    time.sleep(3.5)  # past the heartbeat grace period: the killed trial is stale
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    trials = load(tmp_path, "killed").trials
    assert Counter(t.state.name for t in trials)["COMPLETE"] == 3
    assert all(trials[n].params == p and trials[n].state.name == "COMPLETE" for n, p in before.items())
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE" and retries[0].params == trials[killed].params


def test_ctrl_c_marks_the_running_trial_interrupted_and_exits_130(write_config, tmp_path):
    cfg = write_config({**SLOW, "study": "ctrlc", "trials": 5})
    proc = subprocess.Popen(movinas("search", cfg, "--results-dir", tmp_path), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    number = wait_for_running_trial(tmp_path, "ctrlc", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "run the same command again to resume" in err
    trials = before = load(tmp_path, "ctrlc").trials
    assert trials[number].state.name == "FAIL" and trials[number].user_attrs["outcome"] == "interrupted"
    assert not any(t.state.name == "RUNNING" for t in trials)
    # resuming retries the interrupted architecture first, once, and finishes the budget
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = load(tmp_path, "ctrlc").trials
    retries = [t for t in trials if number in t.system_attrs.get("retry_history", ())]
    assert len(retries) == 1 and retries[0].number == len(before)
    assert retries[0].params == trials[number].params and retries[0].state.name == "COMPLETE"
    assert read_trial(retries[0]).outcome is Outcome.COMPLETE and retries[0].user_attrs["outcome"] is None
    assert sum(t.state.name == "COMPLETE" for t in trials) == 5


def test_two_local_workers_share_one_study(write_config, tmp_path):
    # enough trials that the second worker is up before the first has done them all, even on a busy machine
    cfg = write_config({**FAST, "study": "pair", "trials": 96})
    done = subprocess.run(movinas("search", cfg, "--workers", 2, "--results-dir", tmp_path), env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = load(tmp_path, "pair").trials
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))  # no trial number twice
    assert sum(t.state.name == "COMPLETE" for t in trials) == 96  # the budget holds exactly
    # the rest are repeats of an architecture already costed: rejected untrained, not counted
    assert all(t.user_attrs["outcome"] == "duplicate" for t in trials if t.state.name != "COMPLETE")
    workers = Counter(t.user_attrs["worker"].rsplit(":", 1)[1] for t in trials)
    assert set(workers) == {"0", "1"}


@pytest.mark.parametrize("flag", ["--workers", "--trials"])
def test_non_positive_counts_are_usage_errors(write_config, tmp_path, flag, capsys):
    cfg = write_config(FAST)
    assert main(["search", str(cfg), flag, "0", "--results-dir", str(tmp_path)]) == 2
    assert f"{flag}: 0" in capsys.readouterr().err


def test_storage_url_from_the_environment(write_config, tmp_path):
    cfg = write_config({**FAST, "study": "envurl", "trials": 2})
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env={**ENV, "MOVINAS_STORAGE": url},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="envurl", storage=url)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 2
    assert not (tmp_path / "envurl" / "study.db").exists()
