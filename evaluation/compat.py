"""The one door to dependencies' internals: every use of a private Optuna, TensorFlow or Keras API
lives here, with what it relies on, and tests/test_compat.py fails with a clear message when an
upgrade breaks one of them. Nothing else in movinas touches a `_private` name of a dependency
(nas/storage.py and evaluation/results/storage.py still do, for SQLite and RDB internals; see their docs).

Each function imports its dependency when called, so importing this module loads none of them.
Checked against Optuna 5.1, TensorFlow 2.21 and Keras 3.15.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

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


__all__ = ["all_layers", "custom_gradient_registry", "forget_custom_gradients", "hypervolume", "litert_nodes", "onednn_enabled", "pareto_front_mask",
           "OPTUNA_CONSTRAINTS_KEY", "seeded", "set_untracked", "trial_id"]
