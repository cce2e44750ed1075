"""`train_supernet`: the one-shot training loop (see evaluation/oneshot/supernet.py for the rules it follows)."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.oneshot.supernet import (
    SupernetConfig,
    batch_indices,
    check_same_space,
    fit_input,
    read_checkpoint,
    restore,
    sandwich,
    save_checkpoint,
)
from evaluation.proxies.budget import learning_rate_at


def make_strategy(name: str, devices: list[str] | None = None) -> Any:
    """`default` (one device), `mirrored` (every GPU of this machine, else every logical CPU, or
    `devices`), `multi_worker` (TF_CONFIG names the cluster)."""
    import tensorflow as tf

    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


@dataclass(frozen=True)
class Progress:
    """What a training run reports as it goes: a progress bar (`bar`), `on_step(step)` after every step
    (and its checkpoint, when one is due; an exception it raises stops training there, and a rerun
    resumes from the last checkpoint) and `log(line)` for each checkpoint written."""

    bar: bool = True
    on_step: Callable[[int], None] | None = None
    log: Callable[[str], None] | None = None


@dataclass(frozen=True)
class Run:
    """What every step of one training run reads, made once by `train_supernet`."""

    net: Any  # search_space.supernet.Supernet
    optimizer: Any
    strategy: Any
    config: SupernetConfig
    seed: int
    largest_masks: list | None  # None: the largest cannot run as masks, so every pass runs sliced
    traced: dict = field(default_factory=dict)  # traced masked steps by number of passes; the update

    @property
    def weights(self) -> list:
        """The trainable shared weights, in the optimizer's order."""
        return self.net.trainable

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync


def train_supernet(space: Any, dataset: Any, config: SupernetConfig, checkpoint: str | Path, *, seed: int = 0,
                   num_classes: int | None = None, strategy: Any = None, progress: bool | Progress = True) -> dict:
    """Train (or resume) the supernet of `space` on `dataset`; checkpoints go to `checkpoint`.

    `progress`: a `Progress`, or a bool for the bar alone. Returns a summary: steps run now, final step,
    seconds per step, last losses, whether this process is the chief (under MultiWorkerMirroredStrategy
    only the chief writes `checkpoint`). An existing checkpoint of another space or class count, or
    workers that read different checkpoints, raise ValueError; the file is left as it is.
    """
    import keras
    import tensorflow as tf

    checkpoint = Path(checkpoint)
    progress = progress if isinstance(progress, Progress) else Progress(bar=bool(progress))
    k = num_classes or int(getattr(dataset, "num_classes", 0) or 0) or int(dataset.train.y.max()) + 1
    strategy = strategy or tf.distribute.get_strategy()
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"supernet.batch_size: {config.batch_size}, must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas")
    chief = bool(strategy.extended.should_checkpoint)  # MultiWorkerMirroredStrategy: only task 0 writes
    meta = arrays = None
    if checkpoint.exists():
        meta, arrays = read_checkpoint(checkpoint)
        check_same_space(checkpoint, meta, space, k)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    mixed = gpu if config.mixed_precision is None else config.mixed_precision
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed and gpu else ("mixed_bfloat16" if mixed else "float32"))
    try:
        from evaluation.compat import forget_custom_gradients

        run = _setup(space, k, config, seed, strategy, loss_scale=mixed and gpu)
        start = restore(checkpoint, meta, arrays, run.net, run.optimizer) if meta is not None else 0
        _check_same_start(strategy, checkpoint, start, _digest(arrays) if arrays is not None else 0)
        with forget_custom_gradients():  # a resumed or repeated run in one process frees its graphs
            summary = _loop(run, dataset, checkpoint, start, progress if chief else
                            Progress(False, progress.on_step, progress.log))
        return {**summary, "chief": chief, "worker": _task(strategy)}
    finally:
        keras.config.set_dtype_policy(policy)


def _setup(space: Any, num_classes: int, config: SupernetConfig, seed: int, strategy: Any, loss_scale: bool) -> Run:
    """The supernet and its optimizer, made under `strategy`'s scope with the same initial weights for
    the same seed."""
    import keras

    from evaluation.compat import seeded
    from search_space.supernet import Supernet

    with strategy.scope(), seeded(seed):
        net = Supernet(space, num_classes, block_scale_init=config.block_scale_init)
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate_at(config, 0.0),
                                           weight_decay=config.weight_decay, global_clipnorm=config.grad_clip)
        if loss_scale:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(net.trainable)
    return Run(net, optimizer, strategy, config, seed, net.masks(net.largest))


