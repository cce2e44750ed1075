"""Many machines: `movinas worker` processes on one PostgreSQL study; a worker killed mid-trial has
its trial failed by heartbeat and retried by the others, and the budget holds exactly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pytest

from nas.storage import normalize_url

CONFIG = {"study": "pg", "space": "small", "num_classes": 4, "trials": 6, "sampler": "random",
          "objectives": [{"minimize": "latency_ms"}, {"minimize": "flops"}],  # ~1 s per trial: killable
          "heartbeat": {"interval": 1, "grace_period": 4, "max_retry": 2}}


def _trials(url):
    try:
        return optuna.load_study(study_name="pg", storage=normalize_url(url)).trials
    except KeyError:
        return []


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_three_workers_one_killed_mid_trial_reach_exactly_the_budget(postgres_url, write_config, tmp_path):
    cfg = write_config(CONFIG)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    workers = [subprocess.Popen([sys.executable, "-m", "nas", "worker", str(cfg), "--storage", postgres_url,
                                 "--results-dir", str(tmp_path / f"machine{i}"), "--quiet"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for i in range(3)]
    victim = workers[0]
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and time.monotonic() < deadline:  # wait until the victim runs a trial
        assert victim.poll() is None, victim.communicate()
        for t in _trials(postgres_url):
            mine = t.user_attrs.get("worker", "").split(":")[1:2] == [str(victim.pid)]
            if t.state.name == "RUNNING" and mine and t.user_attrs.get("feasible"):
                killed = t.number
        time.sleep(0.05)
    assert killed is not None, "the victim never ran a trial"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    for w in workers[1:]:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err

    trials = {t.number: t for t in _trials(postgres_url)}
    states = Counter(t.state.name for t in trials.values())
    assert states["COMPLETE"] == 6 and states["RUNNING"] == 0 and states["WAITING"] == 0
    assert trials[killed].state.name == "FAIL"
    retries = [t for t in trials.values()
               if optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1
    assert retries[0].state.name == "COMPLETE" and retries[0].params == trials[killed].params
    assert len({t.number for t in trials.values()}) == len(trials)


TABLE = Path(__file__).resolve().parents[1] / "results" / "bench" / "table.csv"
REASON = re.compile(r"outside the top 1/3 at rung epoch (\d): (\d+) of the (\d+) trials there rank ahead \((\d+) go on")


def test_mo_asha_workers_share_their_rungs_through_postgresql(postgres_url, write_config, tmp_path):
    """Two `movinas worker`s on one PostgreSQL study with MO-ASHA (the bench table replayed epoch by
    epoch): the budget holds, stopped trials stop only at rungs with the top-1/3 reason, finished ones
    train to the last epoch, and a worker's rung decisions count the other worker's trials."""
    config = {"study": "pg-asha", "space": "bench", "seed": 3, "sampler": "random", "num_classes": 10,
              "trials": 12, "dataset": {"kind": "graded", "clips_per_class": 2, "frames": "spec", "resolution": "spec"},
              "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
              "proxy": {"kind": "table", "path": str(TABLE)},
              "early_stopping": {"rule": "mo-asha", "min_epoch": 1, "eta": 3, "min_trials": 2}}
    cfg = write_config(config, "asha.yaml")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    workers = [subprocess.Popen([sys.executable, "-m", "nas", "worker", str(cfg), "--storage", postgres_url,
                                 "--results-dir", str(tmp_path / f"machine{i}"), "--quiet"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
               for i in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=300)
        assert w.returncode == 0, err

    trials = optuna.load_study(study_name="pg-asha", storage=normalize_url(postgres_url)).trials
    stopped = [t for t in trials if t.user_attrs.get("outcome") == "early_stopped"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(stopped) + len(complete) == 12 and stopped and complete
    owner = {t.number: t.user_attrs["worker"].split(":")[1] for t in trials}
    assert len(set(owner.values())) == 2  # both workers trained
    for t in complete:
        assert [e["epoch"] for e in t.user_attrs["curve"]] == [1, 2, 3, 4, 5, 6]
    saw_other_worker = False
    for t in stopped:
        match = REASON.match(t.user_attrs["reason"])
        assert match, t.user_attrs["reason"]
        epoch, ahead, n, keep = map(int, match.groups())
        assert t.state.name == "PRUNED" and t.user_attrs["curve"][-1]["epoch"] == epoch in (1, 3)
        assert keep == max(1, n // 3) and ahead >= keep
        at_rung = [u for u in trials if u.number != t.number
                   and any(e["epoch"] == epoch for e in u.user_attrs.get("curve", []))]
        assert n - 1 <= len(at_rung)  # decided against trials that are in the study
        saw_other_worker |= n - 1 > sum(owner[u.number] == owner[t.number] for u in at_rung)
    assert saw_other_worker, "no rung decision counted the other worker's trials"
