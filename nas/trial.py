"""One trial of a search: sample an `ArchSpec`, cost it, store costs and constraint violations
(every trial), reject it untrained when it breaks a constraint or repeats a trained architecture,
otherwise measure the objectives (latency, zero-cost scores, proxy training with early stopping)
and record the results in the storage and under `RESULTS_DIR/<study>/trials/<number>/`.
What a trial stores is `evaluation.results.record` (documented in docs/search.md, "Storage layout").

Trained objectives are scored by the config's evaluator (`config.proxy`, parsed once by
nas.config) through `evaluation.evaluator.make_scorer`: `scorer(spec, callback, keep_model) ->
evaluation.proxies.train.ProxyResult`, `callback(epoch, entry) -> bool` called after each evaluated epoch
(True: stop: the run ends early stopped). The scorer gets an explicit context, never the runner.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from evaluation.compat import trial_id
from evaluation.deploy.export_trial import save_weights
from evaluation.evaluator import EvalContext, TableProxy, TrainProxy, make_scorer
from evaluation.results.record import (
    LATENCY_MS,
    TRAIN_ACCURACY,
    TRAIN_LOSS,
    VAL_ACCURACY,
    VAL_LOSS,
    Outcome,
    outcome_of,
    read_trial,
    spec_id,
    write_curve,
    write_outcome,
    write_results,
    write_start,
)

from .config import COSTS, TRAINED, SearchConfig
from .constraints import analytic_costs, describe, is_feasible, violations
from .errors import UsageError, interrupt_reason, raise_if_interrupted
from .pruning import considers, finished_from_trials, should_stop

KEEP_WEIGHTS_PARAMS = 5_000_000  # keep_weights "auto": keep a COMPLETE trial's weights up to this many params
DUPLICATE_RESAMPLES = 10  # re-samples of a proposal repeating a trained architecture (`Runner._sample`)


class TrialFailed(Exception):
    """A trial failed for a reason recorded in its `reason` user attr; the study goes on."""


class NotMeasurable(Exception):
    """The proxy cannot score this architecture (e.g. a table that does not hold it): the trial is
    rejected untrained (PRUNED, outcome infeasible, not counted) with the reason."""


class Datasets:
    """The proxy's data for each spec: the config's dataset, at the spec's frames / resolution
    where the config says `spec` (any spec of the space when None). The last two sizes stay loaded."""

    def __init__(self, config: SearchConfig, space):
        self.config, self.space = config, space
        self._loaded: dict = {}

    def __call__(self, spec=None):
        from evaluation.datasets import load_dataset

        from .config import dataset_for

        cfg = dataset_for(self.config.dataset, spec if spec is not None else self.space.sample(0))
        key = repr(sorted(cfg.items()))
        if key not in self._loaded:
            try:
                data = load_dataset(cfg, where="dataset", base_dir=self.config.base_dir)
            except (ValueError, FileNotFoundError) as exc:
                raise UsageError(f"{self.config.source}: {' '.join(str(exc).split())}") from None
            while len(self._loaded) >= 2:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = data
        return self._loaded[key]


class Runner:
    """The objective: `runner(trial, release)` runs one trial (see the module docstring).

    `release` frees the driver's budget lock once the trial is RUNNING and its architecture is
    stored (so no other worker samples it meanwhile). The runner keeps its own
    state: the trial in progress (`current`, for the driver's Ctrl-C clean-up) and the streaks of
    rejected and failed trials the driver checks between trials."""

    def __init__(self, config: SearchConfig, space, num_classes: int, study_dir: Path, worker_index: int = 0,
                 datasets: Datasets | None = None):
        self.config, self.space, self.num_classes = config, space, num_classes
        self.study_dir = Path(study_dir)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{worker_index}"
        self.dataset = datasets or Datasets(config, space)
        self.rejected_streak = self.failure_streak = 0
        self.rejected_why = ""
        self.last_failure = ""
        self.current = None  # the optuna Trial in progress
        self.curve: list[dict] = []  # its training curve so far
        self.on_epoch: Callable[[int, dict], None] | None = None  # on_epoch(trial number, curve entry): progress
        trains = isinstance(config.proxy, TrainProxy) and config.trains
        self.budget = config.proxy.budget if trains else None  # the proxy's epochs: progress bars, early stopping
        self.last_epoch = _last_epoch(config)  # no early stopping there: a finished run is kept
        self.score = None
        if config.trains:  # a bad supernet checkpoint stops the search before a trial
            context = EvalContext(space=space, dataset=self.dataset, study_dir=self.study_dir,
                                  num_classes=num_classes, seed=config.seed or 0, storage=config.storage)
            try:
                self.score = make_scorer(config.proxy, context)
            except ValueError as exc:
                raise UsageError(str(exc)) from None

    def keeps_weights(self, spec) -> bool:
        """Keep this trial's trained weights (config `keep_weights`: true, false or auto = small proxies)?"""
        keep = getattr(self.config, "keep_weights", "auto")
        if keep == "auto":
            from search_space import estimate_cost

            return estimate_cost(spec, num_classes=self.num_classes).params <= KEEP_WEIGHTS_PARAMS
        return bool(keep)

    def __call__(self, trial, release: Callable[[], None] = lambda: None):
        self.current = trial
        try:
            values = self._run(trial, release)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM anywhere in the trial, not only inside training
            try:
                if outcome_of("FAIL", trial.user_attrs.get("outcome")) is not Outcome.INTERRUPTED:
                    write_outcome(trial, Outcome.INTERRUPTED, interrupt_reason(exc))
            except Exception:  # the storage call itself may be what was interrupted
                pass
            raise  # `current` stays set: the driver makes sure the trial does not stay RUNNING
        except BaseException:
            self.current = None
            raise
        self.current = None
        return values

    def _run(self, trial, release):
        import optuna

        self.curve = []
        t0 = time.perf_counter()
        try:  # sampled and stored under the driver's lock: two workers never both take one architecture
            taken = _taken_architectures(trial)
            spec = self._sample(trial, taken)
            cost = analytic_costs(spec, self.num_classes, self.config.profile)  # latency_ms too with a profile
            viol = violations(self.config.constraints, cost)
            arch = spec_id(spec)
            write_start(trial, spec=spec.to_dict(), spec_id=arch, cost=cost, violations=viol, worker=self.worker,
                        costed_at={"frames": spec.frames, "resolution": spec.resolution,
                                   "num_classes": self.num_classes})
        finally:
            release()
        if not is_feasible(viol):
            self._raise_rejected(trial, Outcome.INFEASIBLE, f"infeasible: {describe(self.config.constraints, viol)}")
        twin = taken.get(arch)
        if twin is not None:
            self._raise_rejected(trial, Outcome.DUPLICATE, f"duplicate: same architecture as trial {twin}")
        self.rejected_streak = 0
        trial_dir = self.study_dir / "trials" / str(trial.number)
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "spec.yaml").write_text(spec.to_yaml())
        timing = {"prepare": time.perf_counter() - t0}
        try:
            metrics, curve, stop, model = self._measure(trial, spec, cost, timing)
        except KeyboardInterrupt as exc:
            _finish(trial, trial_dir, Outcome.INTERRUPTED, interrupt_reason(exc), Measured({}, self.curve, timing))
            raise
        except TrialFailed as exc:
            self._raise_failed(trial, trial_dir, str(exc), timing)
        except NotMeasurable as exc:
            self._raise_rejected(trial, Outcome.INFEASIBLE, str(exc))
        except Exception as exc:  # a trial's own error (out of memory, bad op) must not end the study
            self._raise_failed(trial, trial_dir, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", timing)
        self.failure_streak = 0
        if stop is not None:
            _finish(trial, trial_dir, Outcome.EARLY_STOPPED, stop, Measured(metrics, curve, timing))
            raise optuna.TrialPruned(stop)
        values = [cost[o.name] if o.name in COSTS else metrics.get(o.name, math.nan) for o in self.config.objectives]
        bad = [o.name for o, v in zip(self.config.objectives, values) if not math.isfinite(v)]
        if bad:
            self._raise_failed(trial, trial_dir, f"objective {', '.join(bad)} is not finite", timing, metrics, curve)
        weights = save_weights(model, trial_dir) if model is not None else None
        if len(self.config.objectives) > 1 and self.config.curve_objective is not None:
            report_curve(trial, curve, self.config.curve_objective.name)
        _finish(trial, trial_dir, Outcome.COMPLETE, None, Measured(
            metrics, curve, timing, dict(zip([o.name for o in self.config.objectives], values)),
            weights=str(weights.relative_to(self.study_dir)) if weights else None))
        return values

    def _sample(self, trial, taken: dict[str, int]):
        """The trial's architecture (`taken`: the trained or training ones, `_taken_architectures`);
        see `sample_distinct`."""
        return sample_distinct(trial, self.space, taken, seed=self.config.seed or 0,
                               name=f"{self.config.study}-{trial.number}")

    def _raise_rejected(self, trial, outcome: Outcome, reason: str) -> NoReturn:
        """End a trial untrained (PRUNED): it breaks a constraint or repeats a trained architecture."""
        import optuna

        self.rejected_streak += 1
        self.rejected_why = reason
        write_outcome(trial, outcome, reason)
        raise optuna.TrialPruned(reason)

    def _raise_failed(self, trial, trial_dir, reason, timing, metrics=None, curve=None) -> NoReturn:
        """End a trial FAIL with its reason and what it measured; the study goes on."""
        self.failure_streak += 1
        self.last_failure = f"trial {trial.number}: {reason}"
        _finish(trial, trial_dir, Outcome.FAILED, reason, Measured(metrics or {}, curve or self.curve, timing))
        raise TrialFailed(reason)

    def _measure(self, trial, spec, cost, timing):
        """Latency, zero-cost scores and proxy training: (metrics, curve, early-stop reason, model
        to keep or None)."""
        config = self.config
        metrics: dict = {}
        names = [o.name for o in config.objectives]
        if LATENCY_MS in names and LATENCY_MS in cost:  # predicted from the config's latency profile
            metrics[LATENCY_MS] = cost[LATENCY_MS]
        elif LATENCY_MS in names:
            from evaluation.deploy.latency import measure_latency_ms

            t = time.perf_counter()
            metrics[LATENCY_MS] = measure_latency_ms(spec, self.num_classes)
            timing["latency"] = time.perf_counter() - t
        if config.zero_cost_names:
            from evaluation.proxies.zero_cost import zero_cost_scores

            t = time.perf_counter()
            scores = zero_cost_scores(spec, self.dataset(spec), names=config.zero_cost_names,
                                      batch_size=config.zero_cost.batch_size, seed=config.seed or 0)
            metrics.update({k: float(v) for k, v in scores.items() if k in config.zero_cost_names})
            timing["zero_cost"] = time.perf_counter() - t
        curve: list[dict] = []
        self.curve = curve
        if not config.trains:
            return metrics, curve, None, None
        stop: list[str] = []
        on_epoch = self._epoch_callback(trial, cost, metrics, curve, stop)
        t = time.perf_counter()
        result = self.score(spec, on_epoch, keep_model=self.keeps_weights(spec))
        timing["train"] = time.perf_counter() - t
        metrics.update({k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))})
        if result.status is Outcome.FAILED:
            raise TrialFailed(result.reason or "proxy training failed")
        if result.status is Outcome.INFEASIBLE:
            raise NotMeasurable(result.reason or "the proxy cannot score this architecture")
        return metrics, curve, (stop[0] if result.status is Outcome.EARLY_STOPPED and stop else None), result.model

    def _epoch_callback(self, trial, cost: dict, metrics: dict, curve: list, stop: list):
        """After each epoch: record the curve, report the followed value to Optuna (intermediate
        values; Optuna's pruner decides in single-objective studies) and apply the early-stopping
        rule (any study). Returns True to stop the run."""
        config = self.config
        names = [o.name for o in config.objectives]
        follow = config.curve_objective
        known = {n: (cost[n] if n in COSTS else metrics[n]) for n in names if n not in TRAINED}
        directions = {o.name: o.direction for o in config.objectives if o.name in known}
        single = len(config.objectives) == 1
        last = self.last_epoch

        def on_epoch(epoch: int, entry: dict) -> bool:
            raise_if_interrupted()  # a SIGTERM or Ctrl-C whose exception TensorFlow's cleanup swallowed
            curve.append({k: entry[k] for k in ("epoch", TRAIN_LOSS, TRAIN_ACCURACY, VAL_LOSS,
                                                VAL_ACCURACY, "seconds") if k in entry})
            write_curve(trial, curve)
            if self.on_epoch is not None:
                self.on_epoch(trial.number, dict(entry))
            value = entry.get(follow.name)
            if value is None or not math.isfinite(value):
                return False
            if single:
                trial.report(float(value), epoch)  # Optuna's pruner and plots read it
            if single and (last is None or epoch < last) and trial.should_prune():
                stop.append(f"pruned by {type(trial.study.pruner).__name__} at epoch {epoch} ({value:.4g})")
                return True
            reason = self._rule_stops(trial, epoch, value, known, directions)
            if reason:
                stop.append(reason)
            return bool(reason)

        return on_epoch

    def _rule_stops(self, trial, epoch: int, value: float, known: dict, directions: dict) -> str | None:
        """The early-stopping rule's reason to stop `trial` after `epoch` (None: go on), judged
        against the study's other trials as stored: COMPLETE ones, and for mo-asha early-stopped and
        running ones too (whoever reached the rung, read afresh at each decision)."""
        from optuna.trial import TrialState

        rule, follow = self.config.early_stopping, self.config.curve_objective
        if not considers(rule, epoch):
            return None
        states = (TrialState.COMPLETE,) + ((TrialState.PRUNED, TrialState.RUNNING) if rule.rule == "mo-asha" else ())
        others = trial.study.get_trials(deepcopy=False, states=states)
        finished = finished_from_trials(others, follow.name, list(known), [o.name for o in self.config.objectives],
                                        exclude=trial.number)
        return should_stop(rule, epoch, value, known, directions, follow.direction == "maximize", finished,
                           last_epoch=self.last_epoch)


