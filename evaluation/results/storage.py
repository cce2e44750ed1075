"""Study storage for reading, and the storage URL helpers the search shares.

`load_study(source)` opens a study for reading: `source` is a results folder (`results/<study>/`,
holding `study.db`), a SQLite file, or a storage URL (`sqlite:///...`, `postgresql://...`).
SQLite is opened read-only, so a study that a `movinas search` is still writing can be read at any
time and a committed run is never changed. The search (nas) writes through its own storage but
takes its URL helpers (`normalize_url`, `redact`, `sqlite_path`) from here.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

_OPS = {"<=": "le", ">=": "ge"}
_READ_ONLY_PREFIX = "sqlite:///file:"


class ResultsError(ValueError):
    """The source is not a readable study (the message says what was found and what is allowed)."""


# ---------------------------------------------------------------------------------------------
# URLs


def normalize_url(url: str) -> str:
    """`postgresql://` through the installed driver: SQLAlchemy 2.1 defaults to psycopg 3, movinas
    depends on psycopg2 (`postgres://` is accepted as an alias, as Heroku-style URLs use it)."""
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return f"postgresql+psycopg2://{rest}"
        return f"postgresql://{rest}"
    return url


def redact(url: str) -> str:
    """The URL without its password, for messages (a read-only SQLite URL: its plain path)."""
    if url.startswith(_READ_ONLY_PREFIX):
        return unquote(url[len(_READ_ONLY_PREFIX):].split("?", 1)[0])
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a `sqlite:///` URL (None for other backends and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    rest = url[len("sqlite:///"):].split("?", 1)[0]
    return None if rest in ("", ":memory:") else Path(rest)


# ---------------------------------------------------------------------------------------------
# opening for reading


class OpenedStudy:
    """An Optuna study opened for reading, with what `load_results` puts in `df.attrs`."""

    def __init__(self, study, url: str, folder: Path | None):
        from search_space import SearchSpace

        attrs = study.user_attrs
        self.study = study
        self.url = url
        self.folder = folder
        constraints = list(attrs.get("constraints") or [])
        self.info: dict[str, Any] = {
            "study": study.study_name,
            "storage": redact(url),
            "folder": str(folder) if folder else None,
            "objectives": list(attrs.get("objectives") or _objectives_from_study(study)),
            "constraints": constraints,
            "violation_columns": violation_columns(constraints),
            "num_classes": attrs.get("num_classes"),
            "space": attrs.get("space"),
            "config": attrs.get("config") or {},
        }
        self.space = None
        if attrs.get("space"):
            try:
                self.space = SearchSpace.from_dict(attrs["space"])
            except ValueError:
                self.space = None

    @property
    def objective_names(self) -> list[str]:
        return [o["name"] for o in self.info["objectives"]]


def load_study(path_or_storage_url: str | Path, study: str | None = None) -> OpenedStudy:
    """Open the study for reading (SQLite read-only); `ResultsError` when it is not a study."""
    import optuna

    url, folder = resolve(path_or_storage_url)
    storage = open_for_reading(url)
    names = optuna.get_all_study_names(storage)
    where = redact(url)
    if not names:
        raise ResultsError(f"{where}: holds no study")
    if study is None:
        if len(names) > 1:
            raise ResultsError(f"{where}: holds {len(names)} studies ({', '.join(sorted(names))}); "
                               "name one (study=... or --study)")
        study = names[0]
    elif study not in names:
        raise ResultsError(f"{where}: no study {study!r}; studies: {', '.join(sorted(names))}")
    loaded = optuna.load_study(study_name=study, storage=storage, sampler=optuna.samplers.RandomSampler(seed=0))
    return OpenedStudy(loaded, url, folder)


def resolve(source: str | Path) -> tuple[str, Path | None]:
    """(storage URL, results folder or None). SQLite files are checked and opened read-only."""
    text = str(source)
    if "://" in text:
        if not text.startswith("sqlite:"):
            return text, None
        path = sqlite_path(text)
        if path is None or text.startswith(_READ_ONLY_PREFIX):
            raise ResultsError(f"{text}: not a SQLite file URL (sqlite:///path/study.db)")
    else:
        path = Path(text)
        if path.is_dir():
            db = path / "study.db"
            if not db.is_file():
                found = sorted(p.parent.name for p in path.glob("*/study.db"))
                hint = f"; studies inside: {', '.join(found)}" if found else ""
                raise ResultsError(f"{path}: not a study folder (no study.db){hint}")
            path = db
        elif not path.exists():
            raise ResultsError(f"{path}: no such results folder or study file")
    flags = _read_only(path)
    _check_sqlite_study(path, flags)
    return f"{_READ_ONLY_PREFIX}{quote(str(path.resolve()))}?{flags}&uri=true", path.resolve().parent


def read_only_file(url: str) -> tuple[Path, str] | None:
    """(database file, SQLite URI flags) of a URL made by `resolve`; None for other storages."""
    if not url.startswith(_READ_ONLY_PREFIX):
        return None
    path, _, query = url[len(_READ_ONLY_PREFIX):].partition("?")
    return Path(unquote(path)), query.replace("&uri=true", "")


def _read_only(path: Path) -> str:
    """SQLite URI flags that never write the study: `mode=ro`, which takes SQLite's locks, so a
    writer may work beside the reader. `immutable` (no locks: a page a writer changes meanwhile reads
    as "database disk image is malformed") only where nothing else could open the file: a WAL-mode
    database (a finished study is left in a rollback journal) in a folder we may not write, where
    SQLite could not create the `-wal` / `-shm` files it needs, and without them (a writer keeps
    both while it has the file open)."""
    folder = path.resolve().parent
    if _journal_is_wal(path) and not os.access(folder, os.W_OK) and not any(
            (folder / f"{path.name}{side}").exists() for side in ("-wal", "-shm")):
        return "mode=ro&immutable=1"
    return "mode=ro"


def _journal_is_wal(path: Path) -> bool:
    """Whether the database header says WAL mode (file format versions 2 at bytes 18 and 19)."""
    try:
        with open(path, "rb") as f:
            header = f.read(20)
    except OSError:
        return False
    return header[18:20] == b"\x02\x02"


def _check_sqlite_study(path: Path, flags: str) -> None:
    if not path.is_file():
        raise ResultsError(f"{path}: no such study file")
    with open(path, "rb") as f:
        header = f.read(16)
    if not header:  # SQLite creates the file before the first table
        raise ResultsError(f"{path}: an empty database, holds no study")
    if header != b"SQLite format 3\x00":
        raise ResultsError(f"{path}: not a SQLite database (an Optuna study file such as results/<study>/study.db)")
    from evaluation.compat import has_optuna_tables

    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?{flags}", uri=True, timeout=30)
        try:
            optuna_study = has_optuna_tables(con)
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    if not optuna_study:
        raise ResultsError(f"{path}: a SQLite database without Optuna's tables, not a study")


def open_for_reading(url: str):
    """An `optuna.storages.RDBStorage` that creates nothing (`ResultsError` naming the URL)."""
    import optuna
    import sqlalchemy.exc

    engine_kwargs: dict = {}
    if url.startswith("sqlite"):
        from sqlalchemy.pool import NullPool

        # no pooled connection kept between reads: a study held open (a notebook, a polling report)
        # does not keep a finishing writer from leaving WAL mode (nas.storage.release_sqlite)
        engine_kwargs = {"connect_args": {"timeout": 30}, "poolclass": NullPool}
    for attempt in range(50):
        try:
            return optuna.storages.RDBStorage(normalize_url(url), engine_kwargs=engine_kwargs,
                                              skip_table_creation=True)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.OptunaError, ImportError, ValueError,
                RuntimeError) as exc:
            cause = exc.__cause__ if isinstance(exc, optuna.exceptions.OptunaError) and exc.__cause__ else exc
            reason = " ".join(str(getattr(cause, "orig", None) or cause).split())
            # Optuna records its schema version just after creating the tables; a read-only reader
            # arriving in between would have to write it: wait for the creating process instead
            if "readonly database" in reason and attempt < 49:
                time.sleep(0.1)
                continue
            if "readonly database" in reason:
                reason = "no Optuna version record: a study being created, or not an Optuna database"
            raise ResultsError(f"storage {redact(url)}: cannot open ({reason[:200]})") from None


def read_records(opened: OpenedStudy) -> list:
    """Every trial's `TrialRecord`, in number order. A SQLite study is read in a few set-based
    queries over one snapshot (Optuna's `get_trials` loads each trial's rows separately, several
    times slower on thousands of trials); other storages through Optuna."""
    from evaluation.results.record import read_trial

    found = read_only_file(opened.url)
    with gc_paused():
        if found is None:
            return [read_trial(t) for t in opened.study.get_trials(deepcopy=False)]
        path, flags = found
        try:
            con = sqlite3.connect(f"file:{quote(str(path))}?{flags}", uri=True, timeout=30)
            try:
                con.execute("BEGIN")  # one consistent snapshot while a search may be writing
                return _records(con, opened.study.study_name)
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise ResultsError(f"{path}: cannot read ({exc})") from None


@contextlib.contextmanager
def gc_paused():
    """No cyclic garbage collection while a large study is read: the reader makes hundreds of
    thousands of small containers, all kept, which the collector would otherwise walk again and
    again (a third of the time of a 5,000-trial read). Nothing read holds a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _records(con, study_name: str) -> list:
    from evaluation.compat import sqlite_trials
    from evaluation.results.record import from_attrs

    return [from_attrs(t.number, t.state, t.user_attrs, t.system_attrs, params=t.params, values=t.values,
                       datetime_start=t.datetime_start, datetime_complete=t.datetime_complete)
            for t in sqlite_trials(con, study_name)]


def _objectives_from_study(study) -> list[dict]:
    names = study.metric_names or [f"value_{i}" for i in range(len(study.directions))]
    return [{"name": n, "direction": d.name.lower()} for n, d in zip(names, study.directions)]


def violation_columns(constraints: list[dict]) -> dict[str, str]:
    """{column: constraint text}, e.g. violation_flops_le: "flops <= 1.5G"."""
    out: dict[str, str] = {}
    for c in constraints:
        col = f"violation_{c['name']}_{_OPS.get(c['op'], 'cmp')}"
        while col in out:
            col += "_"
        out[col] = c["text"]
    return out


__all__ = ["OpenedStudy", "ResultsError", "gc_paused", "load_study", "normalize_url", "open_for_reading",
           "read_only_file", "read_records", "redact", "resolve", "sqlite_path", "violation_columns"]
