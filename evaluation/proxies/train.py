"""Proxy training: score a candidate by training it briefly on a dataset.

`train_proxy(spec, dataset, budget)` builds the network at the data's input size, trains it within
a `Budget` (epochs, optimizer steps or wall-clock seconds, whichever ends first) with a custom
loop around a compiled train step, validates after every epoch and reports each epoch to a
callback that may stop the run (pruning). A NaN or infinite loss ends the run with status
`Outcome.FAILED` instead of an exception.

Reproducibility: the run seeds Python's, NumPy's, TensorFlow's and Keras' global random number
generators with `seed` (through `keras.utils.set_random_seed`; Keras draws weight initializers and
dropout masks from these global generators, so there is no narrower way) for the run only
(`evaluation.compat.seeded`): every one is put back as it was when the run ends. On CPU the
same seed, spec and data give identical metrics; seconds-only budgets are the exception, since
their learning-rate schedule follows the clock.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluation.compat import all_layers, forget_custom_gradients, seeded, set_untracked
from evaluation.proxies.budget import Budget, learning_rate_at
from evaluation.results.record import TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS, Outcome

__all__ = ["Budget", "PreciseBN", "ProxyResult", "STATUSES", "forget_custom_gradients", "input_shape", "learning_rate_at",
           "seeded", "set_block_scales", "train_proxy"]

STATUSES = (Outcome.COMPLETE, Outcome.EARLY_STOPPED, Outcome.FAILED, Outcome.INFEASIBLE)  # the outcomes a proxy run has;
# INFEASIBLE: a proxy that cannot score the spec (a table that does not hold it)
DEFAULT_BUDGET = Budget()


@dataclass(frozen=True)
class ProxyResult:
    """Outcome of one proxy run.

    `metrics`: val_accuracy, val_loss (after the last epoch), train_loss, train_accuracy (mean over
    the last epoch), epochs (completed passes, fractional when a step or time limit cut an epoch),
    steps, seconds (whole run, build included), clips_per_second (training steps only, the first,
    which traces the step function, left out).
    `history`: one dict per evaluated epoch (epoch, train_loss, train_accuracy, val_loss,
    val_accuracy, steps, seconds). `reason` says why a run was pruned or failed.
    `model`: the trained Keras model when `train_proxy(..., return_model=True)`.
    """

    status: Outcome  # one of STATUSES
    metrics: dict
    history: tuple[dict, ...] = ()
    reason: str | None = None
    model: Any = field(default=None, compare=False, repr=False)


Callback = Callable[[int, dict], bool]


def set_block_scales(model: Any, value: float) -> None:
    """Set every ReZero block scale (`search_space.layers.LayerScale`) of `model` to `value`."""
    from search_space.layers import LayerScale

    for layer in all_layers(model):
        if isinstance(layer, LayerScale):
            layer.scale.assign(value)


def input_shape(dataset: Any) -> tuple[int, int]:
    """(frames, resolution) of the dataset's clips; clips must be [N, T, S, S, 3]."""
    x = dataset.train.x
    if x.ndim != 5 or x.shape[4] != 3 or x.shape[2] != x.shape[3]:
        raise ValueError(f"dataset {getattr(dataset, 'name', '?')!r}: train clips of shape {x.shape}, "
                         "must be [clips, frames, size, size, 3]")
    return int(x.shape[1]), int(x.shape[2])


