"""One trial of a search: sample an `ArchSpec`, cost it, store costs and constraint violations
(every trial), reject it untrained when it breaks a constraint or repeats a trained architecture,
otherwise measure the objectives (latency, zero-cost scores, proxy training with early stopping)
and record the results in the storage and under `RESULTS_DIR/<study>/trials/<number>/`.
What is stored where is documented in docs/search.md ("Storage layout"); keep the two in step.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

from .config import COSTS, TRAINED, SearchConfig
from .constraints import describe, is_feasible, violations
from .errors import UsageError
from .pruning import finished_from_trials, should_stop

OUTCOMES = ("complete", "early_stopped", "infeasible", "duplicate", "failed", "interrupted")


class TrialFailed(Exception):
    """A trial failed for a reason recorded in its `reason` user attr; the study goes on."""


class Runner:
    """The objective: one call runs one trial (see the module docstring)."""

    def __init__(self, config: SearchConfig, space, num_classes: int, study_dir: Path, worker_index: int = 0):
        self.config, self.space, self.num_classes = config, space, num_classes
        self.study_dir = Path(study_dir)
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{worker_index}"
        self.release = lambda: None  # set by `drive`: frees the budget lock once the trial runs
        self.rejected_streak = self.failure_streak = 0
        self.rejected_why = ""
        self.last_failure = ""
        self.current = None  # the optuna Trial in progress
        self.curve: list[dict] = []  # its training curve so far
        self._datasets: dict = {}  # dataset config -> loaded dataset
        self.budget = None
        if config.trains:
            from evaluation.proxy import Budget

            self.budget = Budget.from_dict(config.proxy, path="proxy")

    def dataset(self, spec=None):
        """The proxy's data for `spec`: the config's dataset, at `spec`'s frames / resolution where
        the config says `spec` (any spec of the space when None). The last two sizes stay loaded."""
        from evaluation.datasets import load_dataset

        from .config import dataset_for

        cfg = dataset_for(self.config.dataset, spec if spec is not None else self.space.sample(0))
        key = repr(sorted(cfg.items()))
        if key not in self._datasets:
            try:
                data = load_dataset(cfg, where="dataset", base_dir=self.config.base_dir)
            except (ValueError, FileNotFoundError) as exc:
                raise UsageError(f"{self.config.source}: {' '.join(str(exc).split())}") from None
            while len(self._datasets) >= 2:
                self._datasets.pop(next(iter(self._datasets)))
            self._datasets[key] = data
        return self._datasets[key]

    def __call__(self, trial):
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # Ctrl-C anywhere in the trial, not only inside training
            try:
                if "outcome" not in trial.user_attrs:
                    trial.set_user_attr("outcome", "interrupted")
                    trial.set_user_attr("reason", "interrupted by the user (Ctrl-C)")
            except Exception:  # the storage call itself may be what was interrupted
                pass
            raise

    def _run(self, trial):
        import optuna

        from search_space import estimate_cost

        self.release()
        self.current, self.curve = trial, []
        t0 = time.perf_counter()
        spec = self.space.sample(trial, name=f"{self.config.study}-{trial.number}")
        cost = estimate_cost(spec, num_classes=self.num_classes)._asdict()
        cost.pop("blocks")
        viol = violations(self.config.constraints, cost)
        stored = trial.constraints  # a retried trial arrives with its constraints already set
        for key, value in viol.items():
            if key not in stored:
                trial.set_constraint(key, value)
        feasible = is_feasible(viol)
        arch = spec_id(spec)
        for key, value in {"spec": spec.to_dict(), "spec_id": arch, "cost": cost, "violations": viol,
                           "feasible": feasible, "worker": self.worker, "curve": [], "costed_at": {
                               "frames": spec.frames, "resolution": spec.resolution,
                               "num_classes": self.num_classes}}.items():
            trial.set_user_attr(key, value)
        if not feasible:
            self._reject(trial, "infeasible", f"infeasible: {describe(self.config.constraints, viol)}")
        twin = _same_architecture(trial, arch)
        if twin is not None:
            self._reject(trial, "duplicate", f"duplicate: same architecture as trial {twin}")
        self.rejected_streak = 0
        trial_dir = self.study_dir / "trials" / str(trial.number)
        trial_dir.mkdir(parents=True, exist_ok=True)
        (trial_dir / "spec.yaml").write_text(spec.to_yaml())
        timing = {"prepare": time.perf_counter() - t0}
        try:
            metrics, curve, stop = self._measure(trial, spec, cost, timing)
        except KeyboardInterrupt:
            _finish(trial, trial_dir, "interrupted", "interrupted by the user (Ctrl-C)", {}, [], timing)
            raise
        except TrialFailed as exc:
            self._failed(trial, trial_dir, str(exc), timing)
        except Exception as exc:  # a trial's own error (out of memory, bad op) must not end the study
            self._failed(trial, trial_dir, f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}", timing)
        self.failure_streak = 0
        if stop is not None:
            _finish(trial, trial_dir, "early_stopped", stop, metrics, curve, timing)
            raise optuna.TrialPruned(stop)
        values = [cost[o.name] if o.name in COSTS else metrics.get(o.name, math.nan) for o in self.config.objectives]
        bad = [o.name for o, v in zip(self.config.objectives, values) if not math.isfinite(v)]
        if bad:
            self._failed(trial, trial_dir, f"objective {', '.join(bad)} is not finite", timing, metrics, curve)
        _finish(trial, trial_dir, "complete", None, metrics, curve, timing,
                dict(zip([o.name for o in self.config.objectives], values)))
        return values

    def _reject(self, trial, outcome: str, reason: str):
        """End a trial untrained (PRUNED): it breaks a constraint or repeats a trained architecture."""
        import optuna

        self.rejected_streak += 1
        self.rejected_why = reason
        trial.set_user_attr("outcome", outcome)
        trial.set_user_attr("reason", reason)
        raise optuna.TrialPruned(reason)

    def _failed(self, trial, trial_dir, reason, timing, metrics=None, curve=None):
        self.failure_streak += 1
        self.last_failure = f"trial {trial.number}: {reason}"
        _finish(trial, trial_dir, "failed", reason, metrics or {}, curve or self.curve, timing)
        raise TrialFailed(reason)

    def _measure(self, trial, spec, cost, timing):
        """Latency, zero-cost scores and proxy training: (metrics, curve, early-stop reason)."""
        config = self.config
        metrics: dict = {}
        names = [o.name for o in config.objectives]
        if "latency_ms" in names:
            t = time.perf_counter()
            metrics["latency_ms"] = measure_latency_ms(spec, self.num_classes)
            timing["latency"] = time.perf_counter() - t
        if config.zero_cost_names:
            from evaluation.zero_cost import zero_cost_scores

            t = time.perf_counter()
            scores = zero_cost_scores(spec, self.dataset(spec), names=config.zero_cost_names,
                                      batch_size=config.zero_cost.batch_size, seed=config.seed or 0)
            metrics.update({k: float(v) for k, v in scores.items() if k in config.zero_cost_names})
            timing["zero_cost"] = time.perf_counter() - t
        curve: list[dict] = []
        self.curve = curve
        stop: list[str] = []
        if not config.trains:
            return metrics, curve, None
        from evaluation.proxy import train_proxy

        follow = config.curve_objective
        known = {n: (cost[n] if n in COSTS else metrics[n]) for n in names if n not in TRAINED}
        directions = {o.name: o.direction for o in config.objectives if o.name in known}

        def on_epoch(epoch: int, entry: dict) -> bool:
            curve.append({k: entry[k] for k in ("epoch", "train_loss", "train_accuracy", "val_loss",
                                                "val_accuracy", "seconds") if k in entry})
            trial.set_user_attr("curve", curve)
            if config.early_stopping.rule == "off":
                return False
            from optuna.trial import TrialState

            done = trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            finished = finished_from_trials(done, follow.name, list(known), names)
            reason = should_stop(config.early_stopping, epoch, entry[follow.name], known, directions,
                                 follow.direction == "maximize", finished, last_epoch=self.budget.epochs)
            if reason:
                stop.append(reason)
            return bool(reason)

        t = time.perf_counter()
        result = train_proxy(spec, self.dataset(spec), self.budget, seed=config.seed or 0, callback=on_epoch)
        timing["train"] = time.perf_counter() - t
        metrics.update({k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))})
        if result.status == "failed":
            raise TrialFailed(result.reason or "proxy training failed")
        return metrics, curve, (stop[0] if result.status == "pruned" and stop else None)


def spec_id(spec) -> str:
    """A short hash of the architecture (its name left out): equal specs, equal ids."""
    import hashlib

    data = spec.to_dict()
    data.pop("name", None)
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _same_architecture(trial, arch: str) -> int | None:
    """Number of another trial of the study, trained, training or queued, with this architecture."""
    from optuna.trial import TrialState

    for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                             TrialState.RUNNING)):
        if t.number != trial.number and t.user_attrs.get("spec_id") == arch and (
                t.state == TrialState.RUNNING or t.user_attrs.get("outcome") in ("complete", "early_stopped")):
            return t.number
    return None


def _finish(trial, trial_dir: Path, outcome: str, reason, metrics: dict, curve: list, timing: dict,
            values: dict | None = None) -> None:
    """Record a trained (or failed) trial: user attrs first (the storage is the record), then files."""
    for key, value in {"outcome": outcome, "reason": reason, "metrics": metrics, "curve": curve,
                       "timing": timing}.items():
        trial.set_user_attr(key, value)
    record = {"number": trial.number, "outcome": outcome, "reason": reason, "values": values,
              "metrics": metrics, "timing": timing}
    (trial_dir / "metrics.json").write_text(json.dumps(record, indent=2, default=float) + "\n")
    if curve:
        keys = list(curve[0])
        lines = [",".join(keys)] + [",".join(f"{e.get(k, '')}" for k in keys) for e in curve]
        (trial_dir / "curve.csv").write_text("\n".join(lines) + "\n")


def measure_latency_ms(spec, num_classes: int, runs: int = 10) -> float:
    """Median wall time of one forward pass at batch 1 on this machine, in milliseconds."""
    import numpy as np
    import tensorflow as tf

    from search_space import build_model

    model = build_model(spec, num_classes=num_classes, frames=spec.frames, resolution=spec.resolution, batch_size=1)
    x = tf.zeros((1, spec.frames, spec.resolution, spec.resolution, 3))
    forward = tf.function(lambda v: model(v, training=False))
    for _ in range(2):
        forward(x).numpy()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)
