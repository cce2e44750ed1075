"""The one door to dependencies' internals: every use of a private Optuna, TensorFlow or Keras API
lives here, with what it relies on, and tests/test_compat.py fails with a clear message when an
upgrade breaks one of them. Nothing else in movinas touches a `_private` name of a dependency, nor
reads Optuna's database tables behind its back.

Each function imports its dependency when called, so importing this module loads none of them.
Checked against Optuna 5.1, TensorFlow 2.21 and Keras 3.15.
"""

from __future__ import annotations

import contextlib
import math
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

# ---------------------------------------------------------------------------------------------
# Optuna


def trial_id(trial: Any) -> int:
    """The storage id of a `Trial` or `FrozenTrial` (its `number` counts within the study; the
    storage's `set_trial_*` / `get_trial` calls take this id). Relies on the attribute
    `_trial_id`, which both classes have carried since Optuna 1.x; there is no public accessor."""
    return trial._trial_id


OPTUNA_CONSTRAINTS_KEY = "constraints"
"""The trial system attr where Optuna's samplers, `Study.best_trials` and plots read a trial's
constraint values (a list, <= 0: met), as a `constraints_func` stores them. Relies on
`optuna.study._constrained_optimization._CONSTRAINTS_KEY`; the trial record writes it so Optuna
sees feasibility without a `constraints_func`."""


