"""A study file is the whole study. Every command that writes a study (search, search --workers,
worker, demo, bench generate) leaves `study.db` in rollback-journal mode with nothing beside it, at
every exit: normal end, an error mid-run, Ctrl-C, SIGTERM. Copied ALONE to a new folder, it holds
every finished trial. And readers polling a study (as `movinas report` and `load_results` do) while
writers start, write a trial and exit, again and again, never see an error.

(`movinas supernet train` writes a checkpoint, not a study: a search scoring on it is `search`.)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from evaluation import load_results
from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
# four architectures, costed but not trained: a trial takes a fraction of a second
TINY_SPACE = {"name": "tiny", "frames": 8, "resolution": [32, 48], "width_mult": [0.5, 1.0],
              "stem": {"width": 8, "kernel": "1x3x3", "strides": "1x2x2"},
              "stages": [{"width": 16, "depth": 1, "strides": "1x2x2", "kernels": ["1x3x3"], "expand_ratios": [2.0]}],
              "head": {"ratio": 4.0, "hidden": 128}}
COST_ONLY = {"space": "small", "num_classes": 4, "sampler": "random", "seed": 0,
             "objectives": [{"minimize": "flops"}, {"minimize": "params"}]}
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
# `demo` and `bench generate` with their configs swapped for tiny ones, as a user would run them
PATCHED = """
import sys
from pathlib import Path
import evaluation.proxies.table as table
import nas.commands.demo as demo
config = Path(sys.argv[1])
demo.config_path = lambda: config
table.PROTOCOL["proxy"] = {"epochs": 1, "steps": 1, "batch_size": 2}
table.PROTOCOL["dataset"] = dict(table.PROTOCOL["dataset"], clips_per_class=2)
sys.argv = ["movinas", *sys.argv[2:]]
from nas.cli import run
run()
"""


def write_config(folder: Path, study: str, **fields) -> Path:
    path = folder / f"{study}.yaml"
    path.write_text(yaml.safe_dump({**COST_ONLY, "study": study, **fields}, sort_keys=False))
    return path


def reported(stderr: str) -> set[int]:
    """Trials the command said had finished ("trial 3 complete 0.1s ...")."""
    return {int(n) for n in re.findall(r"^trial (\d+) (?:complete|early-stopped|failed|interrupted) ", stderr, re.M)}


def copied_trials(db: Path, dest: Path):
    """`db` checked self-contained (rollback journal, no -wal / -shm / -journal beside it), copied
    alone into the new folder `dest` and read there with `load_results` (which creates nothing)."""
    beside = sorted(p.name for p in db.parent.iterdir() if p.name.startswith(f"{db.name}-"))
    assert beside == [], f"files beside {db.name}: {beside}"
    assert db.read_bytes()[18:20] == b"\x01\x01", "left in WAL mode"
    dest.mkdir()
    shutil.copyfile(db, dest / "study.db")
    df = load_results(dest)
    assert sorted(p.name for p in dest.iterdir()) == ["study.db"]
    return df


def finished_in(df) -> set[int]:
    return set(df.loc[df["state"].isin(FINISHED), "number"])


def no_running(df) -> bool:
    return len(df) > 0 and not (df["state"] == "RUNNING").any()


def finished_count(db: Path) -> int:
    """Finished trials in `db` now, read the way a polling reader does (read-only, then closed)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


# ---------------------------------------------------------------------------------------------
# normal end and errors, in this process: the file must be whole when the command returns


def test_search_leaves_one_file_holding_every_trial(tmp_path, capsys):
    cfg = write_config(tmp_path, "plain", trials=4)
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    df = copied_trials(tmp_path / "plain" / "study.db", tmp_path / "copy")
    assert (df["state"] == "COMPLETE").sum() == 4
    assert finished_in(df) >= reported(capsys.readouterr().err) and no_running(df)


