"""`train_supernet`: the one-shot training loop (see evaluation/oneshot/supernet.py for the rules it follows)."""

from __future__ import annotations

import time
import zlib
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


def train_supernet(space: Any, dataset: Any, config: SupernetConfig, checkpoint: str | Path, *, seed: int = 0,
                   num_classes: int | None = None, strategy: Any = None, progress: bool = True,
                   log: Any = None, on_step: Any = None) -> dict:
    """Train (or resume) the supernet of `space` on `dataset`; checkpoints go to `checkpoint`.

    `on_step(step)`, if given, is called after every step (and its checkpoint, when one is due); an
    exception it raises stops training there, and a rerun resumes from the last checkpoint.

    Returns a summary: steps run now, final step, seconds per step, last losses, whether this process
    is the chief (under MultiWorkerMirroredStrategy only the chief writes `checkpoint`). An existing
    checkpoint of another space or class count, or workers that read different checkpoints, raise
    ValueError; the file is left as it is.
    """
    import keras
    import tensorflow as tf

    from search_space import estimate_cost
    from search_space.supernet import Supernet

    checkpoint = Path(checkpoint)
    k = num_classes or int(getattr(dataset, "num_classes", 0) or 0) or int(dataset.train.y.max()) + 1
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"supernet.batch_size: {config.batch_size}, must be a multiple of the {replicas} replicas")
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
        from evaluation.compat import forget_custom_gradients, seeded

        with strategy.scope(), seeded(seed):  # the same initial weights for the same seed
            net = Supernet(space, k, block_scale_init=config.block_scale_init)
            optimizer = keras.optimizers.AdamW(learning_rate=learning_rate_at(config, 0.0),
                                               weight_decay=config.weight_decay, global_clipnorm=config.grad_clip)
            if mixed and gpu:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            weights = net.trainable
            optimizer.build(weights)
        start = restore(checkpoint, meta, arrays, net, optimizer) if meta is not None else 0
        _check_same_start(strategy, checkpoint, start, _digest(arrays) if arrays is not None else 0)
        with forget_custom_gradients():  # a resumed or repeated run in one process frees its graphs
            summary = _loop(net, optimizer, weights, dataset, config, checkpoint, seed, strategy, start,
                            progress and chief, log, chief, lambda s: estimate_cost(s, num_classes=k).params,
                            on_step)
        return {**summary, "chief": chief, "worker": _task(strategy)}
    finally:
        keras.config.set_dtype_policy(policy)


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


def _loop(net, optimizer, weights, dataset, config, checkpoint, seed, strategy, start, progress, log, chief,
          params_of, on_step):
    import tensorflow as tf
    from tqdm.auto import tqdm

    replicas = strategy.num_replicas_in_sync
    x_all, y_all = dataset.train.x, dataset.train.y.astype(np.int32)
    n = len(y_all)
    batch = min(config.batch_size, n - n % replicas) or replicas
    k = net.num_classes
    meta = {"steps": config.steps, "seed": seed}
    bar = tqdm(total=config.steps, initial=start, disable=not progress, desc="supernet", unit="step",
               dynamic_ncols=True)
    steps: dict = {}  # traced masked steps, one per number of passes (any input sizes)
    apply = tf.function(lambda grads: optimizer.apply_gradients(zip(grads, weights)), autograph=False)
    seen, t0, losses, sizes = 0, time.perf_counter(), [], []
    largest_masks = net.masks(net.largest)
    times = []
    for step in range(start, config.steps):
        t_step = time.perf_counter()
        subnets = sandwich(net, config, seed, step)
        masks = [net.masks(s) for s in subnets] if largest_masks is not None else [None] * len(subnets)
        graph = [i for i, m in enumerate(masks) if m is not None]
        eager = [i for i, m in enumerate(masks) if m is None]
        idx = batch_indices(n, batch, seed, step)
        xs = np.array_split(x_all[idx].astype(np.float32), replicas)
        ys = np.array_split(y_all[idx], replicas)
        dx = strategy.experimental_distribute_values_from_function(lambda c, xs=xs: xs[c.replica_id_in_sync_group])
        dy = strategy.experimental_distribute_values_from_function(lambda c, ys=ys: ys[c.replica_id_in_sync_group])
        optimizer.learning_rate.assign(learning_rate_at(config, step / config.steps))
        seeds = tf.constant([[seed, step, i] for i in range(len(subnets))], tf.int64)
        grads, out = None, {}
        if graph:
            key = len(graph)
            if key not in steps:
                steps[key] = _masked_step(net, weights, optimizer, strategy, config, k)
            sizes_t = tf.constant([[subnets[i].frames, subnets[i].resolution] for i in graph], tf.int32)
            grads, losses_g, stats = steps[key](dx, dy, [[tf.constant(a) for a in masks[i]] for i in graph],
                                                tf.gather(seeds, graph), sizes_t)
            out.update(zip(graph, losses_g))
            net.write_envelope_statistics(stats)
        if eager:
            g2, losses_e = _sliced_step(net, weights, optimizer, strategy, config, [subnets[i] for i in eager],
                                        largest_masks, dx, dy, k, tf.gather(seeds, eager))
            out.update(zip(eager, losses_e))
            grads = g2 if grads is None else [a + b for a, b in zip(grads, g2)]
        apply(grads)
        losses = [float(out[i]) for i in range(len(subnets))]
        if not all(np.isfinite(losses)):
            raise FloatingPointError(f"supernet step {step}: loss {losses}, not finite; lower "
                                     "supernet.learning_rate")
        times.append(time.perf_counter() - t_step)
        sizes = [params_of(s) for s in subnets]
        seen += 1
        bar.set_postfix_str(" ".join(f"{s / 1e3:.0f}k:{v:.3f}" for s, v in zip(sizes, losses)))
        bar.update(1)
        if chief and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            save_checkpoint(checkpoint, net, optimizer, step + 1, meta)
            if log is not None:
                log(f"checkpoint {checkpoint} at step {step + 1}")
        if on_step is not None:
            on_step(step + 1)
    bar.close()
    seconds = time.perf_counter() - t0
    if chief and start >= config.steps and not checkpoint.exists():
        save_checkpoint(checkpoint, net, optimizer, start, meta)
    return {"steps_run": seen, "step": max(start, config.steps), "seconds": seconds,
            "seconds_per_step": seconds / seen if seen else None, "losses": losses, "sizes": sizes,
            "step_seconds": times,
            "replicas": replicas, "net": net}


