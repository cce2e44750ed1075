"""`movinas search CONFIG` runs or resumes a study; `movinas worker CONFIG` joins one.

Both open the study through a `nas.session.Session` and run the same trial loop (`nas.study.drive`);
`search --workers N` starts N `movinas worker` processes on the study and shows their progress.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from evaluation.results.record import VAL_ACCURACY, read_trial

from ..errors import Terminated, UsageError, exit_status, raise_if_interrupted
from ..session import STORAGE_ENV, Session, StudyRequest
from ..summary import best_record, front_table

RESUME_HINT = "run the same command again to resume"
MAX_WORKERS = 64


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="run or resume a multi-objective architecture search described by a config YAML",
        description=(
            "Search the space of a config file with Optuna: each trial samples an architecture, rejects it "
            "untrained when it breaks a constraint, otherwise trains a proxy and records its objectives. "
            "Running the same command again resumes the study; --trials is the total the study should reach. "
            "Config schema and storage layout: docs/search.md."
        ),
        epilog="examples: movinas search nas/configs/example.yaml | movinas search my.yaml --workers 2 --trials 50",
    )
    _common(p)
    p.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study (default: 1)")
    p.set_defaults(func=run_search)
    w = subparsers.add_parser(
        "worker",
        help="join a study from another process or machine (e.g. with --storage postgresql://...)",
        description=(
            "Run trials of the study of CONFIG until its trial budget is met, alongside any other workers "
            "on the same storage. A worker killed mid-trial has its trial failed and retried by the others "
            "after the heartbeat grace period."
        ),
        epilog="example: movinas worker example.yaml --storage postgresql://user:pw@db-host/movinas",
    )
    _common(w)
    w.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    w.add_argument("--quiet", action="store_true", help="print nothing but errors")
    w.set_defaults(func=run_worker)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG", help="search config YAML (see nas/configs/example.yaml)")
    p.add_argument("--trials", type=int, default=None, help="total counted trials of the study (default: config)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL (default: $MOVINAS_STORAGE, else the config's, else "
                        "sqlite:///RESULTS_DIR/STUDY/study.db); pass a URL holding a password through "
                        "MOVINAS_STORAGE, which other users cannot read the way they read command lines")
    p.add_argument("--study", default=None, help="study name (default: config, else the config file name)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S seconds")
    p.add_argument("--results-dir", default="results", help="results root; the study writes RESULTS_DIR/STUDY")


def request(args: argparse.Namespace) -> StudyRequest:
    """The study a `search` or `worker` command line asks for."""
    return StudyRequest(args.config, trials=args.trials, storage=args.storage, study=args.study, timeout=args.timeout,
                        results_dir=args.results_dir)


def run_search(args: argparse.Namespace) -> int:
    from search_space import validate as v

    v.integer(args.workers, "--workers", 1, MAX_WORKERS, error=UsageError)
    s = Session(request(args))
    try:
        return _search(args, s)
    finally:
        s.close()


def _search(args: argparse.Namespace, s: Session) -> int:
    from ..study import drive, tally

    config = s.config
    done, _ = tally(s.study)
    where = f"storage {_redacted(s.url)}, results {s.results}"
    print(f"study {config.study}: {done} of {config.trials} trials done; {where}", file=sys.stderr)
    if s.feasible is not None and config.constraints:
        print(f"constraints: {s.feasible:.1%} of 2,000 sampled architectures meet them", file=sys.stderr)
    if args.workers > 1:
        return _run_workers(args, s)
    progress = Progress(s.study, config, done, _epochs(s))
    s.runner.on_epoch = progress.on_epoch
    try:
        why = drive(s.study, s.storage, s.runner, config.trials, config.timeout, on_trial=progress.on_trial)
    except KeyboardInterrupt as exc:
        progress.close()
        print(f"movinas search: interrupted; the running trial is marked failed (interrupted) and finished "
              f"trials are kept in {_redacted(s.url)}; {RESUME_HINT}", file=sys.stderr)
        return exit_status(exc)
    progress.close()
    return _finish(s, why)


def run_worker(args: argparse.Namespace) -> int:
    from ..study import drive

    index = args.worker_index
    s = Session(request(args), worker_index=index if index is not None else os.getpid(), screen=index is None)
    progress = None if args.quiet else Progress(s.study, s.config, None)
    try:
        why = drive(s.study, s.storage, s.runner, s.config.trials, s.config.timeout,
                    on_trial=progress.on_trial if progress else None)
        if progress:
            progress.close()
            return _finish(s, why)
        return 0
    except KeyboardInterrupt as exc:
        if progress:
            progress.close()
        return exit_status(exc)
    finally:
        s.close(wait=0 if index is not None else None)  # a worker of `search --workers`: its parent switches


def _finish(s: Session, why: str) -> int:
    from ..study import tally

    done, _ = tally(s.study)
    if why == "timeout":
        print(f"timeout: {done} of {s.config.trials} trials done; {RESUME_HINT}", file=sys.stderr)
    elif why == "exhausted":
        print(f"grid exhausted after {done} counted trials", file=sys.stderr)
    print(front_table(s.study, s.config))
    return 0


def _run_workers(args: argparse.Namespace, s: Session) -> int:
    """Start `movinas worker` processes on the study; show progress; forward Ctrl-C once."""
    from ..study import tally

    # the URL (password included) travels in the environment, not on command lines anyone can list
    cmd = [sys.executable, "-m", "nas", "worker", str(Path(args.config).resolve()), "--study", s.config.study, "--trials", str(s.config.trials), "--results-dir", args.results_dir,
           "--quiet"]
    if s.config.timeout is not None:
        cmd += ["--timeout", str(s.config.timeout)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"), **{STORAGE_ENV: s.url})
    # own sessions: a terminal Ctrl-C reaches only this process, which then interrupts each worker once
    procs = [subprocess.Popen(cmd + ["--worker-index", str(i)], env=env, start_new_session=True)
             for i in range(args.workers)]
    progress = Progress(s.study, s.config, tally(s.study)[0], _epochs(s))
    try:
        while any(p.poll() is None for p in procs):
            raise_if_interrupted()  # a SIGTERM or Ctrl-C whose exception a weakref callback swallowed
            progress.poll()
            time.sleep(1.0)
    except KeyboardInterrupt as exc:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        progress.close()
        print(f"movinas search: interrupted; running trials are marked failed (interrupted); {RESUME_HINT}",
              file=sys.stderr)
        return exit_status(exc)
    progress.poll()
    progress.close()
    died = [f"worker {i} " + (f"was killed by {signal.Signals(-p.returncode).name}" if p.returncode < 0
                              else f"exited with status {p.returncode}")
            for i, p in enumerate(procs) if p.returncode]
    if died:
        print(f"movinas search: {'; '.join(died)}; finished trials are kept in {_redacted(s.url)}; "
              f"{RESUME_HINT}", file=sys.stderr)
        codes = {p.returncode for p in procs}
        return 2 if codes == {2} else 1  # 2: every worker stopped on the same bad input (e.g. a rejection streak)
    return _finish(s, "timeout" if tally(s.study)[0] < s.config.trials else "budget")


def _epochs(s: Session) -> int | None:
    """The proxy's epochs per trial (None: no training, or a step or time budget)."""
    return s.runner.budget.epochs if s.runner.budget is not None else None


