"""Pareto fronts, hypervolume and trial selection over a `load_results` DataFrame.

Objectives are `{column: "maximize" | "minimize"}`; any numeric column may be one (not only the
study's own objectives). The non-dominated filter and the hypervolume are Optuna's own: Optuna 5
exposes them only as internals (the public `Study.best_trials` and `plot_hypervolume_history` work
on a study's own objectives, not on DataFrame columns), reached through evaluation/compat.py;
tests/test_pareto.py checks them against brute force.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from evaluation.compat import hypervolume as compat_hypervolume
from evaluation.compat import pareto_front_mask
from evaluation.results.record import TRAIN_ACCURACY, VAL_ACCURACY, ZERO_COST_SCORES, usable_mask

DIRECTIONS = ("maximize", "minimize")
MAXIMIZED = (VAL_ACCURACY, TRAIN_ACCURACY, *ZERO_COST_SCORES)  # higher is better; every other column lower


def check_objectives(df, objectives: Mapping[str, str]) -> dict[str, str]:
    """Validate `{column: direction}` against the frame; ValueError names the bad entry."""
    if not isinstance(objectives, Mapping) or not objectives:
        raise ValueError(f"objectives: {objectives!r}, must be a non-empty mapping of column to "
                         "'maximize' or 'minimize'")
    for col, direction in objectives.items():
        if col not in df.columns:
            raise ValueError(f"objectives: unknown column {col!r}; columns: {', '.join(numeric_columns(df))}")
        if direction not in DIRECTIONS:
            raise ValueError(f"objectives.{col}: {direction!r}, must be 'maximize' or 'minimize'")
    return dict(objectives)


def numeric_columns(df) -> list[str]:
    import pandas as pd

    return [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]


def candidates(df, objectives: Mapping[str, str], feasible_only: bool = True):
    """Rows that may sit on a front: COMPLETE trials (feasible ones when asked) with finite objectives."""
    keep = usable_mask(df, feasible=feasible_only)
    for col in objectives:
        keep &= np.isfinite(df[col].to_numpy(dtype=float))
    return df[keep]


def _loss(df, objectives: Mapping[str, str]) -> np.ndarray:
    """Objective values as minimization losses, shape (rows, objectives)."""
    cols = [df[c].to_numpy(dtype=float) * (-1.0 if d == "maximize" else 1.0) for c, d in objectives.items()]
    return np.stack(cols, axis=1) if cols else np.zeros((len(df), 0))


def pareto_mask(df, objectives: Mapping[str, str], feasible_only: bool = True):
    """Boolean Series aligned with `df`: True for rows on the Pareto front."""
    import pandas as pd

    objectives = check_objectives(df, objectives)
    pool = candidates(df, objectives, feasible_only)
    mask = pd.Series(False, index=df.index)
    if len(pool):
        mask.loc[pool.index[pareto_front_mask(_loss(pool, objectives))]] = True
    return mask


def pareto_front(df, objectives: Mapping[str, str], feasible_only: bool = True):
    """Rows of the Pareto front of `objectives` among COMPLETE (and, by default, feasible) trials,
    sorted by the first objective, best first (ties: by the next objectives)."""
    objectives = check_objectives(df, objectives)
    front = df[pareto_mask(df, objectives, feasible_only)]
    return front.sort_values(list(objectives), ascending=[d == "minimize" for d in objectives.values()],
                             kind="stable")


def default_reference_point(df, objectives: Mapping[str, str], feasible_only: bool = True) -> dict[str, float]:
    """Default hypervolume reference: each objective's worst value among the candidates, moved a
    tenth of its range further (1% of its magnitude when all values are equal)."""
    objectives = check_objectives(df, objectives)
    pool = candidates(df, objectives, feasible_only)
    ref = {}
    for col, direction in objectives.items():
        values = pool[col].to_numpy(dtype=float)
        if not len(values):
            ref[col] = math.nan
            continue
        lo, hi = float(values.min()), float(values.max())
        pad = 0.1 * (hi - lo) or 0.01 * abs(hi) or 1.0
        ref[col] = hi + pad if direction == "minimize" else lo - pad
    return ref


def hypervolume(df, objectives: Mapping[str, str], reference_point: Mapping[str, float] | Sequence[float] | None = None,
                feasible_only: bool = True) -> float:
    """Hypervolume dominated by the candidates' front, bounded by `reference_point` (in the
    columns' own units; default `default_reference_point(df, objectives)`). Points that do not improve on
    the reference in every objective add nothing."""
    objectives = check_objectives(df, objectives)
    ref = _reference(df, objectives, reference_point, feasible_only)
    return _hv(_loss(candidates(df, objectives, feasible_only), objectives), ref)


def hypervolume_history(df, objectives: Mapping[str, str],
                        reference_point: Mapping[str, float] | Sequence[float] | None = None,
                        feasible_only: bool = True):
    """DataFrame (`number`, `hypervolume`): the hypervolume of the front of trials 0..number, for
    every trial in number order, with one reference point for the whole history."""
    import pandas as pd

    objectives = check_objectives(df, objectives)
    ref = _reference(df, objectives, reference_point, feasible_only)
    ordered = df.sort_values("number", kind="stable")
    pool = set(candidates(ordered, objectives, feasible_only).index)
    loss = _loss(ordered, objectives)
    front = np.empty((0, len(objectives)))  # the non-dominated points inside the reference so far
    out, current = [], 0.0
    for pos, (idx, number) in enumerate(zip(ordered.index, ordered["number"])):
        point = loss[pos]
        # a point outside the reference or weakly dominated by the front adds no volume: no recount,
        # so a long history costs one hypervolume of the (small) front per improvement
        if idx in pool and np.all(point <= ref) and not np.any(np.all(front <= point, axis=1)):
            front = np.vstack([front[~np.all(point <= front, axis=1)], point])
            current = _hv(front, ref)
        out.append((int(number), current))
    return pd.DataFrame(out, columns=["number", "hypervolume"])


def _reference(df, objectives, reference, feasible_only) -> np.ndarray:
    if reference is None:
        reference = default_reference_point(df, objectives, feasible_only)
    if isinstance(reference, Mapping):
        missing = [c for c in objectives if c not in reference]
        if missing:
            raise ValueError(f"reference_point: no value for {', '.join(missing)}")
        values = [reference[c] for c in objectives]
    else:
        values = list(reference)
        if len(values) != len(objectives):
            raise ValueError(f"reference_point: {len(values)} values for {len(objectives)} objectives")
    signs = [-1.0 if d == "maximize" else 1.0 for d in objectives.values()]
    return np.array([float(v) * s for v, s in zip(values, signs)])


def _hv(loss: np.ndarray, ref: np.ndarray) -> float:
    if not len(loss) or not np.all(np.isfinite(ref)):
        return 0.0
    inside = loss[np.all(loss <= ref, axis=1)]
    return compat_hypervolume(inside, ref) if len(inside) else 0.0


# ---------------------------------------------------------------------------------------------
# selection rules: "val_accuracy under flops<=1e9", "min params with val_accuracy>=0.5"

_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9,
          "tb": 1e12, "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*([-+0-9.eE_]+)\s*([A-Za-z]*)\s*$")
_COMPARE = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater, "==": np.equal,
            "!=": np.not_equal}
RULE_GRAMMAR = ("[max|min] COLUMN [under|with|where CONDITION[, CONDITION...]], CONDITION = COLUMN OP NUMBER[UNIT], "
                "OP one of <= >= < > == !=, UNIT one of K M G T KB MB GB KiB MiB GiB")


def parse_rule(rule: str, columns: Sequence[str], directions: Mapping[str, str] | None = None):
    """Parse a selection rule (see `RULE_GRAMMAR`) into (column, direction, [(column, op, value)]).

    The direction defaults to the study's for its objectives, else maximize for accuracies and
    zero-cost scores, minimize for everything else. ValueError names the bad part.
    """
    text = " ".join(str(rule).split())
    match = re.match(r"^(?:(max|maximize|min|minimize)\s+)?([A-Za-z_][A-Za-z0-9_]*)(?:\s+(?:under|with|where)\s+(.+))?$",
                     text)
    if not match:
        raise ValueError(f"rule {rule!r}: must look like {RULE_GRAMMAR}")
    word, column, rest = match.groups()
    _known(column, columns, rule)
    if word:
        direction = "maximize" if word.startswith("max") else "minimize"
    else:
        direction = (directions or {}).get(column) or ("maximize" if column in MAXIMIZED else "minimize")
    conditions = []
    for part in (rest.split(",") if rest else []):
        cond = _CONDITION.match(part)
        if not cond:
            raise ValueError(f"rule {rule!r}: condition {part.strip()!r} must look like COLUMN OP NUMBER[UNIT], "
                             "e.g. flops<=1e9 or activation_bytes<=20MB")
        name, op, number, unit = cond.groups()
        _known(name, columns, rule)
        if unit.lower() not in _SCALE:
            raise ValueError(f"rule {rule!r}: unit {unit!r}, must be one of K, M, G, T, KB, MB, GB, KiB, MiB, GiB")
        try:
            value = float(number.replace("_", "")) * _SCALE[unit.lower()]
        except ValueError:
            raise ValueError(f"rule {rule!r}: {number!r} is not a number") from None
        conditions.append((name, op, value))
    return column, direction, conditions


def _known(column: str, columns: Sequence[str], rule: str) -> None:
    if column not in columns:
        raise ValueError(f"rule {rule!r}: unknown column {column!r}; columns: {', '.join(columns)}")


TIE_COSTS = ("flops", "params")  # ties on the objective go to the lower of these, in order (also the search bar)


def best_trial(df, rule: str):
    """The COMPLETE trial (a row of `df`) that is best by `rule` among those meeting its conditions,
    e.g. `best_trial(df, "val_accuracy under flops<=1e9")`. Ties go to the lower cost (flops, then
    params), then to the lower trial number.
    ValueError when the rule is bad or no trial qualifies (the message says how many were close)."""
    from evaluation.results.frames import objectives_of

    numeric = numeric_columns(df)
    column, direction, conditions = parse_rule(rule, numeric, objectives_of(df))
    pool = df[df["state"] == "COMPLETE"] if "state" in df else df
    complete = len(pool)
    for name, op, value in conditions:
        values = pool[name].to_numpy(dtype=float)
        pool = pool[_COMPARE[op](values, value) & np.isfinite(values)]
    pool = pool[np.isfinite(pool[column].to_numpy(dtype=float))]
    if pool.empty:
        raise ValueError(f"rule {rule!r}: no COMPLETE trial qualifies ({complete} complete"
                         f"{', none meets the conditions' if conditions and complete else ''})")
    ties = [c for c in TIE_COSTS if c in pool and c != column]
    ordered = pool.sort_values([column, *ties, "number"], ascending=[direction == "minimize", *[True] * len(ties), True],
                               kind="stable", na_position="last")
    return ordered.iloc[0]


__all__ = ["DIRECTIONS", "RULE_GRAMMAR", "best_trial", "candidates", "check_objectives", "hypervolume",
           "hypervolume_history", "numeric_columns", "parse_rule", "pareto_front", "pareto_mask",
           "default_reference_point"]