@pytest.mark.parametrize("how", ["search", "workers", "worker"])
def test_a_search_ending_in_an_error_mid_run_keeps_its_trials_in_one_file(tmp_path, capsys, how):
    """Four architectures: once all are costed every sample is a duplicate, and the third
    rejection in a row ends the search (each worker, for `--workers`) with status 2."""
    cfg = write_config(tmp_path, "streak", space=TINY_SPACE, trials=50, max_rejected=3)
    db = tmp_path / "streak" / "study.db"
    argv = {"search": ["search", str(cfg)], "workers": ["search", str(cfg), "--workers", "2"],
            "worker": ["worker", str(cfg), "--storage", f"sqlite:///{db}"]}[how]
    assert main([*argv, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err  # the workers' own lines go to the terminal, not to capsys
    assert "rejected untrained" in err or how == "workers"
    df = copied_trials(db, tmp_path / "copy")
    assert (df["state"] == "COMPLETE").sum() == 4 and finished_in(df) >= reported(err)
    assert no_running(df)


def test_the_demo_search_then_report_in_one_process_leaves_one_file(tmp_path, monkeypatch, capsys):
    """The demo's search and its report run in one process: the report reads a file the search
    has already left, and creates nothing beside it."""
    import nas.commands.demo as demo

    cfg = write_config(tmp_path, "demo", trials=3)
    monkeypatch.setattr(demo, "config_path", lambda: cfg)
    assert main(["demo", "--results-dir", str(tmp_path / "results")]) == 0
    folder = tmp_path / "results" / "demo"
    assert (folder / "report.md").is_file()
    df = copied_trials(folder / "study.db", tmp_path / "copy")
    assert (df["state"] == "COMPLETE").sum() == 3 and finished_in(df) >= reported(capsys.readouterr().err)


@pytest.mark.slow
def test_local_workers_and_a_joining_worker_leave_one_file(tmp_path, capsys):
    """`search --workers 2` (two worker processes, the parent polling), then `movinas worker` on
    the same storage raising the budget."""
    cfg = write_config(tmp_path, "team", trials=4)
    assert main(["search", str(cfg), "--workers", "2", "--results-dir", str(tmp_path)]) == 0
    db = tmp_path / "team" / "study.db"
    df = copied_trials(db, tmp_path / "copy")
    assert (df["state"] == "COMPLETE").sum() == 4 and finished_in(df) >= reported(capsys.readouterr().err)
    url = f"sqlite:///{db}"
    assert main(["worker", str(cfg), "--storage", url, "--trials", "6", "--results-dir", str(tmp_path)]) == 0
    df = copied_trials(db, tmp_path / "copy2")
    assert (df["state"] == "COMPLETE").sum() == 6 and no_running(df)


@pytest.mark.slow
def test_bench_generate_leaves_one_file_holding_every_pair(tmp_path, monkeypatch):
    """Two seeds' studies in one bench.db, each with its own connections in one process."""
    import evaluation.proxies.table as table_module

    monkeypatch.setitem(table_module.PROTOCOL, "proxy", {"epochs": 1, "steps": 1, "batch_size": 2})
    monkeypatch.setitem(table_module.PROTOCOL, "dataset", dict(table_module.PROTOCOL["dataset"], clips_per_class=2))
    out = tmp_path / "bench"
    assert main(["bench", "generate", "--out", str(out), "--minutes", "0.001", "--seeds", "0,1"]) == 0
    beside = sorted(p.name for p in out.iterdir() if p.name.startswith("bench.db-"))
    assert beside == [] and (out / "bench.db").read_bytes()[18:20] == b"\x01\x01"
    (tmp_path / "copy").mkdir()
    shutil.copyfile(out / "bench.db", tmp_path / "copy" / "bench.db")
    done = {seed: finished_in(load_results(tmp_path / "copy" / "bench.db", f"bench-seed{seed}")) for seed in (0, 1)}
    assert done == {0: {0}, 1: set()}  # the first architecture at seed 0: the run's one pair


# ---------------------------------------------------------------------------------------------
# Ctrl-C and SIGTERM, sent to the command's process once a trial has finished


def _start(tmp_path: Path, command: str):
    """(process, study.db) of a long `command` run; the config asks for far more trials than it
    will reach."""
    results = tmp_path / "results"
    if command in ("search", "workers", "worker"):
        cfg = write_config(tmp_path, "long", trials=100000)
        db = results / "long" / "study.db"
        args = {"search": ["search", cfg], "workers": ["search", cfg, "--workers", "2"],
                "worker": ["worker", cfg, "--storage", f"sqlite:///{db}"]}[command]
        argv = [sys.executable, "-m", "nas", *map(str, args), "--results-dir", str(results)]
    elif command == "demo":
        cfg = write_config(tmp_path, "demo", trials=100000)
        db = results / "demo" / "study.db"
        argv = [sys.executable, "-c", PATCHED, str(cfg), "demo", "--results-dir", str(results)]
    else:
        db = results / "bench.db"
        argv = [sys.executable, "-c", PATCHED, "-", "bench", "generate", "--out", str(results), "--seeds", "0"]
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, db


@pytest.mark.slow
@pytest.mark.parametrize("command, signum", [
    ("search", signal.SIGINT), ("search", signal.SIGTERM), ("workers", signal.SIGINT), ("workers", signal.SIGTERM),
    ("worker", signal.SIGTERM), ("demo", signal.SIGINT), ("bench", signal.SIGTERM)])
def test_an_interrupted_command_leaves_one_file_holding_every_finished_trial(tmp_path, command, signum):
    proc, db = _start(tmp_path, command)
    deadline = time.monotonic() + 300
    while finished_count(db) < 1:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.1)
    seen = finished_count(db)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=180)
    # 1: a signal landing inside Optuna's own storage calls can still surface as an Optuna error
    # (a known race of the driver, not of the file); the file must be whole either way
    assert proc.returncode in (128 + signum, 1), err[-3000:]
    study = "bench-seed0" if command == "bench" else None
    target = tmp_path / "copy"
    if command == "bench":  # bench.db holds one study per seed
        beside = sorted(p.name for p in db.parent.iterdir() if p.name.startswith("bench.db-"))
        assert beside == [] and db.read_bytes()[18:20] == b"\x01\x01"
        target.mkdir()
        shutil.copyfile(db, target / "bench.db")
        df = load_results(target / "bench.db", study)
    else:
        df = copied_trials(db, target)
    assert len(finished_in(df)) >= seen and finished_in(df) >= reported(err)
    assert (df["state"] == "RUNNING").sum() <= (2 if command == "workers" else 1)  # the interrupted one(s), if any