def _check_dataset(dataset: Any, num_classes: int) -> None:
    name = getattr(dataset, "name", "?")
    for part in ("train", "val"):
        clips = getattr(dataset, part)
        if len(clips.y) == 0:
            raise ValueError(f"dataset {name!r}: {part} split is empty")
        if len(clips.x) != len(clips.y):
            raise ValueError(f"dataset {name!r}: {part} has {len(clips.x)} clips but {len(clips.y)} labels")
        if clips.x.shape[1:] != dataset.train.x.shape[1:]:
            raise ValueError(f"dataset {name!r}: {part} clips {clips.x.shape[1:]} differ from train "
                             f"clips {dataset.train.x.shape[1:]}")
        top = int(np.max(clips.y))
        if top >= num_classes or int(np.min(clips.y)) < 0:
            raise ValueError(f"dataset {name!r}: {part} label {top} outside [0, {num_classes})")


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def train_proxy(
    spec: Any,
    dataset: Any,
    budget: Budget = DEFAULT_BUDGET,
    *,
    seed: int = 0,
    callback: Callback | None = None,
    num_classes: int | None = None,
    return_model: bool = False,
    depthwise: str = "fast",
    initial_weights: dict | None = None,
) -> ProxyResult:
    """Train `spec` on `dataset` within `budget` and report validation top-1 and loss.

    The model is built for the dataset's frames and resolution (not `spec.frames`/`resolution`)
    with `num_classes` outputs (the dataset's by default) and the budget's stochastic depth. `callback(epoch, metrics)` runs after
    each epoch's validation with that epoch's history entry; returning True stops the run with
    status `Outcome.EARLY_STOPPED`. Keras' session is cleared before the run (and after it unless
    `return_model`), so hundreds of runs in one process do not accumulate memory. `depthwise` picks
    the builder's depthwise-conv implementation ("grouped" only to compare speed).
    `initial_weights` ({variable path: array}, e.g. a supernet sub-network's) replaces the fresh
    initialization of the weights it names: the run fine-tunes them.
    """
    import keras

    if not isinstance(budget, Budget):
        raise TypeError(f"budget: {type(budget).__name__}, must be a Budget")
    k = int(num_classes if num_classes is not None else dataset.num_classes)
    _check_dataset(dataset, k)
    frames, resolution = input_shape(dataset)
    gpu = _has_gpu()
    jit = gpu if budget.jit_compile is None else budget.jit_compile
    policy = ("mixed_float16" if gpu else "mixed_bfloat16") if budget.mixed_precision else None

    if budget.stochastic_depth is not None:
        spec = spec.replace(stochastic_depth=budget.stochastic_depth)
    keras.backend.clear_session()
    start = time.perf_counter()
    old_policy = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        with seeded(seed), forget_custom_gradients():
            from search_space import build_model

            model = build_model(spec, num_classes=k, frames=frames, resolution=resolution, depthwise=depthwise)
            if budget.block_scale_init is not None:
                set_block_scales(model, budget.block_scale_init)
            for w in model.weights if initial_weights else ():
                if w.path in initial_weights:
                    w.assign(initial_weights[w.path])
            result = _fit(model, dataset, budget, k, seed, jit, policy, callback, start)
    finally:
        keras.config.set_dtype_policy(old_policy)
    if return_model:
        return dataclasses.replace(result, model=model)
    del model
    keras.backend.clear_session()
    return result


def _pipelines(dataset: Any, budget: Budget, seed: int):
    import tensorflow as tf

    train = dataset.train
    n = len(train.y)
    bs = min(budget.batch_size, n)
    tr = (tf.data.Dataset.from_tensor_slices((train.x.astype(np.float32, copy=False), train.y.astype(np.int32)))
          .shuffle(n, seed=seed, reshuffle_each_iteration=True)
          .batch(bs, drop_remainder=True)
          .prefetch(tf.data.AUTOTUNE))
    val = dataset.val

    def pad(x, y):  # a full last batch (weight 0 on the padding) keeps the eval step to one trace
        short = bs - tf.shape(y)[0]
        weight = tf.concat([tf.ones_like(y, tf.float32), tf.zeros([short], tf.float32)], 0)
        return tf.pad(x, [[0, short], [0, 0], [0, 0], [0, 0], [0, 0]]), tf.pad(y, [[0, short]]), weight

    va = (tf.data.Dataset.from_tensor_slices((val.x.astype(np.float32, copy=False), val.y.astype(np.int32)))
          .batch(bs)
          .map(tf.autograph.experimental.do_not_convert(pad))
          .prefetch(tf.data.AUTOTUNE))
    return tr, va, n // bs, bs