def _losses(config, y, k, logits, teacher):
    """Cross-entropy of one pass: smoothed labels for the largest (teacher None), else its softmax."""
    import tensorflow as tf

    if teacher is None or not config.distill:
        target = tf.one_hot(y, k) * (1 - config.label_smoothing) + config.label_smoothing / k
    else:
        target = teacher
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(target, logits))


def _masked_step(net, weights, optimizer, strategy, config, k):
    """A traced step (one trace per number of passes): per replica, every pass on the masked
    envelope at its input size (`sizes` [passes, 2]: frames, resolution; the largest first),
    gradients summed over passes and replicas. Returns (grads, losses, largest's BN statistics)."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def replica(x, y, masks, seeds, sizes):
        with tf.GradientTape() as tape:
            total, out, teacher, stats = 0.0, [], None, []
            for i, m in enumerate(masks):
                xi = fit_input(x, sizes[i, 0], sizes[i, 1])
                logits, new = net.masked_forward(m, xi, training=True, seed=seeds[i])
                logits = tf.cast(logits, tf.float32)
                loss = _losses(config, y, k, logits, teacher)
                if teacher is None:
                    teacher, stats = tf.stop_gradient(tf.nn.softmax(logits)), new
                total += loss
                out.append(loss)
            scaled = total / replicas
            if hasattr(optimizer, "scale_loss"):
                scaled = optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, weights, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return grads, out, stats

    def step(dx, dy, masks, seeds, sizes):
        grads, out, stats = strategy.run(replica, args=(dx, dy, masks, seeds, sizes))
        return ([strategy.reduce("SUM", g, axis=None) for g in grads],
                [strategy.reduce("MEAN", v, axis=None) for v in out],
                [strategy.reduce("MEAN", v, axis=None) for v in stats])

    return tf.function(step, autograph=False)


def _sliced_step(net, weights, optimizer, strategy, config, specs, largest_masks, dx, dy, k, seeds):
    """Eager passes of sub-networks that cannot run as masks (and all passes when the largest cannot):
    each on its own sliced weights, distilled from the largest (recomputed here when not a pass)."""
    import tensorflow as tf

    replicas = strategy.num_replicas_in_sync

    def replica(x, y):
        with tf.GradientTape() as tape:
            total, out, teacher = 0.0, [], None
            if specs[0] is not net.largest:
                if largest_masks is not None:
                    logits = net.masked_forward(largest_masks, fit_input(x, net.largest.frames, net.largest.resolution))[0]
                else:
                    logits = net.forward(net.largest, fit_input(x, net.largest.frames, net.largest.resolution), stochastic_depth=0.0)[0]
                teacher = tf.stop_gradient(tf.nn.softmax(tf.cast(logits, tf.float32)))
            for i, spec in enumerate(specs):
                logits, new = net.forward(spec, fit_input(x, spec.frames, spec.resolution), training=True, stochastic_depth=0.0,
                                          seed=tuple(int(v) for v in seeds[i]))
                logits = tf.cast(logits, tf.float32)
                loss = _losses(config, y, k, logits, teacher)
                if teacher is None:
                    teacher = tf.stop_gradient(tf.nn.softmax(logits))
                total += loss
                out.append(loss)
            scaled = total / replicas
            if hasattr(optimizer, "scale_loss"):
                scaled = optimizer.scale_loss(scaled)
        grads = tape.gradient(scaled, weights)  # eager ZERO fill fails on Keras variables (dtype a string)
        return [tf.zeros(w.shape, w.value.dtype) if g is None else g for g, w in zip(grads, weights)], out

    grads, out = strategy.run(replica, args=(dx, dy))
    return ([strategy.reduce("SUM", g, axis=None) for g in grads],
            [strategy.reduce("MEAN", v, axis=None) for v in out])


__all__ = ["make_strategy", "train_supernet"]
