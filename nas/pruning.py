"""Early stopping for multi-objective studies, where Optuna's `Trial.report` / `should_prune` refuse
to work. Pure functions over plain numbers so the rule can be tested on constructed curves.

`dominated` (default): after epoch e, stop a trial when some COMPLETE trial had, at the same
epoch e, a curve value better by more than `margin` and is at least as good on every objective
known before training (analytic costs, measured latency, zero-cost scores). Such a trial cannot end
on the Pareto front unless its curve overtakes the other's later, which on short proxy budgets it
rarely does.

`halving`: successive-halving style, cost-blind: after epoch e, stop a trial whose curve value is
worse (by more than `margin`) than the `keep` quantile of the COMPLETE trials' values at epoch e;
needs at least `min_trials` of them.

Neither rule fires before `min_epoch` nor at the last epoch of the budget (a finished run is kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import EarlyStopping


@dataclass(frozen=True)
class Finished:
    """A completed trial as the rule sees it: its curve by epoch and its pre-training objectives."""

    number: int
    curve: dict  # epoch -> value of the curve objective
    known: dict  # objective name -> value, for objectives known before training


def should_stop(rule: EarlyStopping, epoch: int, value: float, known: dict, directions: dict,
                maximize: bool, finished: list[Finished], last_epoch: int | None = None) -> str | None:
    """Why the running trial should stop after `epoch` (a one-line reason), or None to go on.

    `value`: its curve value at `epoch`; `known`: its objectives known before training;
    `directions`: "maximize" / "minimize" for each name in `known`; `maximize`: the curve's
    direction.
    """
    if rule.rule == "off" or epoch < rule.min_epoch or (last_epoch is not None and epoch >= last_epoch):
        return None
    at_epoch = [(f, f.curve[epoch]) for f in finished if epoch in f.curve]
    if rule.rule == "dominated":
        for f, other in at_epoch:
            if _dominates(other, f.known, value, known, directions, maximize, rule.margin):
                return f"dominated at epoch {epoch} by trial {f.number} ({other:.4g} vs {value:.4g})"
        return None
    if len(at_epoch) < rule.min_trials:
        return None
    values = np.array([v for _, v in at_epoch], dtype=float)
    if maximize:
        threshold = float(np.quantile(values, 1.0 - rule.keep))
        worse = value < threshold - rule.margin
    else:
        threshold = float(np.quantile(values, rule.keep))
        worse = value > threshold + rule.margin
    if worse:
        return (f"outside the best {rule.keep:.0%} of {len(values)} completed trials at epoch {epoch} "
                f"({value:.4g} vs {threshold:.4g})")
    return None


def _dominates(other: float, other_known: dict, value: float, known: dict, directions: dict,
               maximize: bool, margin: float) -> bool:
    """`other` leads on the curve by more than `margin` (or ties with margin 0 and wins on a known
    objective) and is no worse on any known objective."""
    lead = other - value if maximize else value - other
    no_worse, better = True, False
    for name, direction in directions.items():
        mine, theirs = known.get(name), other_known.get(name)
        if mine is None or theirs is None:
            return False
        gain = mine - theirs if direction == "minimize" else theirs - mine
        no_worse = no_worse and gain >= 0
        better = better or gain > 0
    if not no_worse:
        return False
    return lead > margin or (margin == 0 and lead == 0 and better)


def finished_from_trials(trials, curve_key: str, known_names: list[str], objective_names: list[str]) -> list[Finished]:
    """`Finished` records from COMPLETE Optuna trials, reading the curve from the `curve` user attr."""
    out = []
    for t in trials:
        curve = {int(e["epoch"]): float(e[curve_key]) for e in t.user_attrs.get("curve", [])
                 if e.get(curve_key) is not None}
        values = dict(zip(objective_names, t.values or ()))
        out.append(Finished(t.number, curve, {n: values[n] for n in known_names if n in values}))
    return out
