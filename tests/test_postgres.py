"""Many machines: `movinas worker` processes on one PostgreSQL study; a worker killed mid-trial has
its trial failed by heartbeat and retried by the others, and the budget holds exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

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
