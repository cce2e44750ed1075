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

__all__ = ["Budget", "BuildOptions", "PreciseBN", "ProxyResult", "STATUSES", "Setup", "compiled_steps",
           "forget_custom_gradients", "input_shape", "learning_rate_at", "seeded", "set_block_scales", "train_proxy"]

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


@dataclass(frozen=True)
class BuildOptions:
    """How `train_proxy` builds the model: `depthwise` picks the builder's depthwise-conv implementation
    ("grouped" only to compare speed); `initial_weights` ({variable path: array}, e.g. a supernet
    sub-network's, or a function of the built model returning one, e.g. a pretrained model's nested
    weights) replace the fresh initialization of the weights they name, so the run fine-tunes them."""

    depthwise: str = "fast"
    initial_weights: dict | Callable[[Any], dict] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Setup:
    """What travels from `train_proxy` into the training loop: the budget, the class count, the seed,
    XLA on or off, and the dtype policy (None: float32)."""

    budget: Budget
    num_classes: int
    seed: int
    jit: bool
    policy: str | None


def train_proxy(
    spec: Any,
    dataset: Any,
    budget: Budget = DEFAULT_BUDGET,
    *,
    seed: int = 0,
    callback: Callback | None = None,
    num_classes: int | None = None,
    return_model: bool = False,
    build: BuildOptions | None = None,
) -> ProxyResult:
    """Train `spec` on `dataset` within `budget` and report validation top-1 and loss.

    The model is built for the dataset's frames and resolution (not `spec.frames`/`resolution`)
    with `num_classes` outputs (the dataset's by default) and the budget's stochastic depth. `callback(epoch, metrics)` runs after
    each epoch's validation with that epoch's history entry; returning True stops the run with
    status `Outcome.EARLY_STOPPED`. Keras' session is cleared before the run (and after it unless
    `return_model`), so hundreds of runs in one process do not accumulate memory. `build`
    (`BuildOptions`): the depthwise-conv implementation and the weights the run starts from.
    """
    import keras

    if not isinstance(budget, Budget):
        raise TypeError(f"budget: {type(budget).__name__}, must be a Budget")
    build = build or BuildOptions()
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

            model = build_model(spec, num_classes=k, frames=frames, resolution=resolution, depthwise=build.depthwise)
            if budget.block_scale_init is not None:
                set_block_scales(model, budget.block_scale_init)
            initial = build.initial_weights
            initial = initial(model) if callable(initial) else initial
            for w in model.weights if initial else ():
                if w.path in initial:
                    w.assign(initial[w.path])
            result = _fit(model, dataset, Setup(budget, k, seed, jit, policy), callback, start)
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


