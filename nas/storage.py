"""Where studies live: storage URLs, the Optuna RDB storage with heartbeats, and the lock that
keeps the trial budget exact across workers.

- No URL: `sqlite:///<results-dir>/<study>/study.db` (SQLite is fine for a few local processes).
- `postgresql://user:password@host:port/db` for workers on many machines.
- Heartbeats: a running trial records a heartbeat every `interval` seconds; one silent for
  `grace_period` seconds (its worker was killed, or its machine lost) is marked failed and
  re-queued with the same parameters by `RetryHeartbeatStaleTrialCallback`.

A SQLite study is written in WAL mode (no disk flush per Optuna commit), checkpointed into
`study.db` before each new trial, and switched back to a rollback journal by the last
process that writes it (`release_sqlite`), so that `study.db` alone is the whole study.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import hashlib
import os
import random
import sqlite3
import sys
import time
import traceback
import warnings
from pathlib import Path

from evaluation.compat import rdb_storage_class, stop_heartbeat_threads
from evaluation.results.storage import normalize_url, redact, sqlite_path  # the one definition of each

from .config import Heartbeat
from .errors import UsageError

__all__ = ["budget_lock", "default_url", "leave_wal", "normalize_url", "open_storage", "redact", "release_sqlite",
           "sqlite_path", "stop_heartbeats"]
RELEASE_WAIT = 3.0  # seconds a finishing writer retries the switch to a rollback journal while readers come and go


def default_url(results_dir: str | Path, study: str) -> str:
    """SQLite file of a study under the results folder (absolute, so workers agree on it)."""
    path = (Path(results_dir) / study / "study.db").resolve()
    return f"sqlite:///{path}"


def open_storage(url: str, heartbeat: Heartbeat | None = None):
    """An `optuna.storages.RDBStorage` with heartbeats and stale-trial retry.

    Raises UsageError (one line naming the URL) when the database cannot be reached or created.
    """
    import optuna
    import sqlalchemy.exc

    heartbeat = heartbeat or Heartbeat()
    engine_kwargs: dict = {"pool_pre_ping": True}
    path = sqlite_path(url)
    if path is not None:
        # several local workers share the file: wait for the write lock instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith(("postgresql", "postgres:")):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(3):
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = _storage_class()(
                    normalize_url(url),
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat.interval,
                    grace_period=heartbeat.grace_period,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=heartbeat.max_retry),
                )
            if path is not None:
                _fast_sqlite(storage.engine)
            return storage
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError, OSError) as exc:
            reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
            # workers starting together race to create Optuna's tables: the losers try again
            if attempt < 2 and isinstance(exc, sqlalchemy.exc.DatabaseError) and (
                    "already exists" in reason or "duplicate key" in reason):
                time.sleep(0.5 + attempt)
                continue
            raise UsageError(f"storage {redact(url)}: cannot open ({reason[:200]})") from None


def _storage_class():
    """Optuna's RDBStorage that also fails trials whose process died before their first heartbeat
    (`evaluation.compat.rdb_storage_class`), and checkpoints a SQLite WAL before each new trial
    (`checkpoint`)."""
    class Storage(rdb_storage_class()):
        def create_new_trial(self, study_id: int, template_trial=None) -> int:
            # before a trial starts rather than as one finishes: Optuna's tell turns a Ctrl-C or
            # SIGTERM arriving in its storage calls into an UnboundLocalError (Optuna 5.1)
            checkpoint(self)
            self.last_started = super().create_new_trial(study_id, template_trial)
            return self.last_started

    return Storage


def checkpoint(storage) -> None:
    """Copy a SQLite WAL into the database file (PASSIVE: never waits for readers or writers). Run
    before each new trial, it leaves `study.db` alone holding every trial finished so far even if the
    process is then killed (SIGKILL) before it can leave WAL mode."""
    if storage.engine.name != "sqlite":
        return
    try:
        with storage.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
    except Exception:  # a busy file: the next finished trial, or the exit, checkpoints it
        pass


def _fast_sqlite(engine) -> None:
    """WAL journal, no fsync per commit: Optuna commits every suggest and attribute, which with
    SQLite's defaults costs a disk flush each (about 50 per trial; 25 ms a commit in a rollback
    journal here, 0.05 ms in WAL). A WAL database survives a killed process intact; only a power cut
    may lose the last commits. Readers no longer block the writer, which local workers need. The
    WAL is copied into the file before each new trial (`checkpoint`) and left at the end
    (`release_sqlite`)."""
    from sqlalchemy import event

    def pragmas(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    engine.dispose()  # pooled connections predate the listener


def stop_heartbeats() -> None:
    """Stop the Optuna heartbeat threads of this process (`evaluation.compat.stop_heartbeat_threads`):
    one that a Ctrl-C or SIGTERM left running would keep its trial RUNNING and the process from exiting."""
    stop_heartbeat_threads()


def release_sqlite(*storages, wait: float = RELEASE_WAIT) -> bool:
    """At the end of a writing process: close the storages' connections (and any this process no
    longer holds, such as a finished reader's) and switch each SQLite file back from WAL to a
    rollback journal (`leave_wal`); True when every file is in one. Call it once every storage of a
    file is done: the switch needs the file to itself, this process's other connections included."""
    paths = {p for s in storages if (p := sqlite_path(str(s.url))) is not None}
    for s in storages:
        s.engine.dispose()
    if paths:
        in_flight = sys.exc_info()[1]  # called while an error or Ctrl-C unwinds: its finished frames
        if in_flight is not None:  # may hold a connection it cut short; their locals go
            traceback.clear_frames(in_flight.__traceback__)
        gc.collect()  # unreachable engines and connections close
    return all([leave_wal(path, wait) for path in paths])


