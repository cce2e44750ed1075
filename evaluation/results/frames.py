"""Studies as pandas DataFrames: `load_results(source)` reads an Optuna storage, one row per trial.

`source` is a results folder (`results/<study>/`, holding `study.db`), a SQLite file, or a
storage URL (`sqlite:///...`, `postgresql://...`). SQLite is opened read-only, so a study that a
`movinas search` is still writing can be read at any time and a committed run is never changed.
What the search stores is documented in docs/search.md ("Storage layout"); the columns are
documented in docs/results.md.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

from search_space.cost import COST_NAMES as COSTS  # the one list: the Cost fields
from search_space.space_schema import OPTIONS as SPEC_OPTIONS  # the ArchSpec options a space may search

from evaluation.results.record import TrialRecord
from evaluation.results.storage import OpenedStudy, ResultsError, gc_paused, load_study, read_records


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


def to_frame(opened: OpenedStudy, records: list[TrialRecord] | None = None):
    """The `load_results` DataFrame of a study already opened with `load_study` (of its `records`
    when already read with `read_records`)."""
    import pandas as pd

    fixed = _fixed(opened.info.get("space") or {})
    with gc_paused():
        rows = [_row(record, opened.info, opened.space, fixed) for record in
                (read_records(opened) if records is None else records)]
        df = pd.DataFrame(rows)
        del rows
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


def trial_spec(df, number: int):
    """The `ArchSpec` of trial `number` of a `load_results` frame (None when not known)."""
    match = df.loc[df["number"] == number, "spec"] if "spec" in df else []
    return match.iloc[0] if len(match) else None


def objectives_of(df) -> dict[str, str]:
    """The study's objectives as {column: "maximize" | "minimize"}, from `df.attrs`."""
    return {o["name"]: o["direction"] for o in df.attrs.get("objectives", [])}


# ---------------------------------------------------------------------------------------------
# one trial


def _row(record: TrialRecord, info: dict, space, fixed: dict) -> dict[str, Any]:
    from search_space import SpecError

    row: dict[str, Any] = {
        "number": record.number,
        "state": record.state,
        "outcome": record.outcome.value if record.outcome is not None else None,
        "reason": record.reason,
        "feasible": record.feasible,
        "duration": record.duration,
        "datetime_start": record.datetime_start,
        "datetime_complete": record.datetime_complete,
        "spec_id": record.spec_id,
        "worker": record.worker,
        "retry_of": record.retry_of,
    }
    row.update({k: record.cost.get(k, math.nan) for k in COSTS})
    row.update({k: v for k, v in record.metrics.items() if isinstance(v, (int, float))})
    if record.values is not None:  # objectives not among the stored metrics (e.g. from other tools)
        for o, v in zip(info["objectives"], record.values):
            if _missing(row.get(o["name"])):
                row[o["name"]] = v
    for col, text in info["violation_columns"].items():
        row[col] = record.violations.get(text, math.nan)
    spec = record.arch_spec()
    if spec is None and space is not None and record.state in ("COMPLETE", "PRUNED", "FAIL"):
        try:
            spec = space.decode(record.params, name=f"{info['study']}-{record.number}")
        except (SpecError, KeyError):
            spec = None
    row.update(_params(record.params, fixed, spec))
    if spec is not None:
        row.update(spec_columns(spec))
    row.update({f"time_{k}": v for k, v in record.timing.items()})
    row["curve"] = record.curve
    row["weights"] = record.weights
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


def _fixed(space: dict) -> dict[str, Any]:
    """The multipliers a space fixes to one value (not Optuna parameters), as columns."""
    fixed = {"width_mult": space.get("width_mult"), "stem_width_mult": (space.get("stem") or {}).get("width_mult")}
    for i, st in enumerate(space.get("stages") or [], 1):
        fixed[f"s{i}_width_mult"] = st.get("width_mult")
    return {k: v[0] for k, v in fixed.items() if isinstance(v, list) and len(v) == 1}


def _params(params: dict, fixed: dict, spec) -> dict[str, Any]:
    """Optuna parameters as stored, fixed multipliers filled in from the space, unused slots empty."""
    out = {**fixed, **params}
    depths = {i: len(s.blocks) for i, s in enumerate(spec.stages, 1)} if spec is not None else {}
    for stage, slots in _slots(tuple(out)):
        depth = depths.get(stage, out.get(f"s{stage}_depth"))
        if isinstance(depth, int):
            for block, key in slots:  # deepest first
                if block <= depth:
                    break
                out[key] = None
    return out


@functools.lru_cache(maxsize=64)  # the same parameter names in (nearly) every trial
def _slots(keys: tuple[str, ...]) -> tuple:
    """((stage, ((block, key), ... deepest first)), ...) of the per-block names among `keys`."""
    stages: dict[int, list] = {}
    for key in keys:
        slot = _slot(key)
        if slot is not None:
            stages.setdefault(slot[0], []).append((slot[1], key))
    return tuple((stage, tuple(sorted(slots, reverse=True))) for stage, slots in stages.items())


@functools.lru_cache(maxsize=4096)  # the same few hundred parameter names, in every trial
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
    tail = ["datetime_start", "datetime_complete", "worker", "retry_of", "curve", "weights", "spec_id", "spec"]
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
