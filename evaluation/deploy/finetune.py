"""Fine-tune a pretrained model (`evaluation.deploy.pretrained`) on a video dataset.

`finetune(pretrained, dataset, config, checkpoint)` builds the pretrained spec at the data's frames and
resolution, copies every pretrained weight into it, replaces the classifier when the data's classes are
not the model's, freezes what `config.train` leaves out, and trains with AdamW under a linear warm-up and
cosine decay (`evaluation.proxies.budget.learning_rate_at`), after the MoViNet recipe's augmentation: a
random crop of each clip (area 30–100 %, aspect ratio 1/2–2, the same box on every frame) resized back,
and a random horizontal flip. On a GPU it computes in mixed float16 with loss scaling.

After each epoch every model variable (dropout seed states included), the optimizer's state, the
augmentation's random state and the history are written to `checkpoint` (atomically: a kill leaves the
previous epoch's file). A later call with the same model, data and settings resumes after the last epoch
written; each epoch's clip order depends only on the seed and the epoch, so on a CPU a resumed run ends
with the same weights, bit for bit, as an uninterrupted one.

Stream models fine-tune as their causal base model (the stream model holds the same weights).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from evaluation.compat import forget_custom_gradients, seeded
from evaluation.proxies.budget import Budget, learning_rate_at
from evaluation.proxies.train import PreciseBN, Setup, compiled_steps
from search_space import validate

TRAIN_PARTS = ("head", "last-stages", "all")
HEAD_LAYERS = ("classifier_hidden", "classifier")
HEAD_STAGE_LAYERS = ("head_conv", "head_bn")  # trained with the last stages


@dataclass(frozen=True)
class FinetuneConfig:
    """How a fine-tune trains. `train`: "head" (the two classifier layers), "last-stages" (the blocks of
    the last `last_stages` stages, the head conv and the classifier) or "all". `augment`: random crops;
    `flip`: random horizontal flips too (turn off for data whose labels change with a mirror, such as
    left/right motion). `mixed_precision` None: on when a GPU is present. Checked on construction."""

    epochs: int = 5
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    train: str = "all"
    last_stages: int = 2
    augment: bool = True
    flip: bool = True
    mixed_precision: bool | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train not in TRAIN_PARTS:
            raise ValueError(f"train: {self.train!r}, must be one of {', '.join(TRAIN_PARTS)}")
        validate.integer(self.last_stages, "last_stages", 1)
        validate.integer(self.seed, "seed", 0)
        self.budget()  # the training fields, checked by Budget's own bounds

    def budget(self) -> Budget:
        """The `Budget` of the training fields (the proxy's optimizer and schedule); ValueError naming a
        field out of its bounds."""
        try:
            return Budget(epochs=self.epochs, batch_size=self.batch_size, learning_rate=self.learning_rate,
                          warmup_fraction=self.warmup_fraction, weight_decay=self.weight_decay,
                          label_smoothing=self.label_smoothing, mixed_precision=bool(self.mixed_precision),
                          bn_recalibration=0 if self.train == "head" else 64, stochastic_depth=None,
                          block_scale_init=None)
        except ValueError as exc:
            raise ValueError(str(exc).removeprefix("budget.")) from None


class FinetuneResult(NamedTuple):
    spec: Any  # the pretrained spec with the data's frames and resolution
    model: Any  # the fine-tuned Keras model (base; causal for stream specs)
    class_names: tuple[str, ...]
    history: list[dict]  # one entry per epoch: loss, accuracy, val_loss, val_accuracy
    validation: dict  # `validation_report` of the final model
    resumed_from: int  # epochs found in the checkpoint (0: a fresh start)
    head_replaced: bool
    trainable_params: int


def finetune(pretrained: Any, dataset: Any, config: FinetuneConfig = FinetuneConfig(),
             checkpoint: str | Path | None = None, report: Callable[[str], None] | None = None) -> FinetuneResult:
    """Fine-tune `pretrained` on `dataset` (a `VideoDataset`); see the module docstring. `checkpoint`: the
    file written after each epoch and resumed from (None: no checkpoints). `report(line)` is told of the
    start, each epoch and a resume; a tqdm bar of each epoch's steps (with loss and accuracy) shows on a
    terminal. ValueError for data that cannot be used or a checkpoint of other settings."""
    import keras

    _check_data(dataset)
    gpu = _has_gpu()
    mixed = config.mixed_precision if config.mixed_precision is not None else gpu
    policy = "mixed_float16" if mixed and gpu else ("mixed_bfloat16" if mixed else None)
    setup = Setup(config.budget(), dataset.num_classes, config.seed, False, policy)
    report = report or (lambda line: None)
    keras.backend.clear_session()
    old_policy = keras.config.dtype_policy()
    try:
        if policy:
            keras.config.set_dtype_policy(policy)
        with seeded(config.seed), forget_custom_gradients():
            spec, model, replaced = start_model(pretrained, dataset, config)
            tuner = _Tuner(model, dataset, setup, config)
            try:
                done, history = tuner.resume(checkpoint, fingerprint(pretrained, dataset, config))
                trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
                report(_start_line(spec, dataset, config, done, replaced, trainable))
                for epoch in range(done + 1, config.epochs + 1):
                    history.append(tuner.epoch(epoch))
                    tuner.save(checkpoint, epoch, history)
                    report(_epoch_line(history[-1], config.epochs))
            finally:
                tuner.precise_bn.restore()
            validation = validation_report(tuner.logits(dataset.val.x), dataset.val.y, dataset.class_names)
    finally:
        keras.config.set_dtype_policy(old_policy)
    return FinetuneResult(spec, model, tuple(dataset.class_names), history, validation, done, replaced, trainable)


def start_model(pretrained: Any, dataset: Any, config: FinetuneConfig) -> tuple[Any, Any, bool]:
    """(spec at the data's sizes, model with the pretrained weights and a new classifier where the classes
    differ, whether the classifier was replaced), with the layers `config.train` leaves out frozen."""
    from search_space.builder import build_model

    spec = pretrained.spec.replace(frames=int(dataset.frames), resolution=int(dataset.resolution))
    k = dataset.num_classes
    same = k == pretrained.num_classes and (pretrained.labels is None
                                            or list(pretrained.labels) == list(dataset.class_names))
    model = build_model(spec, num_classes=k, frames=spec.frames, resolution=spec.resolution)
    for w in model.weights:
        fresh_head = not same and w.path.split("/")[0] == "classifier"
        if w.path in pretrained.weights and not fresh_head:
            w.assign(pretrained.weights[w.path])
    for layer in model.layers:
        layer.trainable = _trained(layer.name, spec, config)
    return spec, model, not same


def _trained(name: str, spec: Any, config: FinetuneConfig) -> bool:
    if config.train == "all" or name in HEAD_LAYERS:
        return True
    if config.train == "head":
        return False
    if name in HEAD_STAGE_LAYERS:
        return True
    first = sum(len(st.blocks) for st in spec.stages[: max(len(spec.stages) - config.last_stages, 0)])
    index = name[1:].split("_", 1)[0]
    return name.startswith("b") and index.isdigit() and int(index) >= first


class _Tuner:
    """The training loop's state: pipelines' sizes, compiled steps, optimizer, augmentation generator."""

    def __init__(self, model: Any, dataset: Any, setup: Setup, config: FinetuneConfig) -> None:
        import tensorflow as tf

        self.model, self.dataset, self.setup, self.config = model, dataset, setup, config
        self.fingerprint = ""
        n = len(dataset.train.y)
        self.bs = min(config.batch_size, n)
        self.steps_per_epoch = max(n // self.bs, 1)
        self.generator = tf.random.Generator.from_seed(config.seed)
        augment = (lambda x: crop_and_flip(self.generator, x, config.flip)) if config.augment else None
        self.optimizer, self.train_fn, _ = compiled_steps(model, setup, augment)
        calibration = min(setup.budget.bn_recalibration, n) // self.bs * self.bs
        self.precise_bn = PreciseBN(model, dataset.train.x[:calibration], self.bs, False)
        self.forward = tf.function(lambda x: tf.cast(model(x, training=False), tf.float32), autograph=False,
                                   reduce_retracing=True)

    def epoch(self, epoch: int) -> dict:
        """Train one pass over the training clips in the epoch's order, then validate."""
        from tqdm import tqdm

        train, cfg = self.dataset.train, self.config
        order = np.random.default_rng([cfg.seed, epoch]).permutation(len(train.y))
        total = cfg.epochs * self.steps_per_epoch
        loss_sum = correct = 0.0
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {epoch}/{cfg.epochs}", unit="step", leave=False,
                   disable=None, file=_stderr())
        for i in bar:
            step = (epoch - 1) * self.steps_per_epoch + i
            self.optimizer.learning_rate = learning_rate_at(self.setup.budget, (step + 1) / total)
            idx = order[i * self.bs:(i + 1) * self.bs]
            loss, hits = self.train_fn(train.x[idx], train.y[idx])
            loss_sum, correct = loss_sum + float(loss), correct + float(hits)
            if not math.isfinite(float(loss)):
                raise ValueError(f"training diverged: the loss became {float(loss)} at epoch {epoch}; "
                                 "lower the learning rate")
            bar.set_postfix(loss=f"{loss_sum / (i + 1):.3f}", acc=f"{correct / ((i + 1) * self.bs):.3f}")
        bar.close()
        self.precise_bn.recalibrate()
        logits = self.logits(self.dataset.val.x)
        return {"epoch": epoch, "loss": loss_sum / self.steps_per_epoch,
                "accuracy": correct / (self.steps_per_epoch * self.bs), **_val_metrics(logits, self.dataset.val.y)}

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 logits of clips `x`, in batches of the training batch size (the last one padded)."""
        out = []
        for i in range(0, len(x), self.bs):
            batch = x[i:i + self.bs]
            padded = np.concatenate([batch, np.zeros((self.bs - len(batch), *batch.shape[1:]), batch.dtype)])
            out.append(np.asarray(self.forward(padded))[: len(batch)])
        return np.concatenate(out) if out else np.zeros((0, self.dataset.num_classes), np.float32)

    # -- checkpoints ------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"w/{w.path}": np.asarray(w.numpy()) for w in self.model.variables}  # dropout seed states too
        arrays.update({f"o/{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        arrays["generator"] = self.generator.state.numpy()
        return arrays

    def save(self, checkpoint: str | Path | None, epoch: int, history: list[dict]) -> None:
        if checkpoint is None:
            return
        path = Path(checkpoint)
        meta = json.dumps({"epoch": epoch, "history": history, "fingerprint": self.fingerprint})
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, meta=np.array(meta), **self.state())
        os.replace(tmp, path)  # atomic: a kill leaves the previous epoch's checkpoint whole

    def resume(self, checkpoint: str | Path | None, fingerprint: str) -> tuple[int, list[dict]]:
        """(epochs done, history) from `checkpoint` when it holds this fine-tune, after restoring it;
        (0, []) when there is none. ValueError if it holds another fine-tune or cannot be read."""
        self.fingerprint = fingerprint
        if checkpoint is None or not Path(checkpoint).is_file():
            return 0, []
        try:
            with np.load(checkpoint) as data:
                arrays = {k: data[k] for k in data.files}
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{checkpoint}: not a readable fine-tuning checkpoint ({exc}); delete it to "
                             "start over") from None
        if meta.get("fingerprint") != fingerprint:
            raise ValueError(f"{checkpoint}: a checkpoint of another fine-tune (other model, data or settings); "
                             "delete it or pass --restart to start over")
        self._restore(arrays)
        return int(meta["epoch"]), list(meta["history"])

    def _restore(self, arrays: dict[str, np.ndarray]) -> None:
        for w in self.model.variables:
            if f"w/{w.path}" in arrays:
                w.assign(arrays[f"w/{w.path}"])
        for i, v in enumerate(self.optimizer.variables):
            v.assign(arrays[f"o/{i}"])
        self.generator.state.assign(arrays["generator"])


def crop_and_flip(generator: Any, x: Any, flip: bool) -> Any:
    """MoViNet-style augmentation of a clip batch [B, T, H, W, 3]: per clip a random box of 30–100 % of
    the frame's area and aspect ratio 1/2–2 (the same box on every frame), resized back to H × W, and a
    horizontal flip with probability 1/2 when `flip`."""
    import tensorflow as tf

    shape = tf.shape(x)
    b, t, h, w = shape[0], shape[1], shape[2], shape[3]
    area = generator.uniform([b], 0.3, 1.0)
    aspect = tf.exp(generator.uniform([b], math.log(0.5), math.log(2.0)))
    bh = tf.minimum(tf.sqrt(area / aspect), 1.0)
    bw = tf.minimum(tf.sqrt(area * aspect), 1.0)
    y0 = generator.uniform([b]) * (1.0 - bh)
    x0 = generator.uniform([b]) * (1.0 - bw)
    x1 = x0 + bw
    if flip:  # crop_and_resize mirrors a box whose x1 < x0
        mirror = generator.uniform([b]) < 0.5
        x0, x1 = tf.where(mirror, x1, x0), tf.where(mirror, x0, x1)
    boxes = tf.repeat(tf.stack([y0, x0, y0 + bh, x1], axis=1), t, axis=0)
    frames = tf.reshape(x, tf.stack([b * t, h, w, 3]))
    out = tf.image.crop_and_resize(tf.cast(frames, tf.float32), boxes, tf.range(b * t), tf.stack([h, w]))
    return tf.cast(tf.reshape(out, shape), x.dtype)


def validation_report(logits: np.ndarray, y: np.ndarray, class_names) -> dict:
    """Top-1 (and top-5) accuracy, loss, per-class accuracy and the confusion matrix (rows: true class)."""
    k = len(class_names)
    report = {"clips": int(len(y)), **_val_metrics(logits, y)}
    if k >= 5 and len(y):
        top5 = np.argsort(-logits, axis=1)[:, :5]
        report["val_top5_accuracy"] = float(np.mean([label in row for row, label in zip(top5, y)]))
    confusion = np.zeros((k, k), np.int64)
    if len(y):
        np.add.at(confusion, (y, logits.argmax(1)), 1)
    report["per_class"] = [{"class": str(name), "clips": int(confusion[c].sum()),
                            "accuracy": float(confusion[c, c] / confusion[c].sum()) if confusion[c].sum() else None}
                           for c, name in enumerate(class_names)]
    report["confusion"] = confusion.tolist()
    return report


def fingerprint(pretrained: Any, dataset: Any, config: FinetuneConfig) -> str:
    """What a checkpoint must match to be resumed: the model (spec and weights, wherever it was read from),
    the data's classes and sizes, the settings."""
    weights = hashlib.sha1()
    for path in sorted(pretrained.weights):
        weights.update(path.encode() + np.ascontiguousarray(pretrained.weights[path]).tobytes())
    data = {"model": pretrained.spec.to_dict(), "classes": pretrained.num_classes, "weights": weights.hexdigest(),
            "data": [dataset.name, list(dataset.class_names), dataset.frames, dataset.resolution,
                     len(dataset.train.y), len(dataset.val.y)],
            "config": dataclasses.asdict(config)}
    return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# helpers


