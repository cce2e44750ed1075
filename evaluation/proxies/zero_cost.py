"""Zero-cost proxies: scores of an untrained network from one minibatch, in a second or two.

Every score is "higher is better", so each can be maximized by a search or used as a pre-filter:

- ``grad_norm`` (Abdelfattah et al. 2021): sum over weight tensors of the L2 norm of the gradient
  of the cross-entropy loss on one labelled minibatch.
- ``snip`` (Lee et al. 2019, as a NAS proxy by Abdelfattah et al.): sum over weights of
  |θ · ∂L/∂θ| on the same minibatch.
- ``synflow`` (Tanaka et al. 2020): natural log of Σ |θ · ∂R/∂θ| where R is the sum of the output
  of the network with every weight replaced by its absolute value, fed an all-ones clip,
  BatchNorm in inference mode (at initialization an identity), in float64 so that deep networks do
  not overflow. Data-free.
- ``naswot`` (Mellor et al. 2021): log-determinant of the kernel K[i, j] = number of units on which
  clips i and j have the same activation pattern. The pattern of a unit is the sign of its
  pre-activation, read from the output of every swish / hard-swish / ReLU (all three are positive
  exactly when their input is); gating sigmoids are left out (always positive). Distinct patterns
  for distinct clips give a large determinant. Wants batch_size >= 2; larger batches separate
  networks better.

Scores are computed on the network as `build_model` makes it with two changes that do not alter
its weights' shapes: dropout and stochastic depth off (so that the scores are not random draws),
and every ReZero block scale set to 1 (MoViNet initializes them to 0, which makes every block its
skip path at initialization, so no score computed at initialization could see a block's weights).
Gradients use BatchNorm in training mode (batch statistics), as the papers do.

`zero_cost_scores` always adds the baselines ``params`` and ``macs`` (from `estimate_cost` at the
data's input size): published studies find these rank about as well as zero-cost scores outside
the benchmarks the scores were tuned on, so a proxy is only worth using where it beats them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from evaluation.results.record import ZERO_COST_SCORES
from search_space import validate

Batch = tuple[np.ndarray, np.ndarray]
DEFAULT_NAMES = ("grad_norm", "snip", "synflow", "naswot")
BASELINES = ("params", "macs")


def _loss_gradients(model, batch: Batch):
    import tensorflow as tf

    x, y = batch
    weights = model.trainable_variables
    with tf.GradientTape() as tape:
        logits = tf.cast(model(tf.convert_to_tensor(x), training=True), tf.float32)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.convert_to_tensor(y), logits))
    return weights, tape.gradient(loss, weights)


def grad_norm(model, batch: Batch) -> float:
    """Σ over weight tensors of ‖∂L/∂θ‖₂ (cross-entropy on `batch`)."""
    weights, grads = _loss_gradients(model, batch)
    return float(sum(np.linalg.norm(g.numpy().astype(np.float64)) for g in grads if g is not None))


def snip(model, batch: Batch) -> float:
    """Σ |θ · ∂L/∂θ| (cross-entropy on `batch`)."""
    weights, grads = _loss_gradients(model, batch)
    return float(sum(np.abs(w.numpy().astype(np.float64) * g.numpy()).sum()
                     for w, g in zip(weights, grads) if g is not None))


def synflow(model, batch: Batch) -> float:
    """log Σ |θ · ∂R/∂θ|, R = sum of the output of the |θ| network on an all-ones clip (float64)."""
    import keras
    import tensorflow as tf

    old = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        twin = keras.models.clone_model(model)
    finally:
        keras.config.set_dtype_policy(old)
    # Fresh clone: BatchNorm statistics are at their initial values (mean 0, variance 1).
    for src, dst in zip(model.trainable_variables, twin.trainable_variables):
        dst.assign(np.abs(src.numpy()).astype(np.float64))
    ones = tf.ones((1, *batch[0].shape[1:]), tf.float64)
    weights = twin.trainable_variables
    with tf.GradientTape() as tape:
        r = tf.reduce_sum(twin(ones, training=False))
    grads = tape.gradient(r, weights)
    total = sum(np.abs(w.numpy() * g.numpy()).sum() for w, g in zip(weights, grads) if g is not None)
    return float(math.log(total)) if total > 0 and math.isfinite(total) else -math.inf


def naswot(model, batch: Batch) -> float:
    """log|K|, K = Σ over units of [codes agree], codes = sign patterns of the activations."""
    import tensorflow as tf

    kernel = np.zeros((len(batch[0]),) * 2, np.float64)

    def record(out) -> None:
        c = tf.reshape(tf.cast(out > 0, tf.float64), (tf.shape(out)[0], -1))
        kernel[...] += (tf.matmul(c, c, transpose_b=True) + tf.matmul(1 - c, 1 - c, transpose_b=True)).numpy()

    with _watch_activations(model, record):
        model(tf.convert_to_tensor(batch[0]), training=True)
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else -math.inf


ZERO_COST: dict[str, Callable[[Any, Batch], float]] = dict(zip(ZERO_COST_SCORES, (grad_norm, snip, synflow, naswot)))
"""Every zero-cost score by name: a function (model, (clips, labels)) -> float, higher is better."""


class _watch_activations:
    """Call `record(output)` for every swish / hard-swish / ReLU layer during an eager forward."""

    KINDS = ("swish", "hard_swish", "relu")

    def __init__(self, model, record) -> None:
        from evaluation.compat import all_layers
        from search_space.layers import Act

        self.layers = [layer for layer in all_layers(model) if isinstance(layer, Act) and layer.kind in self.KINDS]
        self.record = record

    def __enter__(self):
        for layer in self.layers:
            inner = layer.call

            def call(inputs, _inner=inner):
                out = _inner(inputs)
                self.record(out)
                return out

            layer.call = call
        return self

    def __exit__(self, *exc) -> None:
        for layer in self.layers:
            del layer.call  # back to the class's method


def check_names(names: Sequence[str], path: str = "names") -> tuple[str, ...]:
    """The zero-cost score names as a tuple; ValueError naming an unknown one and the allowed."""
    if isinstance(names, str):
        names = (names,)
    for name in names:
        if name not in ZERO_COST and name not in BASELINES:
            raise ValueError(f"{path}: {name!r}, allowed: {', '.join((*ZERO_COST, *BASELINES))}")
    return tuple(names)


def zero_cost_scores(
    spec: Any,
    dataset: Any,
    names: Sequence[str] = DEFAULT_NAMES,
    batch_size: int = 8,
    seed: int = 0,
) -> dict[str, float]:
    """Score the untrained `spec` on one minibatch of `dataset`'s training clips.

    Returns ``{name: score}`` for each of `names` plus ``params`` and ``macs`` (always), all
    higher-is-better. The model is built at the data's frames and resolution with the dataset's
    number of classes, weights drawn with `seed` (which seeds the global generators, as
    `train_proxy` does); the minibatch is drawn with `seed` too.
    """
    import keras

    from evaluation.compat import seeded
    from evaluation.proxies.train import input_shape, set_block_scales
    from search_space import build_model, estimate_cost

    names = check_names(names)
    validate.integer(batch_size, "batch_size")
    frames, resolution = input_shape(dataset)
    k = dataset.num_classes
    cost = estimate_cost(spec, frames=frames, resolution=resolution, num_classes=k)
    scores: dict[str, float] = {"params": float(cost.params), "macs": float(cost.macs)}
    wanted = [n for n in names if n in ZERO_COST]
    if not wanted:
        return scores
    n = len(dataset.train.y)
    pick = np.sort(np.random.default_rng(seed).choice(n, size=min(batch_size, n), replace=False))
    batch = (dataset.train.x[pick].astype(np.float32), dataset.train.y[pick].astype(np.int32))
    keras.backend.clear_session()
    with seeded(seed):
        model = build_model(spec.replace(dropout=0.0, stochastic_depth=0.0), num_classes=k,
                            frames=frames, resolution=resolution)
        set_block_scales(model, 1.0)
        for name in wanted:
            scores[name] = ZERO_COST[name](model, batch)
    del model
    keras.backend.clear_session()
    return scores