def _task(strategy) -> str:
    """This worker's task in a MultiWorkerMirroredStrategy cluster (`worker 1`); `worker 0` otherwise."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return f"{getattr(resolver, 'task_type', None) or 'worker'} {int(getattr(resolver, 'task_id', None) or 0)}"


def _digest(arrays: dict) -> int:
    """CRC-32 of a checkpoint's arrays: equal on every worker that read the same file."""
    crc = 0
    for key in sorted(arrays):
        crc = zlib.crc32(np.ascontiguousarray(arrays[key]).tobytes(), zlib.crc32(key.encode(), crc))
    return crc


def _check_same_start(strategy, checkpoint, start: int, digest: int) -> None:
    """Every worker resumes at the same step from the same checkpoint (one gather across replicas);
    otherwise every worker raises the same ValueError instead of training out of step."""
    import tensorflow as tf

    mine = tf.constant([[start, digest]], tf.float64)  # exact: steps and a 32-bit CRC
    seen = strategy.gather(strategy.experimental_distribute_values_from_function(lambda _: mine), axis=0)
    seen = np.asarray(seen.numpy(), dtype=np.int64)
    if (seen != seen[:1]).any():
        steps = ", ".join(str(int(v)) for v in seen[:, 0])
        raise ValueError(f"{checkpoint}: the workers read different checkpoints (steps {steps} per replica); "
                         "every worker must read the chief's checkpoint (a file system they share)")


def _loop(run: Run, dataset: Any, checkpoint: Path, start: int, progress: Progress) -> dict:
    """Steps `start`..`config.steps` with their checkpoints (the chief's: `progress.log` set or not)."""
    from tqdm.auto import tqdm

    from search_space import estimate_cost

    config, net = run.config, run.net
    chief = bool(run.strategy.extended.should_checkpoint)
    meta = {"steps": config.steps, "seed": run.seed}
    bar = tqdm(total=config.steps, initial=start, disable=not progress.bar, desc="supernet", unit="step",
               dynamic_ncols=True)
    seen, t0, losses, sizes, times = 0, time.perf_counter(), [], [], []
    for step in range(start, config.steps):
        t_step = time.perf_counter()
        subnets, losses = _train_step(run, dataset, step)
        times.append(time.perf_counter() - t_step)
        sizes = [estimate_cost(s, num_classes=net.num_classes).params for s in subnets]
        seen += 1
        bar.set_postfix_str(" ".join(f"{s / 1e3:.0f}k:{v:.3f}" for s, v in zip(sizes, losses)))
        bar.update(1)
        if chief and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            save_checkpoint(checkpoint, net, run.optimizer, step + 1, meta)
            if progress.log is not None:
                progress.log(f"checkpoint {checkpoint} at step {step + 1}")
        if progress.on_step is not None:
            progress.on_step(step + 1)
    bar.close()
    seconds = time.perf_counter() - t0
    if chief and start >= config.steps and not checkpoint.exists():
        save_checkpoint(checkpoint, net, run.optimizer, start, meta)
    return {"steps_run": seen, "step": max(start, config.steps), "seconds": seconds,
            "seconds_per_step": seconds / seen if seen else None, "losses": losses, "sizes": sizes,
            "step_seconds": times, "replicas": run.replicas, "net": net}


def _train_step(run: Run, dataset: Any, step: int) -> tuple[list, list[float]]:
    """One optimizer update: the sandwich of `step` on its batch, the passes that run as masks in one
    traced step and the others sliced, their gradients summed. (sub-networks, their losses)."""
    import tensorflow as tf

    net, config = run.net, run.config
    subnets = sandwich(net, config, run.seed, step)
    masks = [net.masks(s) for s in subnets] if run.largest_masks is not None else [None] * len(subnets)
    graph = [i for i, m in enumerate(masks) if m is not None]
    eager = [i for i, m in enumerate(masks) if m is None]
    dx, dy = _batch(run, dataset, step)
    run.optimizer.learning_rate.assign(learning_rate_at(config, step / config.steps))
    seeds = tf.constant([[run.seed, step, i] for i in range(len(subnets))], tf.int64)
    grads, out = None, {}
    if graph:
        if len(graph) not in run.traced:
            run.traced[len(graph)] = _masked_step(run)
        sizes = tf.constant([[subnets[i].frames, subnets[i].resolution] for i in graph], tf.int32)
        grads, losses, stats = run.traced[len(graph)](dx, dy, [[tf.constant(a) for a in masks[i]] for i in graph],
                                                      tf.gather(seeds, graph), sizes)
        out.update(zip(graph, losses))
        net.write_envelope_statistics(stats)
    if eager:
        more, losses, _ = _sliced_step(run, dx, dy, [subnets[i] for i in eager], tf.gather(seeds, eager))
        out.update(zip(eager, losses))
        grads = more if grads is None else [a + b for a, b in zip(grads, more)]
    if "update" not in run.traced:
        run.traced["update"] = tf.function(lambda g: run.optimizer.apply_gradients(zip(g, run.weights)),
                                           autograph=False)
    run.traced["update"](grads)
    losses = [float(out[i]) for i in range(len(subnets))]
    if not all(np.isfinite(losses)):
        raise FloatingPointError(f"supernet step {step}: loss {losses}, not finite; lower supernet.learning_rate")
    return subnets, losses