def _last_epoch(config: SearchConfig) -> int | None:
    """The proxy's last epoch (None: not bounded by epochs): the training budget's, or the table's
    (its curves are replayed epoch by epoch)."""
    if isinstance(config.proxy, TrainProxy):
        return config.proxy.budget.epochs if config.trains else None
    if isinstance(config.proxy, TableProxy):
        from evaluation.proxies.table import PROTOCOL

        return int(PROTOCOL["proxy"]["epochs"])
    return None


def report_curve(trial, curve: list[dict], name: str) -> None:
    """A COMPLETE multi-objective trial's curve of `name` as Optuna's intermediate values, so
    Optuna's plots and optuna-dashboard show it. Only then: Optuna refuses `trial.report` in such
    studies, and its TPE sampler reads a PRUNED trial's intermediate values through
    `study.direction`, which a multi-objective study does not have (the search would crash)."""
    for entry in curve:
        value = entry.get(name)
        if value is not None and math.isfinite(value):
            trial.storage.set_trial_intermediate_value(trial_id(trial), int(entry["epoch"]), float(value))


def _taken_architectures(trial) -> dict[str, int]:
    """{spec_id: trial number} of the study's other trials that were trained or are training."""
    from optuna.trial import TrialState

    taken: dict[str, int] = {}
    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                             TrialState.RUNNING)):
        arch = t.user_attrs.get("spec_id")
        if t.number == trial.number or arch is None or arch in taken:
            continue
        if t.state == TrialState.RUNNING or read_trial(t).counted:
            taken[arch] = t.number
    return taken