def leave_wal(path: Path, wait: float = RELEASE_WAIT) -> bool:
    """Checkpoint the WAL of `path` and switch it to a rollback journal; True when the file is in
    one. SQLite refuses while another connection has the file open (a worker still writing, a
    reader): retried for `wait` seconds, since readers hold it only while they read. When another
    writer has it, that writer switches at its own end; if a reader outlasts `wait`, the file stays
    in WAL mode, yet `study.db` holds every finished trial (checkpointed here and before each trial).
    A reader opening a WAL file, even read-only, creates its `-wal` / `-shm` files beside it; a
    rollback-journal one it only reads. The next writer turns WAL on again (`_fast_sqlite`)."""
    deadline = time.monotonic() + wait
    while path.is_file():
        mode = None
        with contextlib.suppress(sqlite3.Error):
            con = sqlite3.connect(str(path), timeout=1)
            try:
                mode = con.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
                if mode != "delete":
                    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                con.close()
        if mode == "delete":
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01 + 0.04 * random.random())  # two writers ending together do not collide forever
    return False


@contextlib.contextmanager
def budget_lock(storage, study_name: str):
    """Hold an exclusive lock, shared by every worker of the study, and yield its `release`.

    The driver takes it before checking the trial budget and releases it once its new trial is
    RUNNING with its architecture stored, so no two workers can both start the last trial or
    train one architecture twice. SQLite: `flock` on a file beside
    the database; PostgreSQL: a session advisory lock. Other backends: no lock (workers may then
    start up to one extra trial each when they reach the budget at the same instant, and two may
    take one architecture when they sample at the same instant).
    """
    release = _lock(storage, study_name)
    try:
        yield release
    finally:
        release()


def _lock(storage, study_name: str):
    url = str(storage.url)
    path = sqlite_path(url)
    if path is not None:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return _once(lambda: (fcntl.flock(fd, fcntl.LOCK_UN), os.close(fd)))
    if storage.engine.name == "postgresql":
        from sqlalchemy import text

        key = int.from_bytes(hashlib.sha1(f"movinas:{study_name}".encode()).digest()[:8], "big", signed=True)
        conn = storage.engine.connect()
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()

        def unlock():
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
            finally:
                conn.close()

        return _once(unlock)
    return lambda: None


def _once(fn):
    done = []

    def call():
        if not done:
            done.append(True)
            fn()

    return call
