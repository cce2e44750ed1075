"""The Optuna study driver: open or resume a study, run trials (`nas.trial.Runner`) until the
budget is met.

Trial budget: a study is done when `trials` trials are *counted*: COMPLETE ones plus PRUNED ones
that were early-stopped (they were trained). Rejected (infeasible, duplicate), failed and
interrupted trials do not count. Workers start a trial only while counted + running trials < budget, under a lock
shared through the storage, so the budget holds exactly across workers (and a new trial's architecture is
sampled and stored under it, so no two workers train one architecture); a worker whose budget is
covered by running trials waits for them (one may die and need a retry) instead of leaving.
"""

from __future__ import annotations

import json
import time
import warnings

from evaluation.compat import trial_id
from evaluation.results.record import Outcome, mark_interrupted, read_trial

from .config import GRID_LIMIT, SAMPLER_CLASSES, SearchConfig
from .errors import UsageError, interrupt_reason, raise_if_interrupted
from .pruning import make_pruner
from .storage import budget_lock
from .trial import Runner, TrialFailed

FAILURE_STREAK = 5  # trials failing in a row before a worker gives up

def load_space(config: SearchConfig):
    from search_space import SearchSpace, SpecError

    try:
        if isinstance(config.space, dict):
            return SearchSpace.from_dict(config.space)
        return SearchSpace.from_yaml(config.space)
    except SpecError as exc:
        raise UsageError(f"{config.source}: space: {' '.join(str(exc).split())}") from None


def make_sampler(config: SearchConfig, space, seed: int | None):
    """The configured Optuna sampler; `sampler.options` (checked by nas.config) go to its constructor."""
    import optuna

    name, options = config.sampler.name, dict(config.sampler.options)
    cls = getattr(optuna.samplers, SAMPLER_CLASSES[name])
    options.setdefault("seed", seed)
    if name == "grid":
        size = space.grid_size()
        if size > GRID_LIMIT:
            raise UsageError(f"{config.source}: sampler.name: 'grid' on a space of {size:.3g} grid points; "
                             f"grid search needs at most {GRID_LIMIT:,}, use tpe, nsga2 or random")
        options["search_space"] = space.param_choices()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{config.source}: sampler.options: {exc}") from None


def sampler_seed(seed: int | None, worker_index: int, n_existing: int) -> int | None:
    """Distinct seeds for each worker and each resumed run, reproducible from the config seed."""
    if seed is None:
        return None
    import numpy as np

    return int(np.random.SeedSequence([seed, worker_index, n_existing]).generate_state(1)[0])


def open_study(config: SearchConfig, storage, space, sampler, num_classes: int, class_names=None):
    """Create the study, or load it and refuse a changed space, objectives or constraints.
    `class_names`: a function giving the dataset's class names, stored with a new study."""
    import optuna

    objectives = [o.to_dict() for o in config.objectives]
    constraints = [c.to_dict() for c in config.constraints]
    wanted_space = _plain(space.to_dict())
    study = optuna.create_study(study_name=config.study, storage=storage, sampler=sampler, load_if_exists=True,
                                pruner=make_pruner(config.pruner),
                                directions=[o.direction for o in config.objectives])
    attrs = study.user_attrs
    if "space" not in attrs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([o.name for o in config.objectives])
        # "space" goes last: it marks the study as initialised for workers starting at the same time
        for key, value in {"objectives": objectives, "constraints": constraints, "num_classes": num_classes,
                           "class_names": class_names() if class_names else None,
                           "config": _plain(config.raw), "space": wanted_space}.items():
            study.set_user_attr(key, value)
        return study
    where = f"study {config.study!r}"
    if attrs.get("objectives") != objectives:
        raise UsageError(f"{where}: objectives changed since the study began: stored "
                         f"{_short(attrs.get('objectives'))}, config {_short(objectives)}; "
                         "use a new study name (--study) or restore them")
    if attrs["space"] != wanted_space:
        from search_space import SearchSpace

        diff = SearchSpace.from_dict(attrs["space"]).diff(space)
        raise UsageError(f"{where}: the search space changed since the study began (stored vs now: "
                         f"{'; '.join(diff[:5])}{' ...' if len(diff) > 5 else ''}); "
                         "use a new study name (--study) or restore the space")
    if attrs.get("constraints") != constraints:
        raise UsageError(f"{where}: constraints changed since the study began: stored "
                         f"{[c['text'] for c in attrs.get('constraints', [])]}, config "
                         f"{[c.text for c in config.constraints]}; use a new study name (--study)")
    return study


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def _short(objectives) -> str:
    return ", ".join(f"{o['direction']} {o['name']}" for o in objectives or [])