def _val_metrics(logits: np.ndarray, y: np.ndarray) -> dict:
    if not len(y):
        return {"val_loss": math.nan, "val_accuracy": math.nan}
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return {"val_loss": float(-log_p[np.arange(len(y)), y].mean()),
            "val_accuracy": float(np.mean(logits.argmax(1) == y))}


def _check_data(dataset: Any) -> None:
    name = getattr(dataset, "name", "?")
    if dataset.num_classes < 2:
        raise ValueError(f"dataset {name!r}: {dataset.num_classes} class, fine-tuning needs at least 2")
    for part in ("train", "val"):
        if len(getattr(dataset, part).y) == 0:
            raise ValueError(f"dataset {name!r}: no {part} clips (give more videos per class, or a validation list)")


def _start_line(spec, dataset, config: FinetuneConfig, done: int, replaced: bool, trainable: int) -> str:
    what = {"head": "the classifier", "last-stages": f"the last {config.last_stages} stages and the head",
            "all": "every layer"}[config.train]
    head = f"a new {dataset.num_classes}-class classifier" if replaced else "its own classifier"
    start = f"resuming after epoch {done} of {config.epochs}" if done else \
        f"{config.epochs} epoch{'s' if config.epochs != 1 else ''}"
    return (f"fine-tuning {spec.name} with {head} on {dataset!r}: {start}, training {what} "
            f"({trainable:,} parameters)")


def _epoch_line(entry: dict, epochs: int) -> str:
    return (f"epoch {entry['epoch']}/{epochs}: loss {entry['loss']:.4f}, accuracy {entry['accuracy']:.3f}, "
            f"val_loss {entry['val_loss']:.4f}, val_accuracy {entry['val_accuracy']:.3f}")


def _has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _stderr():
    import sys

    return sys.stderr
