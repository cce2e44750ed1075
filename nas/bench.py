"""The benchmark table's generation, as a library: the study of each training seed, the architectures in
generation order, and the enqueueing that lets a killed generation continue (`movinas bench` drives it).

Also `made_up_table`: a table in the generated layout with made-up accuracies, to time or test the table
evaluator without the hours of training the real table takes.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import yaml

from evaluation.results.record import VAL_ACCURACY


def study_config(seed: int) -> dict:
    """The search config of the study of `seed` (written to OUT/seed<k>.yaml for the record)."""
    from evaluation.proxies.table import PROTOCOL

    return {
        "study": f"bench-seed{seed}",
        "space": PROTOCOL["space"],
        "dataset": dict(PROTOCOL["dataset"]),
        "objectives": [{"maximize": VAL_ACCURACY}, {"minimize": "flops"}],
        "proxy": dict(PROTOCOL["proxy"]),
        "sampler": "random",  # never used: every trial is enqueued
        "early_stopping": {"rule": "off"},
        "keep_weights": False,
        "trials": len(bench_archs()),
        "seed": seed,
        "num_classes": PROTOCOL["num_classes"],
    }


def bench_archs() -> list[dict]:
    """Parameters of every architecture of the space, in generation order: the smallest and the
    largest (by MACs) first, then the rest in a fixed shuffled order, so that a partial table is
    spread over the whole cost range."""
    import itertools

    import numpy as np

    from evaluation.proxies.table import PROTOCOL
    from search_space import SearchSpace, estimate_cost

    space = SearchSpace.from_yaml(PROTOCOL["space"])
    choices = space.param_choices()
    grid = [dict(zip(choices, values)) for values in itertools.product(*choices.values())]
    macs = [estimate_cost(space.decode(p), num_classes=PROTOCOL["num_classes"]).macs for p in grid]
    order = list(np.argsort(macs, kind="stable"))
    first = [order[0], order[-1]]
    rest = [i for i in np.random.default_rng(0).permutation(len(grid)) if i not in first]
    return [grid[i] for i in first + rest]


def machine() -> str:
    return f"{platform.node()} {os.cpu_count()}-core {platform.machine()} ({platform.processor() or '?'})"


def open_seed_session(out: Path, seed: int):
    """A `nas.session.Session` on the study of `seed` in OUT/bench.db, its config written to OUT."""
    from .session import Session, StudyRequest

    config_path = out / f"seed{seed}.yaml"
    text = yaml.safe_dump(study_config(seed), sort_keys=False)
    if not config_path.exists() or config_path.read_text() != text:
        config_path.write_text(text)
    return Session(StudyRequest(config_path, storage=f"sqlite:///{out / 'bench.db'}", results_dir=out / "runs"),
                   screen=False)


def enqueue_missing(session, archs: list[dict]) -> None:
    """Enqueue every architecture not yet in the study; fail the trials a killed run left RUNNING
    (one generation per folder, so none is really running) so that the driver re-queues them."""
    from optuna.trial import TrialState

    from evaluation.results.record import Outcome, mark_interrupted

    study, storage = session.study, session.storage
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING:
            mark_interrupted(storage, t, "the generation was killed during this trial")
    trials = study.get_trials(deepcopy=False)
    # a FAIL trial is retried by the driver when interrupted (so it counts as present), not when it failed
    seen = {tuple(sorted((t.params or t.system_attrs.get("fixed_params", {})).items())) for t in trials
            if t.state != TrialState.FAIL or t.user_attrs.get("outcome") == Outcome.INTERRUPTED.value}
    for params in archs:
        if tuple(sorted(params.items())) not in seen:
            study.enqueue_trial(params, skip_if_exists=False)


def made_up_table(archs: list[dict], seeds=(0, 1)):
    """A table (pandas DataFrame) in the generated layout for the architectures `archs` (parameters of
    the bench space) with made-up accuracies, a function of their order and the seed: it exercises the
    table evaluator, it says nothing about the architectures."""
    import pandas as pd

    from evaluation.proxies.table import PROTOCOL, curve_columns, required_columns, space_axes
    from evaluation.results.record import TRAIN_ACCURACY, TRAIN_LOSS, VAL_LOSS, spec_id
    from search_space import SearchSpace, estimate_cost

    space = SearchSpace.from_yaml(PROTOCOL["space"])
    epochs = PROTOCOL["proxy"]["epochs"]
    rows = []
    for i, params in enumerate(archs):
        spec = space.decode(params)
        cost = estimate_cost(spec, num_classes=PROTOCOL["num_classes"])
        for seed in seeds:
            acc = 0.1 + 0.4 * (i / len(archs)) + 0.01 * seed
            row = {"spec_id": spec_id(spec), "seed": seed, "frames": spec.frames, **params,
                   "params": cost.params, "macs": cost.macs, "flops": cost.flops,
                   "activation_bytes": cost.activation_bytes, VAL_ACCURACY: acc, VAL_LOSS: 2.0 - acc,
                   TRAIN_ACCURACY: acc, TRAIN_LOSS: 2.0 - acc, "space": PROTOCOL["space"],
                   "study": f"bench-seed{seed}", "trial": i, "seconds": 30.0, "load_avg": 1.0, "machine": "test",
                   "finished": "2026-11-29"}
            row.update({c: acc for c in curve_columns(epochs)})
            rows.append(row)
    return pd.DataFrame(rows, columns=required_columns(space_axes(space), epochs))


__all__ = ["bench_archs", "enqueue_missing", "machine", "made_up_table", "open_seed_session", "study_config"]
