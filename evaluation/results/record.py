"""The trial record: what one trial of a search stores in the Optuna storage, written in one place
(the `write_*` functions, called by the search's trial runner) and read in one place (`read_trial`,
used by every reader: results, plots, report, the search's progress and budget, export).

The Optuna state is the truth about how a trial ended. The `outcome` attribute only refines it
(which kind of PRUNED or FAIL) and is written last, just before the state becomes final; a
COMPLETE trial's outcome is its state. A reader takes an outcome only where it agrees with the
state, so a trial whose process died after writing its results reads as what its state says
(e.g. FAIL: failed), never as complete. The layout is documented in docs/search.md ("Storage
layout"); `SCHEMA_VERSION` is stored with every trial (`schema`) and raised when it changes.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from evaluation.compat import OPTUNA_CONSTRAINTS_KEY, trial_id

SCHEMA_VERSION = 2  # 1: records before the version was stored (read the same way)
CONSTRAINTS_KEY = OPTUNA_CONSTRAINTS_KEY  # system attr holding the violations as a list, as a constraints_func's

# Metric and column names, written once (configs and YAML spell the same strings).
VAL_ACCURACY, VAL_LOSS = "val_accuracy", "val_loss"  # after the last evaluated epoch
TRAIN_ACCURACY, TRAIN_LOSS = "train_accuracy", "train_loss"  # mean over the last epoch
LATENCY_MS = "latency_ms"  # forward pass of the built model, batch 1
TRAINED = (VAL_ACCURACY, VAL_LOSS)  # objectives measured by proxy training
FINAL_METRICS = (VAL_ACCURACY, VAL_LOSS, TRAIN_ACCURACY, TRAIN_LOSS)
CURVE_METRICS = (TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS, VAL_ACCURACY)  # per epoch, in curve order
ZERO_COST_SCORES = ("grad_norm", "snip", "synflow", "naswot")  # evaluation.proxies.zero_cost, higher is better
BYTE_COLUMNS = ("activation_bytes", "state_bytes")  # costs measured in bytes (MB units in constraints, reports)


class Outcome(str, Enum):
    """How a finished trial ended; each belongs to one Optuna state (`STATE_OF`)."""

    COMPLETE = "complete"  # measured, values set
    EARLY_STOPPED = "early_stopped"  # trained, stopped by the early-stopping rule
    INFEASIBLE = "infeasible"  # broke a constraint, never trained
    DUPLICATE = "duplicate"  # an architecture trained already, never trained again
    FAILED = "failed"  # training raised or diverged, or its process died
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C (re-queued on resume)

    @property
    def counted(self) -> bool:
        """Counts towards the trial budget: it was trained."""
        return self in (Outcome.COMPLETE, Outcome.EARLY_STOPPED)

    @property
    def rejected(self) -> bool:
        """Ended untrained by a check before training."""
        return self in (Outcome.INFEASIBLE, Outcome.DUPLICATE)

    def __str__(self) -> str:
        return self.value


STATE_OF = {Outcome.COMPLETE: "COMPLETE", Outcome.EARLY_STOPPED: "PRUNED", Outcome.INFEASIBLE: "PRUNED",
            Outcome.DUPLICATE: "PRUNED", Outcome.FAILED: "FAIL", Outcome.INTERRUPTED: "FAIL"}


def is_feasible(violations: dict[str, float]) -> bool:
    """The one feasibility rule: no constraint broken (every value - limit <= 0); no constraints: feasible."""
    return all(v <= 0 for v in violations.values())


def usable_mask(df, feasible: bool = True):
    """Rows of a results DataFrame that count as results: COMPLETE and feasible (only COMPLETE when
    not `feasible`; a missing `state` or `feasible` column: every row; an unknown feasibility: not
    feasible). A boolean numpy array."""
    import numpy as np

    keep = np.ones(len(df), dtype=bool)
    if "state" in df:
        keep &= (df["state"] == "COMPLETE").to_numpy(dtype=bool)
    if feasible and "feasible" in df:
        keep &= df["feasible"].fillna(False).to_numpy(dtype=bool)
    return keep


def outcome_of(state: str, stored: Any) -> Outcome | None:
    """The outcome of a trial in Optuna `state` (a TrialState name) whose `outcome` attr is
    `stored`. The state decides: an attr written for another state is ignored, and a FAIL trial
    whose attr says anything but failed / interrupted (its process died after writing it) failed."""
    if state == "COMPLETE":
        return Outcome.COMPLETE
    try:
        outcome = Outcome(stored) if stored is not None else None
    except ValueError:
        outcome = None
    if outcome is not None and STATE_OF[outcome] == state:
        return outcome
    if state == "FAIL" and stored is not None:
        return Outcome.FAILED
    return None  # running, waiting, or FAIL after its worker died (heartbeat): no outcome recorded


@dataclass(frozen=True)
class TrialRecord:
    """One trial as the search stored it (docs/search.md, "Storage layout")."""

    number: int
    state: str  # Optuna TrialState name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    outcome: Outcome | None
    reason: str | None = None
    spec: dict | None = None  # ArchSpec.to_dict(); `arch_spec()` rebuilds it
    spec_id: str | None = None
    cost: dict = field(default_factory=dict)  # Cost fields but `blocks`
    costed_at: dict = field(default_factory=dict)  # frames, resolution, num_classes
    violations: dict = field(default_factory=dict)  # constraint text -> value - limit (> 0: broken)
    feasible: bool | None = None
    worker: str | None = None
    metrics: dict = field(default_factory=dict)
    curve: list = field(default_factory=list)  # one dict per evaluated epoch
    timing: dict = field(default_factory=dict)  # seconds by phase
    weights: str | None = None  # kept trained weights, relative to the study folder
    values: tuple | None = None  # Optuna values (COMPLETE trials), in objective order
    params: dict = field(default_factory=dict)
    retry_of: int | None = None
    datetime_start: Any = None
    datetime_complete: Any = None
    schema: int = 1

    @property
    def counted(self) -> bool:
        return self.outcome is not None and self.outcome.counted

    @property
    def rejected(self) -> bool:
        return self.outcome is not None and self.outcome.rejected

    @property
    def usable(self) -> bool:
        """COMPLETE and feasible (`usable_mask` for a DataFrame of records)."""
        return self.state == "COMPLETE" and self.feasible is True

    @property
    def duration(self) -> float:
        if self.datetime_start is None or self.datetime_complete is None:
            return math.nan
        return (self.datetime_complete - self.datetime_start).total_seconds()

    def value(self, name: str, objectives: list[str] | None = None) -> float | None:
        """The named objective, cost or metric (None when not measured)."""
        if objectives and self.values is not None and name in objectives:
            return self.values[objectives.index(name)]
        found = self.cost.get(name, self.metrics.get(name))
        return float(found) if isinstance(found, (int, float)) else None

    def arch_spec(self):
        """The `ArchSpec` (None when not stored or not readable by this version). A stored spec
        whose hash is its `spec_id` is exactly what the writer stored from an `ArchSpec`, and is
        rebuilt directly from its fields (reading thousands of trials); any other goes through
        `ArchSpec.from_dict`."""
        from search_space import ArchSpec, SpecError

        if not self.spec:
            return None
        try:
            if self.spec_id is not None and spec_id(self.spec) == self.spec_id:
                return _rebuild(self.spec)
            return ArchSpec.from_dict(self.spec)
        except (SpecError, TypeError, ValueError, KeyError):
            return None


def read_trial(trial) -> TrialRecord:
    """The record of an Optuna `FrozenTrial` (or running `Trial`)."""
    state = trial.state.name if hasattr(trial, "state") else "RUNNING"
    return from_attrs(trial.number, state, trial.user_attrs, trial.system_attrs, params=trial.params,
                      values=getattr(trial, "values", None), datetime_start=trial.datetime_start,
                      datetime_complete=getattr(trial, "datetime_complete", None))


def from_attrs(number: int, state: str, user_attrs: dict, system_attrs: dict, params: dict | None = None,
               values=None, datetime_start=None, datetime_complete=None) -> TrialRecord:
    """The record from a trial's stored pieces (for readers that query the storage themselves)."""
    attrs = user_attrs
    violations = attrs.get("violations") or _constraints(system_attrs)
    feasible = attrs.get("feasible")
    if feasible is None and violations:
        feasible = is_feasible(violations)
    return TrialRecord(
        number=number, state=state, outcome=outcome_of(state, attrs.get("outcome")), reason=attrs.get("reason"),
        spec=attrs.get("spec"), spec_id=attrs.get("spec_id"), cost=dict(attrs.get("cost") or {}),
        costed_at=dict(attrs.get("costed_at") or {}), violations=dict(violations), feasible=feasible,
        worker=attrs.get("worker"), metrics=dict(attrs.get("metrics") or {}), curve=list(attrs.get("curve") or []),
        timing=dict(attrs.get("timing") or {}), weights=attrs.get("weights"),
        values=tuple(values) if values is not None else None, params=dict(params or {}),
        retry_of=system_attrs.get("failed_trial"), datetime_start=datetime_start,
        datetime_complete=datetime_complete, schema=int(attrs.get("schema") or 1))


