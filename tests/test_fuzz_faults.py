"""Faults a scheduler or an operator causes, as real processes: SIGTERM ends a search like Ctrl-C
(exit 143, the trial re-queued), a killed local worker makes `search --workers` fail naming it, SIGKILLs
landing in database writes lose and double-count nothing, and reading a study writes no file."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from evaluation.results.frames import load_results
from nas.cli import main

SLOW = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "latency_ms"}, {"minimize": "flops"}],
        "sampler": "random", "heartbeat": {"interval": 1, "grace_period": 3}}
FAST = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "flops"}, {"minimize": "params"}],
        "sampler": "random"}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def movinas(*args) -> list[str]:
    return [sys.executable, "-m", "nas", *map(str, args)]


def trials_of(results, study) -> list:
    """The trials of a study no process is writing any more."""
    return optuna.load_study(study_name=study, storage=f"sqlite:///{results / study / 'study.db'}").trials


def wait_for(predicate, proc, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        found = predicate()
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def running(results, study):
    """A predicate: (number, worker) of a RUNNING trial being trained, else None. Polls with short
    plain SQLite connections that never create the file (Optuna would race the search creating it)."""
    db = results / study / "study.db"
    query = ("SELECT t.number, w.value_json FROM trials t "
             "JOIN trial_user_attributes f ON f.trial_id = t.trial_id AND f.key = 'feasible' AND f.value_json = 'true' "
             "JOIN trial_user_attributes w ON w.trial_id = t.trial_id AND w.key = 'worker' WHERE t.state = 'RUNNING'")

    def find():
        if not db.exists():
            return None
        try:
            con = sqlite3.connect(f"file:{db}?mode=rw", uri=True, timeout=5)
            try:
                row = con.execute(query).fetchone()
            finally:
                con.close()
        except sqlite3.Error:  # tables not created yet
            return None
        return None if row is None else (row[0], json.loads(row[1]))

    return find


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_sigterm_marks_the_running_trial_interrupted_requeues_it_and_exits_143(write_config, tmp_path):
    cfg = write_config({**SLOW, "study": "term", "trials": 3})
    proc = subprocess.Popen(movinas("search", cfg, "--results-dir", tmp_path), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    number, _ = wait_for(running(tmp_path, "term"), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "run the same command again to resume" in err and "Traceback" not in err
    trials = trials_of(tmp_path, "term")
    assert trials[number].state.name == "FAIL" and trials[number].user_attrs["outcome"] == "interrupted"
    assert trials[number].user_attrs["reason"] == "terminated (SIGTERM)"
    assert not any(t.state.name == "RUNNING" for t in trials)
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    trials = trials_of(tmp_path, "term")
    retries = [t for t in trials if number in t.system_attrs.get("retry_history", ())]
    assert len(retries) == 1 and retries[0].params == trials[number].params
    assert retries[0].state.name == "COMPLETE"
    assert sum(t.state.name == "COMPLETE" for t in trials) == 3


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowing itself
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_swallowed_by_a_weakref_callback_still_ends_the_run_at_the_next_check(signum):
    """Python ignores an exception raised in a weakref callback (TensorFlow's cleanup runs many):
    a SIGTERM landing there once left `movinas bench generate` running. The flag the handler sets
    makes the next between-trials, after-epoch or after-step check raise the interrupt."""
    import weakref

    from nas.errors import Terminated, raise_if_interrupted, sigterm_interrupts

    expected = Terminated if signum == signal.SIGTERM else KeyboardInterrupt

    class Resource:
        pass

    def on_collect(_ref):
        os.kill(os.getpid(), signum)
        for _ in range(100_000):  # the handler runs here, inside the callback, and is swallowed
            pass

    # a shell's background job (`cmd &`, nohup) starts with Ctrl-C ignored, and the block keeps it so:
    # the test sets Python's default handler, which an interactive run has
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with sigterm_interrupts():
            raise_if_interrupted()  # nothing pending: no exception
            obj = Resource()
            ref = weakref.ref(obj, on_collect)
            del obj  # the callback runs now; its exception is printed as "Exception ignored" and lost
            assert ref() is None
            with pytest.raises(expected) as caught:
                raise_if_interrupted()
            assert type(caught.value) is expected
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        with sigterm_interrupts():  # a new block starts clean
            raise_if_interrupted()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with sigterm_interrupts():  # an ignored Ctrl-C stays ignored
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, outer)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_a_killed_worker_makes_the_search_fail_naming_it_and_keeps_the_study(write_config, tmp_path):
    cfg = write_config({**SLOW, "study": "workers", "trials": 4})
    proc = subprocess.Popen(movinas("search", cfg, "--workers", 2, "--results-dir", tmp_path), env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, worker = wait_for(running(tmp_path, "workers"), proc)
    _, pid, index = worker.rsplit(":", 2)
    os.kill(int(pid), signal.SIGKILL)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode != 0
    assert f"worker {index} was killed by SIGKILL" in err and "Traceback" not in err
    trials = trials_of(tmp_path, "workers")
    assert sum(t.state.name == "COMPLETE" for t in trials) == 4  # the other worker finished the budget
    # the killed trial is failed by the heartbeat and its architecture retried, not lost
    assert trials[victim].state.name in ("FAIL", "RUNNING")


def test_sigkills_inside_database_writes_lose_and_double_count_nothing(write_config, tmp_path):
    cfg = write_config({**FAST, "study": "kills", "trials": 40, "heartbeat": {"interval": 1, "grace_period": 2}})
    for delay in (2.0, 3.1, 4.3):  # cost-only trials commit many times a second: kills land inside writes
        proc = subprocess.Popen(movinas("search", cfg, "--results-dir", tmp_path), env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: True if (tmp_path / "kills" / "study.db").exists() else None, proc)
        time.sleep(delay)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    time.sleep(2.5)  # past the grace period
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    trials = trials_of(tmp_path, "kills")
    states = Counter(t.state.name for t in trials)
    assert states["COMPLETE"] == 40 and states["RUNNING"] == 0
    df = load_results(tmp_path / "kills")
    assert (df["state"] == "COMPLETE").sum() == 40 and len(df) == len(trials)
    assert df["number"].is_unique


def test_reading_a_study_creates_no_file(write_config, tmp_path, capsys):
    cfg = write_config({**FAST, "study": "readonly", "trials": 3})
    done = subprocess.run(movinas("search", cfg, "--results-dir", tmp_path), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "readonly"

    def snapshot():
        return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}

    before = snapshot()
    load_results(folder)
    assert main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0
    assert snapshot() == before  # no -wal / -shm created, nothing changed


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")
def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_retried(tmp_path):
    """A SIGKILL between creating a trial and its first heartbeat leaves it RUNNING with no heartbeat;
    once the grace period has passed it is stale like any other, so no worker waits for it for ever."""
    from nas.config import Heartbeat
    from nas.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}", Heartbeat(interval=1, grace_period=2, max_retry=2))
    study = optuna.create_study(study_name="silent", storage=storage)
    study.ask()  # RUNNING, and its process "dies" before any heartbeat
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state.name == "RUNNING"  # within the grace period: still presumed alive
    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    assert [t.state.name for t in study.trials] == ["FAIL", "WAITING"]  # failed and re-queued
