"""Builder speed on CPU: fast depthwise 3D against Keras' grouped Conv3D, and A0 stream latency.

Measured side by side in one run (compiled `tf.function`s, warm-up, then the median of N):

1. A0 base, batch 1, 8×172×172 inference: depthwise="fast" vs "grouped";
2. one training step (batch 8, 8×64×64, SGD, cross-entropy) of both builds;
3. A0 stream (the a0-stream preset), 172×172, one frame per call, states fed back (measured first).

Usage: python benchmarks/builder.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from search_space import movinet  # noqa: E402
from search_space.builder import build_model, init_states  # noqa: E402


def timed_ms(fn, repeats: int, warmup: int = 2) -> tuple[float, float, float]:
    """(median wall, best wall, median process CPU) time of `fn` in ms, after `warmup` untimed calls.

    On a shared machine the wall time swings with other jobs; process CPU time (all threads) does not.
    """
    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy(), fn())
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        tf.nest.map_structure(lambda t: t.numpy(), fn())
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000 * statistics.median(wall), 1000 * min(wall), 1000 * statistics.median(cpu)


def show(t: tuple[float, float, float]) -> str:
    return f"{t[0]:8.1f} {t[1]:8.1f} {t[2]:8.1f}"


def speed_up(fast, grouped) -> str:
    wall, cpu = grouped[0] / fast[0], grouped[2] / fast[2]
    return f"{'  speed-up (median wall; CPU)':52s} {wall:7.1f}x {'':8s} {cpu:7.1f}x"


def inference(depthwise: str, repeats: int) -> float:
    model = build_model(movinet("a0"), frames=8, resolution=172, batch_size=1, depthwise=depthwise)
    clip = tf.random.uniform((1, 8, 172, 172, 3))
    step = tf.function(lambda x: model(x, training=False))
    return timed_ms(lambda: step(clip), repeats)


def train_step(depthwise: str, repeats: int) -> float:
    model = build_model(movinet("a0"), num_classes=600, frames=8, resolution=64, batch_size=8,
                        depthwise=depthwise)
    optimizer = keras.optimizers.SGD(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    clip = tf.random.uniform((8, 8, 64, 64, 3))
    labels = tf.constant(np.arange(8) % 600)
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return timed_ms(lambda: step(clip, labels), repeats)


def stream_frame(repeats: int) -> float:
    spec = movinet("a0", stream=True)
    model = build_model(spec, mode="stream", frames=1, resolution=172, batch_size=1)
    step = tf.function(lambda inputs: model(inputs, training=False))
    states = {k: tf.constant(v) for k, v in init_states(spec, 1, 172).items()}
    frame = tf.random.uniform((1, 1, 172, 172, 3))

    def one():
        nonlocal states
        out = step({"image": frame, **states})
        states = {k: v for k, v in out.items() if k != "logits"}
        return out["logits"]

    return timed_ms(one, repeats, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed runs of each fast measurement")
    parser.add_argument("--quick", action="store_true", help="fewer runs (grouped builds are slow)")
    args = parser.parse_args()
    fast_n = 3 if args.quick else args.repeats
    slow_n = 1 if args.quick else 3
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"TF {tf.__version__}, Keras {keras.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}")
    print(f"{'ms':52s} {'median':>8s} {'best':>8s} {'CPU':>8s}")
    # the stream first: after the grouped builds have run, the same measurement reads 2-3 ms slower
    per_frame = stream_frame(max(fast_n * 3, 20))
    print(f"{'A0 stream, 172x172, one frame per call (per frame)':52s} {show(per_frame)}")
    keras.backend.clear_session()
    fast, grouped = inference("fast", fast_n), inference("grouped", slow_n)
    print(f"{'A0 base inference, batch 1, 8x172x172, fast':52s} {show(fast)}")
    print(f"{'  same with Keras grouped Conv3D':52s} {show(grouped)}")
    print(speed_up(fast, grouped))
    keras.backend.clear_session()
    fast, grouped = train_step("fast", fast_n), train_step("grouped", slow_n)
    print(f"{'A0 training step, batch 8, 8x64x64, fast':52s} {show(fast)}")
    print(f"{'  same with Keras grouped Conv3D':52s} {show(grouped)}")
    print(speed_up(fast, grouped))


if __name__ == "__main__":
    main()
