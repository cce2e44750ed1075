"""Latency of an architecture on this machine: median wall time of a forward pass at batch 1."""

from __future__ import annotations

import time


def measure_latency_ms(spec, num_classes: int, runs: int = 10, warmup: int = 2) -> float:
    """Median wall time of one forward pass at batch 1, at the spec's own frames and resolution,
    in milliseconds (after `warmup` passes, which trace and warm the graph)."""
    import numpy as np
    import tensorflow as tf

    from search_space import build_model

    model = build_model(spec, num_classes=num_classes, frames=spec.frames, resolution=spec.resolution, batch_size=1)
    x = tf.zeros((1, spec.frames, spec.resolution, spec.resolution, 3))
    forward = tf.function(lambda v: model(v, training=False))
    for _ in range(warmup):
        forward(x).numpy()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        forward(x).numpy()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)