def _fit(model, dataset, budget: Budget, k: int, seed: int, jit: bool, policy: str | None,
         callback: Callback | None, start: float) -> ProxyResult:

    train_ds, val_ds, steps_per_epoch, bs = _pipelines(dataset, budget, seed)
    planned = [x for x in (budget.steps, budget.epochs and budget.epochs * steps_per_epoch) if x]
    total = min(planned) if planned else None
    max_epochs = budget.epochs if budget.epochs is not None else math.inf
    optimizer, train_fn, eval_fn = _steps(model, budget, k, seed, jit, policy)
    calibration = min(max(budget.bn_recalibration // bs, 1), steps_per_epoch) * bs if budget.bn_recalibration else 0
    precise_bn = PreciseBN(model, dataset.train.x[:calibration], bs, jit)

    history: list[dict] = []
    step = epoch = train_clips = 0
    train_seconds = 0.0
    status, reason = Outcome.COMPLETE, None
    t_loop = time.perf_counter()
    done = False
    try:
        while not done and epoch < max_epochs:
            epoch += 1
            loss_sum = correct_sum = 0.0
            n_steps = 0
            t_epoch = time.perf_counter()
            for x, y in train_ds:
                progress = (step + 1) / total if total else (time.perf_counter() - t_loop) / budget.seconds
                optimizer.learning_rate = learning_rate_at(budget, progress)
                loss, correct = train_fn(x, y)
                loss = float(loss)
                step += 1
                n_steps += 1
                if not math.isfinite(loss):
                    what = "NaN" if math.isnan(loss) else "infinite"
                    status, reason = Outcome.FAILED, f"loss became {what} at epoch {epoch} step {step}"
                    break
                loss_sum += loss
                correct_sum += float(correct)
                if step == 1:  # leave the tracing step out of the throughput
                    t_epoch = time.perf_counter()
                    train_clips -= bs
                if (budget.steps and step >= budget.steps) or (
                        budget.seconds and time.perf_counter() - t_loop >= budget.seconds):
                    done = True
                    break
            train_seconds += time.perf_counter() - t_epoch
            train_clips += n_steps * bs
            if status is Outcome.FAILED:
                break
            precise_bn.recalibrate()
            val_loss, val_acc = _evaluate(eval_fn, val_ds, len(dataset.val.y))
            if not math.isfinite(val_loss):
                status, reason = Outcome.FAILED, f"validation loss became NaN at epoch {epoch} step {step}"
                break
            entry = {
                "epoch": epoch,
                TRAIN_LOSS: loss_sum / max(n_steps, 1),
                TRAIN_ACCURACY: correct_sum / max(n_steps * bs, 1),
                VAL_LOSS: val_loss,
                VAL_ACCURACY: val_acc,
                "steps": step,
                "seconds": time.perf_counter() - start,
            }
            history.append(entry)
            if callback is not None and callback(epoch, dict(entry)):
                status, reason = Outcome.EARLY_STOPPED, f"stopped by the callback after epoch {epoch}"
                break
    finally:
        precise_bn.restore()

    last = history[-1] if history else {}
    metrics = {name: last.get(name, math.nan)
               for name in (VAL_ACCURACY, VAL_LOSS, TRAIN_LOSS, TRAIN_ACCURACY)}
    metrics.update(
        epochs=step / steps_per_epoch,
        steps=step,
        seconds=time.perf_counter() - start,
        clips_per_second=train_clips / train_seconds if train_seconds > 0 else 0.0,
    )
    return ProxyResult(status=status, metrics=metrics, history=tuple(history), reason=reason)


def _steps(model, budget: Budget, k: int, seed: int, jit: bool, policy: str | None):
    """(optimizer, compiled train step, compiled eval step) for `model`."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_at(budget, 0.0), weight_decay=budget.weight_decay,
        global_clipnorm=budget.grad_clip)
    scaling = policy == "mixed_float16"
    if scaling:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    weights = model.trainable_variables
    optimizer.build(weights)
    smooth = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=budget.label_smoothing)
    jitter = tf.random.Generator.from_seed(seed) if budget.augment else None

    def train_step(x, y):
        if jitter is not None:
            x = _photometric_jitter(jitter, x)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(x, training=True), tf.float32)
            loss = smooth(tf.one_hot(y, k), logits)
            if model.losses:
                loss += tf.add_n(model.losses)
            scaled = optimizer.scale_loss(loss) if scaling else loss
        grads = tape.gradient(scaled, weights)
        optimizer.apply_gradients(zip(grads, weights))
        return loss, _correct(logits, y)

    def eval_step(x, y, weight):
        logits = tf.cast(model(x, training=False), tf.float32)
        ce = tf.reduce_sum(weight * tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        return ce, _correct(logits, y, weight)

    return (optimizer, tf.function(train_step, jit_compile=jit, reduce_retracing=True, autograph=False),
            tf.function(eval_step, jit_compile=jit, reduce_retracing=True, autograph=False))


class PreciseBN:
    """Recompute every BatchNorm's moving statistics as the plain average over a few training
    batches under the current weights.

    All BatchNorm layers read their momentum from one shared variable during the run: the layer's
    own value while training, then (i - 1) / i on calibration batch i, which turns the moving
    average into a cumulative one. The layers get their float momentum back in `restore`.
    """

    def __init__(self, model, clips: np.ndarray, batch_size: int, jit: bool) -> None:
        import keras
        import tensorflow as tf

        self.layers = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
        self.momenta = [layer.momentum for layer in self.layers]
        self.batches = [clips[i: i + batch_size] for i in range(0, len(clips), batch_size)]  # all full
        if not self.layers or not self.batches:
            self.batches = []
            return
        self.momentum = tf.Variable(float(self.momenta[0]), trainable=False, dtype=tf.float32)
        for layer in self.layers:
            set_untracked(layer, "momentum", self.momentum)  # not a weight of the layer
        self.forward = tf.function(lambda x: model(x, training=True), jit_compile=jit, autograph=False)

    def recalibrate(self) -> None:
        if not self.batches:
            return
        training_momentum = self.momentum.numpy()
        for i, x in enumerate(self.batches, start=1):
            self.momentum.assign((i - 1) / i)
            self.forward(x)
        self.momentum.assign(training_momentum)

    def restore(self) -> None:
        for layer, m in zip(self.layers, self.momenta):
            set_untracked(layer, "momentum", m)


def _correct(logits, y, weight=None):
    import tensorflow as tf

    hit = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), y), tf.float32)
    return tf.reduce_sum(hit if weight is None else hit * weight)


def _evaluate(eval_fn, val_ds, n: int) -> tuple[float, float]:
    loss_sum = correct = 0.0
    for x, y, weight in val_ds:
        ls, c = eval_fn(x, y, weight)
        loss_sum += float(ls)
        correct += float(c)
    return loss_sum / n, correct / n


def _photometric_jitter(gen, x):
    """Per-clip brightness (±0.1) and contrast (×0.8–1.2) around the clip mean, clipped to [0, 1]."""
    import tensorflow as tf

    shape = tf.stack([tf.shape(x)[0], 1, 1, 1, 1])
    brightness = gen.uniform(shape, -0.1, 0.1)
    contrast = gen.uniform(shape, 0.8, 1.2)
    mean = tf.reduce_mean(x, axis=[1, 2, 3, 4], keepdims=True)
    return tf.clip_by_value((x - mean) * contrast + mean + brightness, 0.0, 1.0)
