"""Studies as pandas DataFrames: `load_results(source)` reads an Optuna storage, one row per trial.

`source` is a results folder (`results/<study>/`, holding `study.db`), a SQLite file, or a
storage URL (`sqlite:///...`, `postgresql://...`). SQLite is opened read-only, so a study that a
`movinas search` is still writing can be read at any time and a committed run is never changed.
What the search stores is documented in docs/search.md ("Storage layout"); the columns are
documented in docs/results.md.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

COSTS = ("params", "macs", "flops", "activation_bytes", "state_bytes", "state_floats", "state_tensors",
         "elementwise")
SPEC_OPTIONS = ("conv_type", "se_type", "causal", "activation", "gating_activation", "classifier_activation",
                "se_ratio", "positional_encoding", "dropout", "stochastic_depth", "bn_momentum", "bn_epsilon")
_OPS = {"<=": "le", ">=": "ge"}


class ResultsError(ValueError):
    """The source is not a readable study (the message says what was found and what is allowed)."""


def load_results(path_or_storage_url: str | Path, study: str | None = None):
    """One row per trial of the study at `path_or_storage_url` (see the module docstring).

    Columns (docs/results.md): `number`, `state`, `outcome`, `reason`, `feasible`, `duration` (s);
    the costs (`params`, `macs`, `flops`, `activation_bytes`, `state_bytes`, ...); the metrics
    (`val_accuracy`, `val_loss`, `latency_ms`, zero-cost scores, ...); one `violation_<name>_<le|ge>`
    column per constraint (> 0: broken); the architecture (`frames`, `resolution`, `width_mult`,
    `layers`, `s<i>_depth`, `s<i>_filters`, the options such as `conv_type`, and the Optuna
    parameters as stored, e.g. `s2_b1_kernel`, with slots beyond a stage's depth left empty); and
    `spec`, the `ArchSpec` itself. `df.attrs` holds the study's name, storage, folder, objectives,
    constraints, num_classes, space and config.

    Raises `ResultsError` (a ValueError) when the source is not a study, or holds several studies
    and `study` is None (the message lists them).
    """
    return to_frame(load_study(path_or_storage_url, study))


def to_frame(opened: OpenedStudy):
    """The `load_results` DataFrame of a study already opened with `load_study`."""
    import pandas as pd

    rows = [_row(t, opened.info, opened.space) for t in opened.study.get_trials(deepcopy=False)]
    df = pd.DataFrame(rows)
    # the columns a reader relies on exist even before any trial has them (a study just started)
    always = {"number": "int64", "state": "str", "outcome": "object", "reason": "object", "feasible": "boolean",
              "duration": "float64", **{o["name"]: "float64" for o in opened.info["objectives"]},
              **dict.fromkeys(COSTS, "float64"), **dict.fromkeys(opened.info["violation_columns"], "float64"),
              "spec": "object"}
    for col, dtype in always.items():
        if col not in df:
            df[col] = pd.Series(dtype=dtype, index=df.index)
    df = df[_order(list(df.columns), opened.info)]
    df["feasible"] = df["feasible"].astype("boolean")
    df = df.sort_values("number", kind="stable").reset_index(drop=True)
    df.attrs.update(opened.info)
    return df


class OpenedStudy:
    """An Optuna study opened for reading, with what `load_results` puts in `df.attrs`."""

    def __init__(self, study, url: str, folder: Path | None):
        from search_space import SearchSpace

        attrs = study.user_attrs
        self.study = study
        self.folder = folder
        constraints = list(attrs.get("constraints") or [])
        self.info: dict[str, Any] = {
            "study": study.study_name,
            "storage": _redact(url),
            "folder": str(folder) if folder else None,
            "objectives": list(attrs.get("objectives") or _objectives_from_study(study)),
            "constraints": constraints,
            "violation_columns": _violation_columns(constraints),
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


def load_study(path_or_storage_url: str | Path, study: str | None = None) -> OpenedStudy:
    """Open the study for reading (SQLite read-only); `ResultsError` when it is not a study."""
    import optuna

    url, folder = _resolve(path_or_storage_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _open_storage(url)
    names = optuna.get_all_study_names(storage)
    where = _redact(url)
    if not names:
        raise ResultsError(f"{where}: holds no study")
    if study is None:
        if len(names) > 1:
            raise ResultsError(f"{where}: holds {len(names)} studies ({', '.join(sorted(names))}); "
                               "name one (study=... or --study)")
        study = names[0]
    elif study not in names:
        raise ResultsError(f"{where}: no study {study!r}; studies: {', '.join(sorted(names))}")
    loaded = optuna.load_study(study_name=study, storage=storage,
                               sampler=optuna.samplers.RandomSampler(seed=0))
    return OpenedStudy(loaded, url, folder)


def trial_spec(df, number: int):
    """The `ArchSpec` of trial `number` of a `load_results` frame (None when not known)."""
    match = df.loc[df["number"] == number, "spec"] if "spec" in df else []
    return match.iloc[0] if len(match) else None


def objectives_of(df) -> dict[str, str]:
    """The study's objectives as {column: "maximize" | "minimize"}, from `df.attrs`."""
    return {o["name"]: o["direction"] for o in df.attrs.get("objectives", [])}


# ---------------------------------------------------------------------------------------------
# opening


def _resolve(source: str | Path) -> tuple[str, Path | None]:
    """(storage URL, results folder or None). SQLite files are checked and opened read-only."""
    text = str(source)
    if "://" in text:
        if not text.startswith("sqlite:"):
            return text, None
        path = _sqlite_file(text)
        if path is None:
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
    return f"sqlite:///file:{quote(str(path.resolve()))}?{flags}&uri=true", path.resolve().parent


def _read_only(path: Path) -> str:
    """SQLite URI flags that never write the study. In a folder we may not write (a read-only
    copy, which nothing can be writing either) a WAL database could not create its shared-memory
    file, so it is opened as immutable."""
    return "mode=ro" if os.access(path.resolve().parent, os.W_OK) else "mode=ro&immutable=1"


def _sqlite_file(url: str) -> Path | None:
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest in ("/", "/:memory:"):
        return None
    return Path(rest[1:].split("?", 1)[0])


def _check_sqlite_study(path: Path, flags: str) -> None:
    if not path.is_file():
        raise ResultsError(f"{path}: no such study file")
    with open(path, "rb") as f:
        header = f.read(16)
    if not header:  # SQLite creates the file before the first table
        raise ResultsError(f"{path}: an empty database, holds no study")
    if header != b"SQLite format 3\x00":
        raise ResultsError(f"{path}: not a SQLite database (an Optuna study file such as results/<study>/study.db)")
    try:
        con = sqlite3.connect(f"file:{quote(str(path.resolve()))}?{flags}", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise ResultsError(f"{path}: cannot read ({exc})") from None
    if not {"studies", "trials"} <= tables:
        raise ResultsError(f"{path}: a SQLite database without Optuna's tables, not a study")


def _open_storage(url: str):
    import optuna
    import sqlalchemy.exc

    engine_kwargs: dict = {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}
    for attempt in range(50):
        try:
            return optuna.storages.RDBStorage(_normalize(url), engine_kwargs=engine_kwargs, skip_table_creation=True)
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
            raise ResultsError(f"storage {_redact(url)}: cannot open ({reason[:200]})") from None


def _normalize(url: str) -> str:
    from nas.storage import normalize_url  # the one place that picks the PostgreSQL driver

    return normalize_url(url)


def _redact(url: str) -> str:
    if url.startswith("sqlite:///file:"):  # our read-only form: show the plain path
        from urllib.parse import unquote

        return unquote(url[len("sqlite:///file:"):].split("?", 1)[0])
    from nas.storage import redact

    return redact(url)


def _objectives_from_study(study) -> list[dict]:
    names = study.metric_names or [f"value_{i}" for i in range(len(study.directions))]
    return [{"name": n, "direction": d.name.lower()} for n, d in zip(names, study.directions)]


def _violation_columns(constraints: list[dict]) -> dict[str, str]:
    """{column: constraint text}, e.g. violation_flops_le: "flops <= 1.5G"."""
    out: dict[str, str] = {}
    for c in constraints:
        col = f"violation_{c['name']}_{_OPS.get(c['op'], 'cmp')}"
        while col in out:
            col += "_"
        out[col] = c["text"]
    return out


# ---------------------------------------------------------------------------------------------
# one trial


def _row(trial, info: dict, space) -> dict[str, Any]:
    from search_space import ArchSpec, SpecError

    attrs = trial.user_attrs
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "outcome": attrs.get("outcome"),
        "reason": attrs.get("reason"),
        "feasible": attrs.get("feasible"),
        "duration": trial.duration.total_seconds() if trial.duration is not None else math.nan,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
        "spec_id": attrs.get("spec_id"),
        "worker": attrs.get("worker"),
        "retry_of": trial.system_attrs.get("failed_trial"),
    }
    row.update({k: attrs.get("cost", {}).get(k, math.nan) for k in COSTS})
    metrics = attrs.get("metrics") or {}
    row.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
    if trial.values is not None:  # objectives not among the stored metrics (e.g. from other tools)
        for o, v in zip(info["objectives"], trial.values):
            if _missing(row.get(o["name"])):
                row[o["name"]] = v
    viol = attrs.get("violations") or {text[len("constraints:"):]: v for text, v in trial.system_attrs.items()
                                       if text.startswith("constraints:")}
    for col, text in info["violation_columns"].items():
        row[col] = viol.get(text, math.nan)
    if row["feasible"] is None and viol:
        row["feasible"] = all(v <= 0 for v in viol.values())
    spec = None
    if attrs.get("spec"):
        try:
            spec = ArchSpec.from_dict(attrs["spec"])
        except (SpecError, TypeError):
            spec = None
    if spec is None and space is not None and trial.state.is_finished():
        try:
            spec = space.decode(trial.params, name=f"{info['study']}-{trial.number}")
        except (SpecError, KeyError):
            spec = None
    row.update(_params(trial.params, info.get("space") or {}, spec))
    if spec is not None:
        row.update(spec_columns(spec))
    row.update({f"time_{k}": v for k, v in (attrs.get("timing") or {}).items()})
    row["curve"] = attrs.get("curve") or []
    row["spec"] = spec
    return row


def spec_columns(spec) -> dict[str, Any]:
    """The architecture as flat readable columns (stages counted from 1, like the parameters)."""
    cols: dict[str, Any] = {"frames": spec.frames, "resolution": spec.resolution, "layers": spec.num_layers,
                            "stages": len(spec.stages), "stem_filters": spec.stem.filters}
    for i, stage in enumerate(spec.stages, 1):
        cols[f"s{i}_depth"] = len(stage.blocks)
        cols[f"s{i}_filters"] = stage.filters
    cols["head_filters"] = spec.head.filters
    cols["head_hidden"] = spec.head.hidden
    cols.update({k: getattr(spec, k) for k in SPEC_OPTIONS})
    return cols


def _params(params: dict, space: dict, spec) -> dict[str, Any]:
    """Optuna parameters as stored, fixed multipliers filled in from the space, unused slots empty."""
    out: dict[str, Any] = {}
    fixed = {"width_mult": space.get("width_mult"), "stem_width_mult": (space.get("stem") or {}).get("width_mult")}
    for i, st in enumerate(space.get("stages") or [], 1):
        fixed[f"s{i}_width_mult"] = st.get("width_mult")
    for key, choices in fixed.items():
        if isinstance(choices, list) and len(choices) == 1:
            out[key] = choices[0]
    out.update(params)
    depths = {i: len(s.blocks) for i, s in enumerate(spec.stages, 1)} if spec is not None else {}
    for key in list(out):
        slot = _slot(key)
        if slot is not None:
            depth = depths.get(slot[0], out.get(f"s{slot[0]}_depth"))
            if isinstance(depth, int) and slot[1] > depth:
                out[key] = None
    return out


def _slot(key: str) -> tuple[int, int] | None:
    """(stage, block) of a per-block parameter name such as s2_b3_kernel."""
    parts = key.split("_")
    if len(parts) >= 3 and parts[0][:1] == "s" and parts[1][:1] == "b":
        try:
            return int(parts[0][1:]), int(parts[1][1:])
        except ValueError:
            return None
    return None


def _stage_key(column: str) -> tuple | None:
    """Sort key grouping per-stage columns: s2_depth, s2_filters, s2_width_mult, s2_b1_kernel, ..."""
    head, _, rest = column.partition("_")
    if not (head[:1] == "s" and head[1:].isdigit()):
        return None
    slot = _slot(column)
    kind = column.rsplit("_", 1)[-1]
    rank = {"depth": 0, "filters": 1, "mult": 2, "kernel": 3, "expand": 4}.get(kind, 5)
    return int(head[1:]), slot[1] if slot else 0, rank, column


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _order(columns: list[str], info: dict) -> list[str]:
    """Identity and outcome first, then objectives, costs, metrics, violations, architecture."""
    head = ["number", "state", "outcome", "reason", "feasible", "duration"]
    objectives = [o["name"] for o in info["objectives"]]
    costs = list(COSTS)
    violations = list(info["violation_columns"])
    tail = ["datetime_start", "datetime_complete", "worker", "retry_of", "curve", "spec_id", "spec"]
    arch_first = ["frames", "resolution", "width_mult", "layers", "stages", "stem_width_mult", "stem_filters"]
    placed = set(head + objectives + costs + violations + tail + arch_first)
    rest = [c for c in columns if c not in placed]
    arch = sorted((c for c in rest if _stage_key(c) is not None), key=_stage_key)
    arch += [c for c in rest if c.startswith("head_")] + [c for c in SPEC_OPTIONS if c in rest]
    timing = [c for c in rest if c.startswith("time_")]
    metrics = [c for c in rest if c not in arch and c not in timing]
    ordered = head + objectives + costs + metrics + violations + arch_first + arch + timing + tail
    seen: set[str] = set()
    return [c for c in ordered if c in columns and not (c in seen or seen.add(c))]


__all__ = ["COSTS", "OpenedStudy", "ResultsError", "load_results", "load_study", "objectives_of",
           "spec_columns", "to_frame", "trial_spec"]