def _redacted(url: str) -> str:
    from evaluation.results.storage import redact

    return redact(url)


class Progress:
    """A tqdm bar of counted trials, plus one line per trained trial. Its postfix names the best
    trial so far (first objective, ties to the lower cost), the training trial's epoch k/E and
    latest validation accuracy, and the trials rejected untrained by kind (infeasible, duplicate).
    `initial=None` disables the bar (a worker prints its lines only); `epochs`: the proxy's."""

    def __init__(self, study, config, initial: int | None, epochs: int | None = None):
        from tqdm import tqdm

        self.study, self.config, self.epochs = study, config, epochs
        self.bar = None if initial is None else tqdm(total=config.trials, initial=initial, desc=config.study,
                                                     unit="trial", file=sys.stderr, dynamic_ncols=True)
        self.seen: set[int] = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.summary: list[str] = []  # the best trial, rejections: redrawn after each trial
        self.training = ""  # the trial in training: "trial 7 epoch 2/5 val_accuracy=0.41"

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def on_trial(self, study, trial) -> None:
        self.seen.add(trial.number)
        self.training = ""
        self._report(trial)
        self._refresh()

    def on_epoch(self, number: int, entry: dict) -> None:
        """After each epoch of a trial trained in this process (`Runner.on_epoch`)."""
        self.training = self._epoch_text(number, entry)
        self._show()

    def poll(self) -> None:
        trials = self.study.get_trials(deepcopy=False)
        for t in trials:
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                self._report(t)
        running = [read_trial(t) for t in trials if t.state.name == "RUNNING"]
        self.training = ", ".join(self._epoch_text(r.number, r.curve[-1]) for r in running if r.curve)
        self._refresh(trials)

    def _epoch_text(self, number: int, entry: dict) -> str:
        from evaluation.results.report import format_value

        of = f"/{self.epochs}" if self.epochs else ""
        acc = entry.get(VAL_ACCURACY)
        return f"trial {number} epoch {entry.get('epoch')}{of}" + (
            f" {VAL_ACCURACY}={format_value(VAL_ACCURACY, acc)}" if acc is not None else "")

    def _report(self, t) -> None:
        from evaluation.results.report import format_value

        record = read_trial(t)
        if record.outcome is None or record.rejected:  # rejected untrained: counted in the bar
            return
        names = [o.name for o in self.config.objectives]
        values = "  ".join(f"{n}={format_value(n, v)}" for n, v in zip(names, record.values or ()))
        seconds = sum(record.timing.values())
        self._write(f"trial {t.number} {record.outcome.value.replace('_', '-')} {seconds:.1f}s  "
                    f"{values or record.reason or ''}")

    def _refresh(self, trials=None) -> None:
        """Redraw the count and the summary (`trials`: the study's, when the caller just read them)."""
        if self.bar is None:
            return
        from collections import Counter

        from evaluation.results.report import format_value

        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        records = [read_trial(t) for t in trials]
        self.bar.n = min(sum(r.counted for r in records), self.config.trials)
        self.summary = []
        best = best_record(records, self.config)
        if best is not None:
            names = [o.name for o in self.config.objectives]
            self.summary.append(f"best trial {best.number}: " + " ".join(
                f"{n}={format_value(n, v)}" for n, v in zip(names, best.values)))
        rejected = Counter(r.outcome.value for r in records if r.rejected)
        self.summary.append(" ".join(f"{kind}={rejected[kind]}" for kind in ("infeasible", "duplicate")
                                     if rejected[kind]))
        self._show()

    def _show(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(" | ".join(p for p in (self.training, *self.summary) if p), refresh=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