class _Loop:
    """One proxy run's training loop: its pipelines, compiled steps and precise-BN pass, and the
    counters the epochs advance (optimizer steps, timed training clips and seconds)."""

    def __init__(self, model, dataset: Any, setup: Setup) -> None:
        budget = setup.budget
        self.dataset, self.budget = dataset, budget
        self.train_ds, self.val_ds, self.steps_per_epoch, self.bs = _pipelines(dataset, budget, setup.seed)
        planned = [x for x in (budget.steps, budget.epochs and budget.epochs * self.steps_per_epoch) if x]
        self.total = min(planned) if planned else None
        self.optimizer, self.train_fn, self.eval_fn = compiled_steps(model, setup)
        bs = self.bs
        calibration = min(max(budget.bn_recalibration // bs, 1), self.steps_per_epoch) * bs \
            if budget.bn_recalibration else 0
        self.precise_bn = PreciseBN(model, dataset.train.x[:calibration], bs, setup.jit)
        self.step = self.train_clips = 0
        self.train_seconds = 0.0
        self.t_loop = time.perf_counter()
        self.done = False

    def train_epoch(self, epoch: int) -> tuple[float, float, int, str | None]:
        """(loss sum, correct sum, steps, failure reason or None) of one pass over the training clips,
        cut short by the step or time limit (which sets `done`)."""
        budget = self.budget
        loss_sum = correct_sum = 0.0
        n_steps = 0
        reason = None
        t_epoch = time.perf_counter()
        for x, y in self.train_ds:
            progress = (self.step + 1) / self.total if self.total else \
                (time.perf_counter() - self.t_loop) / budget.seconds
            self.optimizer.learning_rate = learning_rate_at(budget, progress)
            loss, correct = self.train_fn(x, y)
            loss = float(loss)
            self.step += 1
            n_steps += 1
            if not math.isfinite(loss):
                what = "NaN" if math.isnan(loss) else "infinite"
                reason = f"loss became {what} at epoch {epoch} step {self.step}"
                break
            loss_sum += loss
            correct_sum += float(correct)
            if self.step == 1:  # leave the tracing step out of the throughput
                t_epoch = time.perf_counter()
                self.train_clips -= self.bs
            if (budget.steps and self.step >= budget.steps) or (
                    budget.seconds and time.perf_counter() - self.t_loop >= budget.seconds):
                self.done = True
                break
        self.train_seconds += time.perf_counter() - t_epoch
        self.train_clips += n_steps * self.bs
        return loss_sum, correct_sum, n_steps, reason

    def epoch(self, epoch: int, start: float) -> tuple[dict | None, str | None]:
        """(history entry, None) of one epoch trained and validated, or (None, why it failed)."""
        loss_sum, correct_sum, n_steps, reason = self.train_epoch(epoch)
        if reason is not None:
            return None, reason
        self.precise_bn.recalibrate()
        val_loss, val_acc = _evaluate(self.eval_fn, self.val_ds, len(self.dataset.val.y))
        if not math.isfinite(val_loss):
            return None, f"validation loss became NaN at epoch {epoch} step {self.step}"
        return {
            "epoch": epoch,
            TRAIN_LOSS: loss_sum / max(n_steps, 1),
            TRAIN_ACCURACY: correct_sum / max(n_steps * self.bs, 1),
            VAL_LOSS: val_loss,
            VAL_ACCURACY: val_acc,
            "steps": self.step,
            "seconds": time.perf_counter() - start,
        }, None


def _fit(model, dataset, setup: Setup, callback: Callback | None, start: float) -> ProxyResult:
    loop = _Loop(model, dataset, setup)
    budget = setup.budget
    max_epochs = budget.epochs if budget.epochs is not None else math.inf
    history: list[dict] = []
    status, reason = Outcome.COMPLETE, None
    epoch = 0
    try:
        while not loop.done and epoch < max_epochs:
            epoch += 1
            entry, reason = loop.epoch(epoch, start)
            if entry is None:
                status = Outcome.FAILED
                break
            history.append(entry)
            if callback is not None and callback(epoch, dict(entry)):
                status, reason = Outcome.EARLY_STOPPED, f"stopped by the callback after epoch {epoch}"
                break
    finally:
        loop.precise_bn.restore()

    last = history[-1] if history else {}
    metrics = {name: last.get(name, math.nan)
               for name in (VAL_ACCURACY, VAL_LOSS, TRAIN_LOSS, TRAIN_ACCURACY)}
    metrics.update(
        epochs=loop.step / loop.steps_per_epoch,
        steps=loop.step,
        seconds=time.perf_counter() - start,
        clips_per_second=loop.train_clips / loop.train_seconds if loop.train_seconds > 0 else 0.0,
    )
    return ProxyResult(status=status, metrics=metrics, history=tuple(history), reason=reason)


def compiled_steps(model, setup: Setup, augment: Callable | None = None):
    """(optimizer, compiled train step, compiled eval step) for `model`: AdamW on its trainable variables
    (loss scaling under mixed_float16), label smoothing, the budget's photometric jitter; `augment(x)`,
    when given, transforms each training batch first (fine-tuning's crops and flips)."""
    import keras
    import tensorflow as tf

    budget, k, seed, jit, policy = setup.budget, setup.num_classes, setup.seed, setup.jit, setup.policy
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
        if augment is not None:
            x = augment(x)
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