# ---------------------------------------------------------------------------------------------
# readers polling while writers come and go


@pytest.mark.slow
def test_readers_polling_while_writers_start_write_and_exit_see_no_error(tmp_path):
    """Two readers poll a study read-only, one opening it afresh each time (`load_results`, as
    `movinas report` does), one holding it open (`load_study`, as a notebook does), while writer
    processes each open the storage, add a finished trial and exit, cycle after cycle. (Before,
    a reader holding the study kept the last writer from leaving WAL mode, so `study.db` alone
    held none of the trials, and a reader in a folder it could not write read the file as
    immutable, seeing pages the writers were changing: "database disk image is malformed".)"""
    cycles = 30
    done = subprocess.run([sys.executable, __file__, str(tmp_path), str(cycles)], env=ENV, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = yaml.safe_load(done.stdout)
    assert report["errors"] == [] and report["writers_failed"] == 0
    assert min(report["reads"]) >= 5  # both readers really read while the writers ran
    copied_trials(tmp_path / "loop" / "study.db", tmp_path / "copy")
    study = optuna.load_study(study_name="loop", storage=f"sqlite:///{tmp_path / 'copy' / 'study.db'}")
    assert sorted(t.user_attrs["n"] for t in study.trials) == list(range(-1, cycles + 1))  # every writer's trial


def _loop(root: Path, cycles: int) -> dict:
    """Run the reader / writer loop (in a fresh process: writers and readers are forked from it)."""
    import multiprocessing as mp

    from nas.storage import default_url, open_storage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = open_storage(default_url(root, "loop"))
    optuna.create_study(study_name="loop", storage=storage, directions=["maximize", "minimize"])
    ctx = mp.get_context("fork")
    stop, errors, reads = ctx.Event(), ctx.Queue(), ctx.Queue()
    _write(storage, -1)  # the study's first trial; warms what the forked writers inherit
    readers = [ctx.Process(target=_read, args=(root / "loop", hold, stop, errors, reads)) for hold in (False, True)]
    for r in readers:
        r.start()
    failed = 0
    for i in range(cycles):
        writer = ctx.Process(target=_write, args=(storage, i))
        writer.start()
        writer.join()
        failed += writer.exitcode != 0
    stop.set()
    counts = [reads.get(timeout=60) for _ in readers]
    for r in readers:
        r.join()
    found = []
    while not errors.empty():
        found.append(errors.get())
    _write(storage, cycles)  # the last writer, alone: it leaves the file in a rollback journal
    return {"errors": found, "reads": counts, "writers_failed": failed}


def _write(storage, i: int) -> None:
    """A light writer: open the study, add one finished trial with fixed values, leave the file."""
    from nas.storage import release_sqlite

    storage.engine.dispose(close=False)  # a forked writer opens its own connections
    study = optuna.load_study(study_name="loop", storage=storage)
    study.add_trial(optuna.trial.create_trial(
        params={"x": i % 10}, distributions={"x": optuna.distributions.IntDistribution(0, 10)},
        values=[i / 100, 1.0], user_attrs={"n": i, "pad": "x" * 2000}))
    release_sqlite(storage)


def _read(folder: Path, hold: bool, stop, errors, reads) -> None:
    from evaluation.results.storage import load_study, read_records

    opened, n = None, 0
    while not stop.is_set():
        try:
            if hold:
                opened = opened or load_study(folder)
                read_records(opened)
                opened.study.get_trials(deepcopy=False)
            else:
                load_results(folder)
            n += 1
        except Exception as exc:  # every failure is reported; the test expects none
            errors.put(f"{'holding' if hold else 'fresh'} reader: {type(exc).__name__}: {exc}"[:300])
            opened = None
        time.sleep(0.2)  # a poll now and then, as a progress display or a report loop does
    reads.put(n)


if __name__ == "__main__":  # the reader / writer loop, run by the test above in a fresh process
    import warnings

    warnings.simplefilter("ignore")
    print(yaml.safe_dump(_loop(Path(sys.argv[1]), int(sys.argv[2]))))