def pareto_front_mask(loss: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of `loss` (rows, objectives), every objective
    minimized, duplicates of a front point on the front too. Relies on
    `optuna.study._multi_objective._is_pareto_front(loss, assume_unique_lexsorted=False)`: Optuna 5
    exposes a front only for a study's own trials (`Study.best_trials`), not for an array."""
    from optuna.study._multi_objective import _is_pareto_front

    return _is_pareto_front(loss, assume_unique_lexsorted=False)


def hypervolume(loss: np.ndarray, reference: np.ndarray) -> float:
    """The hypervolume dominated by the rows of `loss` (minimized) up to `reference`. Relies on
    `optuna._hypervolume.compute_hypervolume(loss, reference)` (the public wrapper was removed in
    Optuna 5; `plot_hypervolume_history` works on a study's own objectives only)."""
    from optuna._hypervolume import compute_hypervolume

    return float(compute_hypervolume(loss, reference))


def rdb_storage_class() -> type:
    """A subclass of Optuna's `RDBStorage` that also counts as stale a RUNNING trial that never recorded
    a heartbeat and started more than `grace_period` seconds ago: its process died (SIGKILL) between
    creating the trial and starting its heartbeat thread. Optuna skips such trials, so one would stay
    RUNNING for ever and a worker waiting for the budget's last trials would wait for it for ever.

    Relies on `RDBStorage._get_stale_trial_ids(study_id)`, which `optuna.storages.fail_stale_trials`
    (run by `Study.optimize` / `ask` with heartbeats on) calls for the trials to fail and retry, and
    on the RDB models of `optuna.storages._rdb` (`TrialModel.state`, `study_id`, `heartbeats`,
    `datetime_start`) read in a session of `_create_scoped_session`. There is no public hook."""
    from datetime import datetime, timedelta

    import optuna
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from optuna.trial import TrialState

    class SilentTrialsAreStale(optuna.storages.RDBStorage):
        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            stale = super()._get_stale_trial_ids(study_id)
            cutoff = datetime.now() - timedelta(seconds=self.grace_period or 2 * self.heartbeat_interval)
            with _create_scoped_session(self.scoped_session, True) as session:
                running = (session.query(models.TrialModel)
                           .filter(models.TrialModel.state == TrialState.RUNNING)
                           .filter(models.TrialModel.study_id == study_id).all())
                silent = [t.trial_id for t in running if not t.heartbeats and t.datetime_start is not None
                          and t.datetime_start < cutoff]
            return stale + [t for t in silent if t not in stale]

    return SilentTrialsAreStale


def stop_heartbeat_threads() -> None:
    """Stop the Optuna heartbeat threads of this process. One that a Ctrl-C or SIGTERM left running
    (it struck between the thread's start and Optuna's `with` block taking charge of it) would keep
    its trial RUNNING and the process from exiting. Relies on `threading.Thread`'s `_target` /
    `_args` and on Optuna's `HeartbeatThread._record_heartbeat(trial_id, storage, stop_event)`, the
    thread's target, stopped by setting its `threading.Event`."""
    import threading

    for thread in threading.enumerate():
        if getattr(getattr(thread, "_target", None), "__name__", "") == "_record_heartbeat":
            for arg in getattr(thread, "_args", ()):
                if isinstance(arg, threading.Event):
                    arg.set()
                    thread.join(timeout=10)


class StoredTrial(NamedTuple):
    """One trial as Optuna's RDB tables hold it, the arguments of `evaluation.results.record.from_attrs`."""

    number: int
    state: str  # TrialState name
    user_attrs: dict
    system_attrs: dict
    params: dict  # name -> external value (as `FrozenTrial.params`)
    values: list | None  # objective values of a COMPLETE trial, in objective order
    datetime_start: Any
    datetime_complete: Any


def sqlite_trials(con, study_name: str) -> list[StoredTrial]:
    """Every trial of `study_name`, in number order, read from an open `sqlite3` connection to an Optuna
    database in a few set-based queries (Optuna's `get_trials` loads each trial's rows separately,
    several times slower on thousands of trials). Relies on Optuna's RDB schema (version 12 of
    Optuna 3-5): tables `studies`, `trials`, `trial_params` (`param_value` internal, `distribution_json`),
    `trial_values` (`objective`, `value`, `value_type` "FINITE" / "INF_POS" / "INF_NEG"),
    `trial_user_attributes` and `trial_system_attributes` (`value_json`), datetimes in ISO text."""
    import datetime
    import json

    (study_id,) = con.execute("SELECT study_id FROM studies WHERE study_name = ?", (study_name,)).fetchone()
    trials = con.execute("SELECT trial_id, number, state, datetime_start, datetime_complete FROM trials "
                         "WHERE study_id = ? ORDER BY number", (study_id,)).fetchall()
    # the rows of the study's trials, scanning each table in row order (a CROSS JOIN keeps SQLite
    # from looking each trial's rows up through an index instead, slower and in another order);
    # no join at all where the storage holds this study alone (a results folder)
    (studies,) = con.execute("SELECT count(*) FROM studies").fetchone()
    where = "" if studies == 1 else "CROSS JOIN trials t ON x.trial_id = t.trial_id WHERE t.study_id = ?"
    args = () if studies == 1 else (study_id,)

    def select(columns: str, table: str, order: str = ""):
        return con.execute(f"SELECT {columns} FROM {table} x {where} {order}", args)

    def grouped(columns: str, table: str) -> dict:
        out: dict = {}
        for row in select(f"x.trial_id, {columns}", table):
            out.setdefault(row[0], []).append(row[1:])
        return out

    inf = {"INF_POS": math.inf, "INF_NEG": -math.inf}
    params = _sqlite_params(select)
    values = grouped("x.objective, x.value, x.value_type", "trial_values")
    user = grouped("x.key, x.value_json", "trial_user_attributes")
    system = grouped("x.key, x.value_json", "trial_system_attributes")
    when = datetime.datetime.fromisoformat
    out = []
    for trial_id, number, state, start, complete in trials:
        vals = sorted(values.get(trial_id, ()))
        out.append(StoredTrial(
            number, state, {k: json.loads(v) for k, v in user.get(trial_id, ())},
            {k: json.loads(v) for k, v in system.get(trial_id, ())}, params.get(trial_id, {}),
            [inf.get(kind, v) for _, v, kind in vals] if vals and state == "COMPLETE" else None,
            when(start) if start else None, when(complete) if complete else None))
    return out


def has_optuna_tables(con) -> bool:
    """Whether an open `sqlite3` connection is to a database holding Optuna's RDB tables (`studies`,
    `trials`), the schema `sqlite_trials` reads."""
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    return {"studies", "trials"} <= tables


def _sqlite_params(select) -> dict:
    """{trial_id: {name: external value}} from trial_params (over half a million rows in a study
    of 5,000 trials of the paper space). A name has one distribution in every trial but in rare
    dynamic spaces: it is then read once a name, not once a row."""
    from optuna.distributions import json_to_distribution

    pairs = select("DISTINCT x.param_name, x.distribution_json", "trial_params").fetchall()
    order = "ORDER BY x.param_id"  # Optuna's order of a trial's parameters (the scan's: no sorting)
    out: dict = {}
    if len(dict(pairs)) < len(pairs):  # a name with several distributions: each row's own
        seen: dict = {}
        for trial_id, name, value, text in select("x.trial_id, x.param_name, x.param_value, x.distribution_json",
                                                  "trial_params", order):
            if (text, value) not in seen:
                seen[text, value] = json_to_distribution(text).to_external_repr(value)
            out.setdefault(trial_id, {})[name] = seen[text, value]
        return out
    distribution = dict(pairs)
    external: dict = {name: {} for name in distribution}  # name -> {internal: external}, a few each
    for trial_id, name, value in select("x.trial_id, x.param_name, x.param_value", "trial_params", order):
        try:
            found = external[name][value]
        except KeyError:  # the first of this value (or NaN, never equal to itself)
            found = external[name][value] = json_to_distribution(distribution[name]).to_external_repr(value)
        try:
            out[trial_id][name] = found
        except KeyError:
            out[trial_id] = {name: found}
    return out


# ---------------------------------------------------------------------------------------------
# TensorFlow


def custom_gradient_registry() -> dict | None:
    """TensorFlow's global gradient registry {op type name: gradient function}, None when this
    TensorFlow keeps it elsewhere. Relies on `tensorflow.python.framework.ops._gradient_registry`
    (a `Registry`) and its `_registry` dict, where `tf.custom_gradient` registers
    `CustomGradient-<uid>` entries and never removes them; there is no public API."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else None


@contextlib.contextmanager
def forget_custom_gradients():
    """Drop, on exit, the gradient functions `tf.custom_gradient` registered within the block.

    In graph mode (every tf.function trace) `tf.custom_gradient`, which Keras' optimizers reach,
    registers a uniquely named gradient in TensorFlow's global registry and never removes it; the
    entry holds the traced graph, so each trained model leaked ~30 MB (a 100-trial search grew by
    3 GB). The entries are only looked up while a gradient is being traced, i.e. inside the block.
    """
    registry = custom_gradient_registry()
    before = set(registry) if registry is not None else None
    try:
        yield
    finally:
        if before is not None:
            for name in [n for n in registry if n not in before and n.startswith("CustomGradient-")]:
                registry.pop(name, None)


@contextlib.contextmanager
def seeded(seed: int):
    """Seed every global generator Keras draws from (`keras.utils.set_random_seed`: Python's,
    NumPy's, TensorFlow's global seed and Keras' global seed) for the block, and put each back as
    it was on exit, so a seeded run leaves no global state behind. Relies on TensorFlow's eager
    seed in `tensorflow.python.eager.context` (`global_seed` / `set_global_seed`) and on Keras'
    global state keys `global_random_seed` and `global_seed_generator`
    (`keras.src.backend.common.global_state`); neither library has a public getter. TensorFlow's
    restored seed restarts its sequence of op seeds."""
    import random

    import keras
    import numpy as np
    import tensorflow as tf
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context

    python, numpy_state = random.getstate(), np.random.get_state()
    tf_seed, graph_seed = context.global_seed(), tf.compat.v1.get_default_graph().seed
    keras_state = {key: global_state.get_global_attribute(key) for key in KERAS_SEED_KEYS}
    keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy_state)
        context.set_global_seed(tf_seed)
        tf.compat.v1.get_default_graph().seed = graph_seed
        for key, value in keras_state.items():
            global_state.set_global_attribute(key, value)


KERAS_SEED_KEYS = ("global_random_seed", "global_seed_generator")  # what keras.utils.set_random_seed sets


def freeze(function: Any) -> Any:
    """The concrete `tf.function` `function` with every variable it reads turned into a constant (same
    inputs and outputs, flattened). Relies on
    `tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2`, which the
    TFLite converter itself uses; TensorFlow 2 has no public API for it."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(function)


def onednn_enabled() -> bool:
    """Whether this process runs TensorFlow's oneDNN CPU kernels (decided once, at start-up, by the CPU
    and `TF_ENABLE_ONEDNN_OPTS`). Relies on `tensorflow.python.util._pywrap_util_port.IsMklEnabled`,
    which reports that switch; there is no public getter."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


# ---------------------------------------------------------------------------------------------
# Keras


def all_layers(model: Any) -> list:
    """Every layer nested in `model` (not the model itself), depth first. Relies on
    `keras.Layer._flatten_layers(include_self=False)`: `Model.layers` lists only the top level, and
    a block's sub-layers (BatchNorm, ReZero scales) sit inside block layers."""
    return list(model._flatten_layers(include_self=False))


def set_untracked(layer: Any, name: str, value: Any) -> None:
    """Set `layer.<name>` to `value` without Keras' attribute tracking: a `tf.Variable` assigned the
    normal way would become a weight of the layer (and change its weights list and saved files).
    Relies on Keras layers tracking through `__setattr__` only, which `object.__setattr__` skips;
    the layer's methods read the attribute as a plain attribute (BatchNormalization's `momentum`)."""
    object.__setattr__(layer, name, value)


# ---------------------------------------------------------------------------------------------
# LiteRT


def litert_nodes(interpreter: Any) -> list[dict]:
    """Every node of an allocated LiteRT `Interpreter`, delegate partitions included (op_name
    "DELEGATE"), each a dict with `op_name`, `inputs`, `outputs` (tensor indices) and `operand_types`.
    Relies on `Interpreter._get_ops_details()` (ai-edge-litert 2.3): the public API lists tensors,
    not the delegated graph. Used by `evaluation.deploy.tflite_ops`."""
    return interpreter._get_ops_details()


__all__ = ["OPTUNA_CONSTRAINTS_KEY", "StoredTrial", "all_layers", "custom_gradient_registry", "forget_custom_gradients",
           "freeze", "has_optuna_tables", "hypervolume", "litert_nodes", "onednn_enabled", "pareto_front_mask", "rdb_storage_class",
           "seeded", "set_untracked", "sqlite_trials", "stop_heartbeat_threads", "trial_id"]