def sample_distinct(trial, space, taken, *, seed: int = 0, name: str = "sampled"):
    """The architecture of the Optuna `trial` sampled from `space`, avoiding those in `taken`
    (spec ids: a dict or set).

    A proposal that repeats a taken architecture is re-sampled up to `DUPLICATE_RESAMPLES` times
    before the trial keeps it (and is rejected as a duplicate): the i-th re-sample asks the
    sampler again and re-draws i of its parameters uniformly at random. Asking alone is not
    enough: TPE proposes the argmax of its density ratio, so in a small space it keeps
    proposing its favourite. Proposals are drawn through the sampler's API without storing
    anything; the one kept is then suggested to the trial, fixed (`PartialFixedSampler`). Grid
    samplers and queued trials (parameters given: retries, enqueued presets) keep their own."""
    import numpy as np
    import optuna

    study, sampler = trial.study, trial.study.sampler
    frozen = trial.storage.get_trial(trial_id(trial))
    if (isinstance(sampler, optuna.samplers.GridSampler) or frozen.params
            or frozen.system_attrs.get("fixed_params")):
        return space.sample(trial, name=name)
    choices = space.param_choices()
    varied = [k for k, c in choices.items() if len(c) > 1]
    rng = np.random.default_rng([seed, trial.number])
    for attempt in range(1 + DUPLICATE_RESAMPLES):
        params = _propose(study, sampler, frozen, choices)
        for key in [varied[i] for i in rng.permutation(len(varied))[:attempt]]:
            params[key] = choices[key][rng.integers(len(choices[key]))]
        if spec_id(space.decode(params, name=name)) not in taken:
            break
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.sampler = optuna.samplers.PartialFixedSampler(params, sampler)
    try:
        return space.sample(trial, name=name)
    finally:
        study.sampler = sampler


