"""Depthwise 3D conv speed with oneDNN on and off: movinas' `FrameConv3D` against Keras' grouped Conv3D.

TensorFlow picks its CPU kernels at start-up: oneDNN where the CPU and `TF_ENABLE_ONEDNN_OPTS` allow,
its own Eigen kernels elsewhere (and CUDA ones on a GPU). The fast depthwise path must be correct and
fast on both, so each setting runs in its own process, side by side in one run, on the same layers:

- A0's 3×3×3 layer at [1, 8, 43, 43, 80];
- a spatially strided 3×3×3 layer (1, 2, 2) at [2, 8, 32, 32, 48];
- the (2+1)D temporal-only 3×1×1 layer at [8, 8, 16, 16, 184], stride 1 and temporal stride 2.

Each row: forward and forward+backward (gradients of input and kernel) of compiled `tf.function`s,
median of N after warm-up, in ms, and the speed-up over the grouped Conv3D of the same setting.

Usage: python benchmarks/depthwise.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = [  # name, kernel, strides, input shape
    ("3x3x3, A0 stage-2 size", (3, 3, 3), (1, 1, 1), (1, 8, 43, 43, 80)),
    ("3x3x3, spatial stride 2", (3, 3, 3), (1, 2, 2), (2, 8, 32, 32, 48)),
    ("3x1x1 (2+1D temporal)", (3, 1, 1), (1, 1, 1), (8, 8, 16, 16, 184)),
    ("3x1x1, temporal stride 2", (3, 1, 1), (2, 1, 1), (8, 8, 16, 16, 184)),
]


def median_ms(fn, x, repeats: int) -> float:
    for _ in range(2):
        [t.numpy() for t in fn(x)]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        [t.numpy() for t in fn(x)]
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def measure(repeats: int) -> dict:
    """Times of every case in this process (oneDNN as the environment set it)."""
    import tensorflow as tf

    from search_space.layers import FrameConv3D

    out = {}
    for name, kernel, strides, shape in CASES:
        x = tf.random.normal(shape)
        row = {}
        for impl in ("fast", "grouped"):
            layer = FrameConv3D(kernel, strides, implementation=impl)
            layer.build(shape)
            forward = tf.function(lambda x, layer=layer: [layer(x)])

            @tf.function
            def both(x, layer=layer):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(tf.square(layer(x)))
                return tape.gradient(loss, [x, layer.kernel])

            row[impl] = (median_ms(forward, x, repeats), median_ms(both, x, repeats))
        out[name] = row
    return out


def child(onednn: str, repeats: int) -> dict:
    """`measure` in a fresh process with oneDNN switched on ("1") or off ("0")."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, "--repeats", str(repeats), "--child"], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (default 10)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.repeats)))
        return
    import tensorflow as tf

    load = os.getloadavg()[0]
    print(f"TF {tf.__version__}, {os.cpu_count()} CPUs, load average {load:.1f}; ms, median of {args.repeats}")
    results = {setting: child(setting, args.repeats) for setting in ("1", "0")}
    print(f"{'layer':28s} {'oneDNN':>6s} {'fast fwd':>9s} {'fwd+bwd':>9s} {'grouped fwd':>11s} {'fwd+bwd':>9s}"
          f" {'speed-up fwd':>12s} {'fwd+bwd':>8s}")
    for name, *_ in CASES:
        for setting, label in (("1", "on"), ("0", "off")):
            (ff, fb), (gf, gb) = results[setting][name]["fast"], results[setting][name]["grouped"]
            print(f"{name:28s} {label:>6s} {ff:9.1f} {fb:9.1f} {gf:11.1f} {gb:9.1f} {gf / ff:11.1f}x {gb / fb:7.1f}x")


if __name__ == "__main__":
    main()
