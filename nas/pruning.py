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

`mo-asha`: asynchronous successive halving by non-dominated sorting at rungs of `min_epoch *
eta**k` epochs against every trial that reported there, running or finished (nas/mo_asha.py).

No rule fires before `min_epoch` nor at the last epoch of the budget (a finished run is kept).

Single-objective studies may use Optuna's own pruners instead or as well (config `pruner:`): each
epoch's curve value is reported with `trial.report`, and `trial.should_prune()` decides.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from evaluation.results.record import VAL_ACCURACY, VAL_LOSS, Outcome, read_trial
from search_space.validate import quote

from .errors import UsageError
from .mo_asha import ahead_of, is_rung, rung_loss

if TYPE_CHECKING:
    from .config import EarlyStopping

PRUNERS = {  # config name -> optuna.pruners class name
    "none": "NopPruner", "median": "MedianPruner", "percentile": "PercentilePruner",
    "halving": "SuccessiveHalvingPruner", "hyperband": "HyperbandPruner", "threshold": "ThresholdPruner",
}


@dataclass(frozen=True)
class PrunerConfig:
    """An Optuna pruner by short name (`PRUNERS`); `options` go to its constructor unchanged."""

    name: str = "none"
    options: dict = field(default_factory=dict)


def parse_pruner(value: Any, objectives: tuple) -> PrunerConfig:
    """The config's `pruner:` (a name or {name, options}); UsageError naming the field. Optuna's
    pruners read `trial.report`, which Optuna refuses in multi-objective studies."""
    if value is None:
        return PrunerConfig()
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict):
        raise UsageError(f"pruner: {quote(value)}, must be a name ({', '.join(PRUNERS)}) or {{name: NAME, options: {{...}}}}")
    unknown = [k for k in value if k not in ("name", "options")]
    if unknown:
        raise UsageError(f"pruner.{_key(unknown[0])}: unknown field, allowed: name, options")
    name = value.get("name", "none")
    if name not in PRUNERS:
        raise UsageError(f"pruner.name: {quote(name)}, must be one of {', '.join(PRUNERS)}")
    options = value.get("options") or {}
    if not isinstance(options, dict):
        raise UsageError(f"pruner.options: {quote(options)}, must be a mapping")
    if name != "none" and len(objectives) != 1:
        raise UsageError(f"pruner.name: {name!r} needs a single-objective study ({len(objectives)} objectives); "
                         "multi-objective studies stop trials with early_stopping")
    if name != "none" and objectives[0].name not in (VAL_ACCURACY, VAL_LOSS):
        raise UsageError(f"pruner.name: {name!r} prunes training curves; the objective "
                         f"{objectives[0].name!r} is not trained (use val_accuracy or val_loss)")
    config = PrunerConfig(name, dict(options))
    make_pruner(config)  # unknown or bad options fail here, at the config
    return config


def _key(key: Any) -> str:
    return key if isinstance(key, str) and key.isidentifier() and len(key) <= 40 else quote(key)


def make_pruner(config: PrunerConfig):
    """The configured `optuna.pruners` instance; UsageError naming a bad option."""
    import inspect

    import optuna

    cls = getattr(optuna.pruners, PRUNERS[config.name])
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in config.options:
        if key not in allowed:
            raise UsageError(f"pruner.options.{_key(key)}: unknown option of {cls.__name__}, "
                             f"allowed: {', '.join(allowed) or 'none'}")
    try:
        return cls(**config.options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"pruner.options: {' '.join(str(exc).split())[:200]}") from None


@dataclass(frozen=True)
class Finished:
    """Another trial as the rule sees it (completed; for mo-asha also early-stopped or running):
    its curve by epoch and its pre-training objectives."""

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
    if rule.rule == "mo-asha":
        return _mo_asha(rule, epoch, value, known, directions, maximize, finished)
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


def considers(rule: EarlyStopping, epoch: int) -> bool:
    """Whether `rule` may stop a trial after `epoch` at all (mo-asha: only at a rung), before any
    other trial is read."""
    return rule.rule != "off" and epoch >= rule.min_epoch and (
        rule.rule != "mo-asha" or is_rung(epoch, rule.min_epoch, rule.eta))


def _mo_asha(rule: EarlyStopping, epoch: int, value: float, known: dict, directions: dict, maximize: bool,
             others: list[Finished]) -> str | None:
    """Stop at a rung unless in the top 1/eta of the trials that reported there (nas/mo_asha.py);
    decides only once `min_trials` others have (trials lacking a known objective left out)."""
    if not is_rung(epoch, rule.min_epoch, rule.eta):
        return None
    at_rung = [(f.curve[epoch], f.known) for f in others
               if math.isfinite(f.curve.get(epoch, math.nan)) and all(n in f.known for n in directions)]
    if len(at_rung) < rule.min_trials:
        return None
    loss = rung_loss(value, known, at_rung, directions, maximize)
    ahead, keep = ahead_of(loss, 0), max(1, len(loss) // rule.eta)
    if ahead < keep:
        return None
    return (f"outside the top 1/{rule.eta} at rung epoch {epoch}: {ahead} of the {len(loss)} trials there "
            f"rank ahead ({keep} go on; {value:.4g})")


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


def finished_from_trials(trials, curve_key: str, known_names: list[str], objective_names: list[str],
                         exclude: int | None = None) -> list[Finished]:
    """`Finished` records from Optuna trials, reading the curve from the `curve` user attr: the
    COMPLETE ones, early-stopped and RUNNING ones among `trials` too (mo-asha reads those), never
    trial number `exclude`. Known objectives come from a COMPLETE trial's values, else from its
    stored costs and metrics (a running trial's latency or zero-cost scores are not stored yet)."""
    out = []
    for t in trials:
        record = read_trial(t)
        if t.number == exclude or not (record.state in ("COMPLETE", "RUNNING")
                                       or record.outcome is Outcome.EARLY_STOPPED):
            continue
        curve = {int(e["epoch"]): float(e[curve_key]) for e in record.curve if e.get(curve_key) is not None}
        values = dict(zip(objective_names, record.values or ()))
        known = {n: values[n] if n in values else record.value(n) for n in known_names}
        out.append(Finished(t.number, curve, {n: x for n, x in known.items() if x is not None}))
    return out