def _batch(run: Run, dataset: Any, step: int) -> tuple[Any, Any]:
    """The clips and labels of `step`, split across the replicas."""
    x_all, y_all = dataset.train.x, dataset.train.y.astype(np.int32)
    n, replicas = len(y_all), run.replicas
    idx = batch_indices(n, min(run.config.batch_size, n - n % replicas) or replicas, run.seed, step)
    xs = np.array_split(x_all[idx].astype(np.float32), replicas)
    ys = np.array_split(y_all[idx], replicas)
    distribute = run.strategy.experimental_distribute_values_from_function
    return (distribute(lambda c: xs[c.replica_id_in_sync_group]), distribute(lambda c: ys[c.replica_id_in_sync_group]))


def _losses(config, y, k, logits, teacher):
    """Cross-entropy of one pass: smoothed labels for the largest (teacher None), else its softmax."""
    import tensorflow as tf

    if teacher is None or not config.distill:
        target = tf.one_hot(y, k) * (1 - config.label_smoothing) + config.label_smoothing / k
    else:
        target = teacher
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))


def _step(run: Run, dx: Any, dy: Any, forward: Callable, passes: int, args: tuple = (),
          teacher: Callable | None = None) -> tuple[list, list, list]:
    """One training step of `passes` forward passes on every replica: pass i computes
    `forward(x, i, *args)` → (logits, new BN statistics) on the replica's clips x; it learns from the
    labels when it is the first pass and `teacher` is None, else from the teacher's softmax (the
    first pass's, or `teacher(x)`'s logits), gradient stopped. Returns (gradients of the summed loss,
    summed over replicas; losses and the first pass's BN statistics, averaged over replicas)."""
    import tensorflow as tf

    k = run.net.num_classes

    def replica(x, y, *args):
        with tf.GradientTape() as tape:
            total, out, soft, stats = 0.0, [], None, []
            if teacher is not None:
                soft = tf.stop_gradient(tf.nn.softmax(tf.cast(teacher(x), tf.float32)))
            for i in range(passes):
                logits, new = forward(x, i, *args)
                logits = tf.cast(logits, tf.float32)
                loss = _losses(run.config, y, k, logits, soft)
                if soft is None:
                    soft, stats = tf.stop_gradient(tf.nn.softmax(logits)), new
                total += loss
                out.append(loss)
            scaled = total / run.replicas
            if hasattr(run.optimizer, "scale_loss"):
                scaled = run.optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, run.weights)  # ZERO fill fails on Keras variables (dtype a string)
        return [tf.zeros(w.shape, w.value.dtype) if g is None else g for g, w in zip(grads, run.weights)], out, stats

    grads, out, stats = run.strategy.run(replica, args=(dx, dy, *args))
    reduce = run.strategy.reduce
    return ([reduce("SUM", g, axis=None) for g in grads], [reduce("MEAN", v, axis=None) for v in out],
            [reduce("MEAN", v, axis=None) for v in stats])


def _masked_step(run: Run) -> Callable:
    """A traced step (one trace per number of passes): every pass on the masked envelope at its input
    size (`sizes` [passes, 2]: frames, resolution; the largest first). Returns (grads, losses,
    largest's BN statistics)."""
    import tensorflow as tf

    def forward(x, i, masks, seeds, sizes):
        return run.net.masked_forward(masks[i], fit_input(x, sizes[i, 0], sizes[i, 1]), training=True, seed=seeds[i])

    def step(dx, dy, masks, seeds, sizes):
        return _step(run, dx, dy, forward, len(masks), (masks, seeds, sizes))

    return tf.function(step, autograph=False)


def _sliced_step(run: Run, dx: Any, dy: Any, specs: list, seeds: Any) -> tuple[list, list, list]:
    """Eager passes of sub-networks that cannot run as masks (and all passes when the largest cannot):
    each on its own sliced weights, distilled from the largest (recomputed here when not a pass)."""
    net = run.net
    largest = net.largest

    def forward(x, i):
        spec = specs[i]
        return net.forward(spec, fit_input(x, spec.frames, spec.resolution), training=True, stochastic_depth=0.0,
                           seed=tuple(int(v) for v in seeds[i]))

    def teacher(x):
        x = fit_input(x, largest.frames, largest.resolution)
        if run.largest_masks is not None:
            return net.masked_forward(run.largest_masks, x)[0]
        return net.forward(largest, x, stochastic_depth=0.0)[0]

    return _step(run, dx, dy, forward, len(specs), teacher=None if specs[0] is largest else teacher)


__all__ = ["Progress", "make_strategy", "train_supernet"]