def _propose(study, sampler, frozen, choices: dict) -> dict:
    """One proposal of `sampler` for the trial `frozen` ({parameter: value}), drawn the way
    `Trial.suggest_categorical` draws (relative parameters first, then independent ones) but
    stored nowhere."""
    from optuna.distributions import CategoricalDistribution

    space = sampler.infer_relative_search_space(study, frozen)
    relative = sampler.sample_relative(study, frozen, space) if space else {}
    params = {}
    for key, options in choices.items():
        dist = CategoricalDistribution(options)
        if dist.single():
            params[key] = options[0]
        elif key in relative and space.get(key) == dist:
            params[key] = relative[key]
        else:
            params[key] = sampler.sample_independent(study, frozen, key, dist)
    return params


@dataclass(frozen=True)
class Measured:
    """What a trained (or failed) trial measured, as `_finish` records it: metrics, curve, seconds
    by phase, and for a COMPLETE trial its objective values and kept weights (study-relative)."""

    metrics: dict
    curve: list
    timing: dict
    values: dict | None = None
    weights: str | None = None


def _finish(trial, trial_dir: Path, outcome: Outcome, reason: str | None, measured: Measured) -> None:
    """Record a trained (or failed) trial: results, then files, then the outcome (the last write
    before the state becomes final; none for COMPLETE, whose state says it)."""
    m = measured
    write_results(trial, metrics=m.metrics, curve=m.curve, timing=m.timing, weights=m.weights)
    _write_files(trial_dir, {"number": trial.number, "outcome": outcome.value, "reason": reason, "values": m.values,
                             "metrics": m.metrics, "timing": m.timing, "weights": m.weights}, m.curve)
    write_outcome(trial, outcome, reason)


def _write_files(trial_dir: Path, record: dict, curve: list) -> None:
    """The trial folder's metrics.json (`record`) and curve.csv (one row per evaluated epoch)."""
    (trial_dir / "metrics.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    if curve:
        keys = list(curve[0])
        lines = [",".join(keys)] + [",".join(f"{e.get(k, '')}" for k in keys) for e in curve]
        (trial_dir / "curve.csv").write_text("\n".join(lines) + "\n")