def _constraints(system_attrs: dict) -> dict:
    """Named violations from Optuna's own keys (`constraints:<name>`), for studies of other tools."""
    prefix = f"{CONSTRAINTS_KEY}:"
    return {k[len(prefix):]: v for k, v in system_attrs.items() if k.startswith(prefix)}


def spec_id(spec) -> str:
    """A short hash of the architecture (an `ArchSpec` or its dict; its name left out): equal
    specs, equal ids."""
    import hashlib
    import json

    data = dict(spec) if isinstance(spec, dict) else spec.to_dict()
    data.pop("name", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@functools.lru_cache(maxsize=4096)  # blocks are frozen values drawn from a few choices: share them
def _block(expand: int, kernel: tuple, strides: tuple):
    from search_space.spec import Block

    return Block(expand, kernel, strides)


def _rebuild(data: dict):
    """An `ArchSpec` from the dict of one (all fields present), its blocks shared (`_block`). Built
    through the constructor, so validated like any spec: on 2,000 paper-space specs 91 µs a spec,
    against 47 µs when validation was skipped and 311 µs through `from_dict` (2-core AMD, best of 7)."""
    import dataclasses

    from search_space.spec import ArchSpec, Head, Stage, Stem

    names = [f.name for f in dataclasses.fields(ArchSpec)]
    if sorted(data) != sorted(names):
        return ArchSpec.from_dict(data)
    top = dict(data, stem=Stem(**data["stem"]), head=Head(**data["head"]),
               stages=tuple(Stage(s["filters"], tuple(_block(b["expand"], tuple(b["kernel"]), tuple(b["strides"]))
                                                      for b in s["blocks"])) for s in data["stages"]))
    return ArchSpec(**top)


# ---------------------------------------------------------------------------------------------
# the writer (a running optuna Trial)


def write_start(trial, *, spec: dict, spec_id: str, cost: dict, costed_at: dict, violations: dict,
                worker: str) -> None:
    """What every trial stores once costed. The violations go to Optuna as `constraints_func`
    results do (system attr `constraints`, a list in the study's constraint order), so Optuna's
    samplers, `best_trials` and visualizations and optuna-dashboard see feasibility; the named
    values are in the `violations` attr. A retry arrives with its predecessor's attrs: the end
    of that trial (outcome, reason, results) is cleared."""
    trial.storage.set_trial_system_attr(trial_id(trial), CONSTRAINTS_KEY, [float(v) for v in violations.values()])
    feasible = is_feasible(violations)
    inherited = trial.user_attrs  # empty but for a retry
    for key, value in {"schema": SCHEMA_VERSION, "spec": spec, "spec_id": spec_id, "cost": cost,
                       "costed_at": costed_at, "violations": violations, "feasible": feasible, "worker": worker,
                       "curve": [], "outcome": None, "reason": None, "metrics": {}, "timing": {},
                       "weights": None}.items():
        if key in _RESULTS and key not in inherited:
            continue  # written when measured; cleared only for a retry
        trial.set_user_attr(key, value)


_RESULTS = ("outcome", "reason", "metrics", "timing", "weights")


def write_curve(trial, curve: list[dict]) -> None:
    """The training curve so far (after each epoch)."""
    trial.set_user_attr("curve", curve)


def write_results(trial, *, metrics: dict, curve: list, timing: dict, weights: str | None = None) -> None:
    """What a trained (or failed) trial measured; the outcome follows with `write_outcome`."""
    values = {"metrics": metrics, "curve": curve, "timing": timing}
    if weights is not None:
        values["weights"] = weights
    for key, value in values.items():
        trial.set_user_attr(key, value)


def write_outcome(trial, outcome: Outcome, reason: str | None) -> None:
    """The last write before the state becomes final (a COMPLETE trial writes none: its state
    says it). Call it just before raising `TrialPruned` / failing the trial."""
    if outcome is Outcome.COMPLETE:
        return
    _outcome_attrs(trial.set_user_attr, outcome, reason)


def mark_interrupted(storage, trial, reason: str) -> None:
    """End `trial` (a `Trial` or `FrozenTrial` left RUNNING by an interrupted or killed process)
    through the Optuna `storage`: outcome interrupted with `reason`, then state FAIL, so the
    driver re-queues it."""
    from optuna.trial import TrialState

    key = trial_id(trial)
    _outcome_attrs(lambda name, value: storage.set_trial_user_attr(key, name, value), Outcome.INTERRUPTED, reason)
    storage.set_trial_state_values(key, TrialState.FAIL)


def _outcome_attrs(set_attr, outcome: Outcome, reason: str | None) -> None:
    set_attr("reason", reason)
    set_attr("outcome", outcome.value)


__all__ = ["BYTE_COLUMNS", "CONSTRAINTS_KEY", "CURVE_METRICS", "FINAL_METRICS", "LATENCY_MS", "Outcome",
           "SCHEMA_VERSION", "TRAINED", "TRAIN_ACCURACY", "TRAIN_LOSS", "TrialRecord", "VAL_ACCURACY", "VAL_LOSS",
           "from_attrs", "is_feasible", "mark_interrupted", "outcome_of", "read_trial", "spec_id", "usable_mask",
           "write_curve", "write_outcome", "write_results", "write_start"]
