"""One-shot training of a `search_space.supernet.Supernet`: sandwich rule, in-place distillation,
optional progressive shrinking, `tf.distribute`, checkpoints that survive SIGKILL.

Each step trains the largest, the smallest and `random_subnets` random sub-networks on one batch and
makes one optimizer update (AdamW, warm-up then cosine, global-norm clipping) with the sum of their
gradients. The largest learns from the labels (label smoothing), the others from its softmax of the
same step (gradient stopped) when `distill`. Sub-networks are drawn from a generator seeded by
(seed, step), so every replica, every worker and a resumed run draw the same ones; the batch order
is a permutation seeded by (seed, epoch); dropout masks are seeded by (seed, step, sub-network).
A resumed run therefore continues exactly where the last checkpoint left it.

One step function (`train._step`) serves both forward passes: sub-networks that run as masks on
the envelope go through one traced step (one trace per number of passes, any input size), the others
run it eagerly on their sliced weights (tracing each would cost more than it saves). Under a
`tf.distribute` strategy the step runs on every replica (its share of the
batch), gradients are summed across replicas in cross-replica context and applied once; the same
code serves MirroredStrategy on one machine and MultiWorkerMirroredStrategy across machines, where
every worker reads the checkpoint and only the chief writes it.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.proxies.budget import Budget, check_optimizer

FORMAT = "movinas-supernet-1"
STRATEGIES = ("default", "mirrored", "multi_worker")
PHASES = ("largest", "kernel", "depth", "width")  # progressive shrinking: what becomes elastic, in order


@dataclass(frozen=True)
class SupernetConfig:
    """The `supernet:` section of a search config (defaults documented in docs/oneshot.md)."""

    steps: int = 300
    batch_size: int = Budget.batch_size  # the training fields shared with Budget take its defaults
    random_subnets: int = 2
    learning_rate: float = Budget.learning_rate
    warmup_fraction: float = Budget.warmup_fraction
    weight_decay: float = Budget.weight_decay
    grad_clip: float | None = Budget.grad_clip
    label_smoothing: float = Budget.label_smoothing
    distill: bool = True
    progressive: bool = False
    block_scale_init: float | None = Budget.block_scale_init
    checkpoint: str = "supernet.npz"  # relative to the study folder results/<study>/
    checkpoint_every: int = 25
    recalibration_clips: int = 64  # training clips for BN recalibration of a scored sub-network
    val_clips: int | None = None  # validation clips scored (None: all)
    strategy: str = "default"
    mixed_precision: bool | None = None  # None: on with a GPU


def parse_supernet(value: Any, path: str = "supernet") -> SupernetConfig:
    """A `SupernetConfig` from a mapping; unknown or bad fields raise ValueError naming `path.field`."""
    if value is None:
        return SupernetConfig()
    if not isinstance(value, dict):
        raise ValueError(f"{path}: {value!r}, must be a mapping of supernet fields")
    names = [f.name for f in fields(SupernetConfig)]
    for key in value:
        if key not in names:
            raise ValueError(f"{path}.{key}: unknown field, allowed: {', '.join(names)}")
    from search_space import validate as check  # one wording for every config error

    v = {**asdict(SupernetConfig()), **value}
    for name in ("steps", "checkpoint_every"):
        check.integer(v[name], f"{path}.{name}", 1)
    for name in ("random_subnets", "recalibration_clips"):
        check.integer(v[name], f"{path}.{name}", 0)
    check.integer(v["val_clips"], f"{path}.val_clips", 1, optional=True)
    check_optimizer(v, path)  # the bounds a proxy budget's same fields have
    for name in ("distill", "progressive"):
        check.boolean(v[name], f"{path}.{name}")
    if v["mixed_precision"] is not None:
        check.boolean(v["mixed_precision"], f"{path}.mixed_precision")
    check.choice(v["strategy"], f"{path}.strategy", STRATEGIES)
    if not isinstance(v["checkpoint"], str) or not v["checkpoint"].strip():
        raise ValueError(f"{path}.checkpoint: {check.quote(v['checkpoint'])}, must be a file path (relative "
                         "paths are inside the study folder)")
    return SupernetConfig(**v)


# ---------------------------------------------------------------------------------------------
# checkpoints: one .npz file (weights by path, optimizer slots by index, metadata), replaced atomically


def save_checkpoint(path: Path, net: Any, optimizer: Any, step: int, meta: dict) -> None:
    arrays = {f"w/{k}": np.asarray(v.numpy()) for k, v in net.variables.items()}
    if optimizer is not None:
        arrays.update({f"o/{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)})
    info = {**meta, "format": FORMAT, "step": int(step), "space": net.space.to_dict(),
            "num_classes": net.num_classes}
    arrays["meta"] = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> tuple[dict, dict]:
    """(metadata, arrays) of a supernet checkpoint; ValueError naming the file when it is not one."""
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such supernet checkpoint")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(bytes(arrays.pop("meta")).decode())
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable supernet checkpoint ({type(exc).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a movinas supernet checkpoint (format {meta.get('format')!r})")
    return meta, arrays


def check_same_space(path: Path, meta: dict, space: Any, num_classes: int) -> None:
    from search_space import SearchSpace

    theirs = SearchSpace.from_dict(meta["space"])
    if theirs != space:
        diff = "; ".join(theirs.diff(space)[:3])
        raise ValueError(f"{path}: a supernet of space {theirs.name!r}, not of this config's space "
                         f"{space.name!r} ({diff})")
    if meta["num_classes"] != num_classes:
        raise ValueError(f"{path}: a supernet of {meta['num_classes']} classes, this dataset has {num_classes}")


def restore(path: Path, meta: dict, arrays: dict, net: Any, optimizer: Any = None) -> int:
    """Load weights (and optimizer slots) into `net`; the checkpoint's step."""
    for k, v in net.variables.items():
        a = arrays.get(f"w/{k}")
        if a is None or tuple(a.shape) != tuple(v.shape):
            raise ValueError(f"{path}: weight {k} missing or of another shape; not a checkpoint of this supernet")
        v.assign(a)
    if optimizer is not None:
        for i, v in enumerate(optimizer.variables):
            a = arrays.get(f"o/{i}")
            if a is None or tuple(a.shape) != tuple(v.shape):
                raise ValueError(f"{path}: optimizer slot {i} missing or of another shape")
            v.assign(a)
    return int(meta["step"])


