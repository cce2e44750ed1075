"""One process's part in a study: the config, space, storage, runner and Optuna study, opened and checked.

`Session(StudyRequest(...))` is what `movinas search`, `movinas worker` and `movinas bench` open before they
drive trials (`nas.study.drive`); `close()` leaves a SQLite study in one self-contained file.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

STORAGE_ENV = "MOVINAS_STORAGE"  # storage URL, read when no storage is given


@dataclass(frozen=True)
class StudyRequest:
    """Which study to open and how: the config file and what overrides it (the command line's flags).
    `storage` None: $MOVINAS_STORAGE, else the config's, else `results_dir/<study>/study.db`."""

    config: str | Path
    trials: int | None = None
    storage: str | None = None
    study: str | None = None
    timeout: float | None = None
    results_dir: str | Path = "results"


class Session:
    """Everything one process needs to take part in a study, opened and validated. A start that fails
    leaves nothing behind (a SQLite file it created is removed again)."""

    def __init__(self, request: StudyRequest, worker_index: int = 0, screen: bool = True):
        self.fresh = None  # the SQLite file this start creates: removed again when the start fails
        self.storage = None
        try:
            self._open(request, worker_index, screen)
        except BaseException:
            self.close()
            _remove_fresh(self.fresh)
            raise

    def close(self, wait: float | None = None) -> None:
        """Close the storage; a SQLite study is left in one self-contained file in rollback-journal
        mode (`release_sqlite`; `wait`: seconds to retry while other processes have it open).
        Every exit of a writing command calls it (atexit too, for any path that does not)."""
        from .storage import RELEASE_WAIT, release_sqlite, stop_heartbeats

        storage, self.storage = self.storage, None
        if storage is None:
            return
        stop_heartbeats()
        _end_started_trial(storage)
        release_sqlite(storage, wait=RELEASE_WAIT if wait is None else wait)

    def _open(self, request: StudyRequest, worker_index: int, screen: bool) -> None:
        import optuna

        from .config import load_config
        from .storage import open_storage
        from .study import load_space, make_sampler, open_study, resolve_num_classes, sampler_seed
        from .trial import Datasets, Runner

        optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported by the command
        config = self.config = _config(request, load_config(request.config))
        self.space = load_space(config)
        self.results = Path(request.results_dir) / config.study
        self.url = _url(request, config)
        datasets = Datasets(config, self.space)
        if config.trains or config.zero_cost_names:
            datasets()  # a bad dataset fails before any file is written
        self.fresh = _fresh_sqlite(self.url)
        self.storage = open_storage(self.url, config.heartbeat)
        atexit.register(self.close)  # a no-op once closed
        self.runner = Runner(config, self.space, resolve_num_classes(config, datasets), self.results, worker_index,
                             datasets)
        existing = _n_trials(self.storage, config.study)
        sampler = make_sampler(config, self.space, sampler_seed(config.seed, worker_index, existing or 0))
        # a resumed study is checked against the config first; a new one is created only once screened
        self.feasible = self._screen() if screen and existing is None else None
        needs_data = config.trains or bool(config.zero_cost_names)
        self.study = open_study(config, self.storage, self.space, sampler, self.runner.num_classes,
                                class_names=(lambda: list(datasets().class_names)) if needs_data else None)
        if screen and existing is not None:
            self.feasible = self._screen()
        if needs_data:
            self.runner.dataset()  # fail on a bad dataset before the first trial

    def _screen(self) -> float:
        """The share of sampled architectures that meet the constraints (`screen_budget`)."""
        from .constraints import screen_budget

        return screen_budget(self.space, self.config.constraints, self.runner.num_classes, seed=self.config.seed or 0)


def _config(request: StudyRequest, config):
    """The config with the request's study name, trial budget and timeout (each checked)."""
    from search_space import validate as v

    from .config import storage_url, study_name

    v.integer(request.trials, "--trials", optional=True, error=UsageError)
    v.number(request.timeout, "--timeout", 0, lo_open=True, optional=True, error=UsageError)
    for flag, url in (("--storage", request.storage), (f"${STORAGE_ENV}", os.environ.get(STORAGE_ENV) or None)):
        storage_url(url, flag, optional=True)
    study = study_name(request.study, "--study") if request.study is not None else config.study
    return config.replace(study=study, trials=request.trials or config.trials,
                          timeout=request.timeout if request.timeout is not None else config.timeout)


def _url(request: StudyRequest, config) -> str:
    from .storage import default_url

    return (request.storage or os.environ.get(STORAGE_ENV) or config.storage
            or default_url(request.results_dir, config.study))


def _end_started_trial(storage) -> None:
    """Mark interrupted (failed, re-queued on resume) the trial this process created last if it is
    still RUNNING: a Ctrl-C or SIGTERM between Optuna creating it and the runner starting it."""
    from optuna.trial import TrialState

    from evaluation.results.record import mark_interrupted

    started = getattr(storage, "last_started", None)
    try:
        if started is not None and storage.get_trial(started).state == TrialState.RUNNING:
            mark_interrupted(storage, storage.get_trial(started), "interrupted before it started (Ctrl-C or SIGTERM)")
    except Exception:  # the storage itself may be unreachable now; heartbeats clean up later
        pass


def _fresh_sqlite(url: str) -> Path | None:
    """The SQLite file of `url` when it does not exist yet (this start would create it)."""
    from .storage import sqlite_path

    path = sqlite_path(url)
    return path if path is not None and not path.exists() else None


def _remove_fresh(path: Path | None) -> None:
    """Remove a database this failed start created (it holds no trial), its side files, and its folder
    when that is left empty, so that a failed start leaves nothing behind."""
    if path is None:
        return
    for p in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal", ".lock"))):
        p.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass  # not empty: it held something else


def _n_trials(storage, name: str) -> int | None:
    """Trials of the study so far; None when there is no such study yet."""
    try:
        return len(storage.get_all_trials(storage.get_study_id_from_name(name), deepcopy=False))
    except KeyError:
        return None


__all__ = ["STORAGE_ENV", "Session", "StudyRequest"]