def counted(trial) -> bool:
    """Does this trial count towards the budget? (COMPLETE, or PRUNED by early stopping)"""
    return read_trial(trial).counted


def tally(study) -> tuple[int, int]:
    """(counted trials, running trials) of the study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    return sum(map(counted, trials)), sum(t.state == TrialState.RUNNING for t in trials)


def resolve_num_classes(config: SearchConfig, dataset_loader) -> int:
    """Classifier outputs for costing: config, then dataset config, then the loaded dataset."""
    n = config.num_classes or config.dataset.get("num_classes")
    return int(n) if n else int(dataset_loader().num_classes)


def drive(study, storage, runner: Runner, trials: int, timeout: float | None = None, on_trial=None,
          poll: float = 1.0) -> str:
    """Run trials in this process until the budget is met; returns why it stopped: "budget",
    "timeout" or "exhausted" (grid). Raises UsageError when trials keep being rejected or failing.
    """
    import functools

    import optuna

    start = time.monotonic()
    callbacks = [on_trial] if on_trial else None
    grid = isinstance(study.sampler, optuna.samplers.GridSampler)
    with budget_lock(storage, study.study_name):
        requeue_interrupted(study)
    try:
        while True:
            raise_if_interrupted()
            if timeout is not None and time.monotonic() - start >= timeout:
                return "timeout"
            if grid and study.sampler.is_exhausted(study):
                return "exhausted"
            _check_streaks(runner)
            with budget_lock(storage, study.study_name) as release:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
                done, running = tally(study)
                if done >= trials:
                    return "budget"
                if done + running >= trials:  # in flight elsewhere; wait in case one dies
                    release()
                    time.sleep(poll)
                    continue
                try:
                    study.optimize(functools.partial(runner, release=release), n_trials=1, catch=(TrialFailed,),
                                   callbacks=callbacks, gc_after_trial=False)
                except optuna.exceptions.UpdateFinishedTrialError:
                    pass  # our heartbeat came late: another worker failed the trial and re-queued it
                except Exception:
                    raise_if_interrupted()  # Optuna 5.1's tell turns an interrupt into an UnboundLocalError
                    raise
    except KeyboardInterrupt as exc:
        _fail_if_running(storage, runner, interrupt_reason(exc))
        raise


def requeue_interrupted(study) -> list[int]:
    """Queue a retry (same parameters, run before any new sample) of every trial that Ctrl-C
    interrupted and that has no retry yet; returns their numbers. Call under the budget lock."""
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", ())}
    todo = [t for t in trials if t.state == TrialState.FAIL and read_trial(t).outcome is Outcome.INTERRUPTED
            and t.number not in retried]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=None)  # re-queues any failed trial
    for t in todo:
        retry(study, t)
    return [t.number for t in todo]


def _check_streaks(runner: Runner) -> None:
    config = runner.config
    if runner.rejected_streak >= config.max_rejected:
        raise UsageError(f"{config.source}: {runner.rejected_streak} samples in a row were rejected untrained "
                         f"(last: {runner.rejected_why}); sampler {config.sampler.name} keeps proposing "
                         "architectures that break the constraints or were trained already: loosen the "
                         "constraints, change the space or the sampler, or raise max_rejected")
    if runner.failure_streak >= FAILURE_STREAK:
        raise UsageError(f"{runner.failure_streak} trials in a row failed (last: {runner.last_failure}); "
                         "see the trials' metrics.json under the results folder")


def _fail_if_running(storage, runner: Runner, reason: str = "interrupted by the user (Ctrl-C)") -> None:
    """After Ctrl-C, leave no trial of this process RUNNING (Optuna fails it when the interrupt came
    inside the objective; this covers an interrupt during sampling or storage calls)."""
    from optuna.trial import TrialState

    trial = runner.current
    if trial is None:
        return
    try:
        if storage.get_trial(trial_id(trial)).state == TrialState.RUNNING:
            mark_interrupted(storage, trial, reason)
    except Exception:  # the storage itself may be what was interrupted; heartbeats clean up later
        pass