def load_supernet(path: str | Path, space: Any = None, num_classes: int | None = None) -> Any:
    """The trained `Supernet` of checkpoint `path` (read only). With `space` / `num_classes`, refuse a
    checkpoint of another space or class count."""
    from search_space import SearchSpace
    from search_space.supernet import Supernet

    path = Path(path)
    meta, arrays = read_checkpoint(path)
    theirs = SearchSpace.from_dict(meta["space"])
    if space is not None:
        check_same_space(path, meta, space, num_classes if num_classes is not None else meta["num_classes"])
    net = Supernet(theirs, meta["num_classes"], block_scale_init=None)
    restore(path, meta, arrays, net)
    net.meta = meta
    return net


# ---------------------------------------------------------------------------------------------
# sampling


def _axis_phase(name: str) -> int:
    if name.endswith("_kernel"):
        return 1
    if name.endswith("_depth"):
        return 2
    return 3


def sandwich(net: Any, config: SupernetConfig, seed: int, step: int) -> list:
    """The sub-networks of `step`: largest, smallest, then `random_subnets` random ones (the same on
    every replica and worker). With `progressive`, axes become elastic phase by phase over the run
    (kernel, then depth, then widths and input size); in the first quarter only the largest trains."""
    from search_space.supernet import extreme_params

    space = net.space
    phase = min(int(4 * step / config.steps), 3) if config.progressive else 3
    if phase == 0:
        return [net.largest]
    top, low = extreme_params(space, True), extreme_params(space, False)
    choices = space.param_choices()
    rng = random.Random(seed * 1_000_003 + step)

    def point(pick) -> dict:
        return {k: (pick(k) if _axis_phase(k) <= phase else top[k]) for k in choices}

    out = [net.largest, space.decode(point(lambda k: low[k]), name="smallest")]
    for i in range(config.random_subnets):
        out.append(space.decode(point(lambda k: choices[k][rng.randrange(len(choices[k]))]), name=f"random{i}"))
    return out


def batch_indices(n: int, batch: int, seed: int, step: int) -> np.ndarray:
    per_epoch = max(n // batch, 1)
    epoch, k = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return order[k * batch:(k + 1) * batch]


def fit_input(x: Any, frames: Any, resolution: Any) -> Any:
    """Clips [B, T, S, S, 3] at the largest input → `frames` (evenly spaced, rounded) at `resolution`
    (antialiased bilinear). Python ints or scalar tensors: a traced step takes any size in one trace."""
    import tensorflow as tf

    t, s = int(x.shape[1]), int(x.shape[2])
    idx = tf.cast(tf.round(tf.linspace(0.0, float(t - 1), tf.cast(frames, tf.int32))), tf.int32)
    x = tf.gather(x, idx, axis=1)
    r = tf.cast(resolution, tf.int32)

    def resize():
        b, f = tf.shape(x)[0], tf.shape(x)[1]
        y = tf.image.resize(tf.reshape(x, [-1, s, s, 3]), tf.stack([r, r]), antialias=True)
        return tf.reshape(y, tf.stack([b, f, r, r, 3]))

    if isinstance(resolution, int):
        return x if resolution == s else resize()
    return tf.cond(tf.equal(r, s), lambda: tf.reshape(x, tf.stack([tf.shape(x)[0], tf.shape(x)[1], r, r, 3])),
                   resize)


__all__ = ["FORMAT", "PHASES", "STRATEGIES", "SupernetConfig", "batch_indices", "check_same_space", "fit_input",
           "load_supernet", "parse_supernet", "read_checkpoint", "restore", "sandwich", "save_checkpoint"]
