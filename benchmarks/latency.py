"""The latency model against measurement: held-out random architectures of the `paper` space, made
causal (2+1)D (the stream models MoViNet ships), each written as the stream TFLite file
`export_model(..., stream=True)` writes (`evaluation.deploy.export.save_stream_tflite`, random
weights) at one of two input sizes (alternating), and timed one frame a call (`invoke()`, inputs set
once: what TFLite's benchmark_model times; the median of the fastest quarter of many calls, robust to
other processes) at each thread count. Seeds start at 10,000: the profiles were fitted on op models
alone, none of these architectures.

Predicted (`search_space.latency.estimate_latency` with each thread count's profile) against
measured: fraction within ±10% and ±20%, RMSE in %, Kendall τ; beside it the τ of FLOPs and of
params with the same measurements. The first `--runtimes-subset` architectures are also timed as int8
TFLite files and as the frame graph run by TensorFlow (the `keras` runtime), for the τ between runtimes.

Resumable: each architecture's measurements are appended to `--out`/measured.jsonl as they come; a
rerun skips what is there, and `--report` prints the table from what is there.

    nohup python benchmarks/latency.py --archs 200 > latency.log 2>&1 &
    python benchmarks/latency.py --report
    python benchmarks/latency.py --rate        # estimate_latency against estimate_cost, specs/s
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from search_space import ArchSpec, SearchSpace, estimate_cost  # noqa: E402
from search_space.latency import estimate_latency, read_profile  # noqa: E402
from search_space.spec import NUM_CLASSES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED0 = 10_000
ROUNDS = 3


def held_out(i: int, resolutions: tuple[int, ...]) -> tuple[ArchSpec, int]:
    """Architecture `i` of the benchmark and its input size."""
    spec = SearchSpace.from_yaml("paper").sample(SEED0 + i, name=f"held_out_{i}")
    return spec.replace(causal=True, conv_type="2plus1d"), resolutions[i % len(resolutions)]


def measure(spec: ArchSpec, resolution: int, threads: tuple[int, ...], runtimes: tuple[str, ...], tmp: Path,
            num_classes: int = NUM_CLASSES) -> dict:
    """{runtime/threads: robust ms per frame, ...} of the stream model of `spec` (`num_classes` outputs)."""
    import tensorflow as tf

    from evaluation.deploy.export import save_stream_tflite
    from evaluation.deploy.frame_graph import frame_step, lite_state_specs
    from evaluation.deploy.profile import random_model, robust_ms, time_calls, time_tflite

    model = random_model(spec, resolution, num_classes=num_classes)
    out = {}
    path = tmp / "float.tflite"
    for _ in range(ROUNDS if threads else 0):  # rounds apart in time: a burst of load spoils one, not all
        if not path.exists():
            save_stream_tflite(spec, model, resolution, "tflite", path)
        for n in threads:
            ms, spread = time_tflite(path, n, min_calls=30, min_seconds=0.3)
            if ms < out.get(f"tflite/{n}", float("inf")):
                out[f"tflite/{n}"], out[f"spread/{n}"] = ms, spread
    if "tflite-int8" in runtimes:
        clips = np.random.default_rng(0).uniform(0, 1, (2, 4, resolution, resolution, 3)).astype(np.float32)
        save_stream_tflite(spec, model, resolution, "tflite-int8", tmp / "int8.tflite", clips)
        out["tflite-int8/1"] = time_tflite(tmp / "int8.tflite", 1, min_calls=30, min_seconds=0.5)[0]
    if "keras" in runtimes:
        states = lite_state_specs(spec, resolution)
        feed = {"image": tf.zeros([1, 1, resolution, resolution, 3]),
                **{n: tf.zeros(s.shape, s.dtype) for n, s in states.items()}}
        step = tf.function(frame_step(spec, model))
        step(feed)  # traced before timing
        out["keras/1"] = robust_ms(time_calls(lambda: step(feed), min_calls=20, min_seconds=0.5))[0]  # TF's own threads
    return out


def run(args: argparse.Namespace) -> None:
    """Time architectures 0..`--archs` (float TFLite at every thread count) into measured.jsonl, or with
    `--runtimes-subset N` architectures 0..N as int8 TFLite (one thread) and in TensorFlow into runtimes.jsonl."""
    import tempfile

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runtimes = ("tflite-int8", "keras") if args.runtimes_subset else ()
    log = out / ("runtimes.jsonl" if runtimes else "measured.jsonl")
    done = {json.loads(line)["i"] for line in log.read_text().splitlines()} if log.exists() else set()
    for i in range(args.runtimes_subset or args.archs):
        if i in done:
            continue
        spec, resolution = held_out(i, tuple(args.resolutions))
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="movinas-latency-") as tmp:
            times = measure(spec, resolution, () if runtimes else tuple(args.threads), runtimes, Path(tmp))
        row = {"i": i, "seed": SEED0 + i, "resolution": resolution, "layers": spec.num_layers, **times,
               "spec": spec.to_dict()}
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{i:4d} {resolution}px {spec.num_layers:2d} layers  "
              + "  ".join(f"{k} {v:.2f}" for k, v in times.items()) + f"  ({time.perf_counter() - start:.0f} s)",
              flush=True)


def rate(args: argparse.Namespace, n: int = 3000, rounds: int = 4) -> None:
    """estimate_latency against estimate_cost on the same random specs of the paper space, side by side:
    each round on specs neither has seen (the profile keeps the layers it costed, as in screening)."""
    profile = read_profile(ROOT / args.profiles[0])
    space = SearchSpace.from_yaml("paper")
    best: dict[str, float] = {}
    for r in range(rounds):
        batch = [space.sample(SEED0 * 10 + r * n + j) for j in range(n)]
        for name, fn in (("estimate_cost", lambda s: estimate_cost(s, 1)),
                         ("estimate_latency", lambda s: estimate_latency(s, profile))):
            start = time.perf_counter()
            for spec in batch:
                fn(spec)
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
    cost, latency = n / best["estimate_cost"], n / best["estimate_latency"]
    print(f"specs/s, best of {rounds} rounds of {n} fresh paper specs, one frame: estimate_cost {cost:,.0f}, "
          f"estimate_latency {latency:,.0f} ({latency / cost:.2f}x)")


def kendall(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def report(args: argparse.Namespace) -> None:
    rows = [json.loads(line) for line in (Path(args.out) / "measured.jsonl").read_text().splitlines()]
    specs = [ArchSpec.from_dict(r["spec"]) for r in rows]
    costs = [estimate_cost(s, 1, r["resolution"]) for s, r in zip(specs, rows)]
    sizes = sorted({r["resolution"] for r in rows})
    print(f"{len(rows)} held-out architectures (paper space, causal 2plus1d, stream, one frame a call), "
          f"input sizes {', '.join(map(str, sizes))}")
    print(f"{'profile':34s} {'n':>4s} {'±10%':>6s} {'±20%':>6s} {'RMSE%':>6s} {'bias%':>6s} {'tau':>6s} "
          f"{'tau FLOPs':>9s} {'tau params':>10s}  measured ms")
    for n, path in zip(args.threads, args.profiles):
        profile = read_profile(ROOT / path)
        measured = np.array([r[f"tflite/{n}"] for r in rows])
        predicted = np.array([estimate_latency(s, profile, resolution=r["resolution"]) for s, r in zip(specs, rows)])
        err = predicted / measured - 1
        for size in (*sizes, None):
            keep = np.array([size is None or r["resolution"] == size for r in rows])
            e = err[keep]
            label = f"tflite {n}t" + (f" @{size}px" if size else " all")
            print(f"{label:34s} {keep.sum():4d} {np.mean(np.abs(e) <= 0.1):6.1%} {np.mean(np.abs(e) <= 0.2):6.1%} "
                  f"{100 * np.sqrt(np.mean(e ** 2)):6.1f} {100 * np.mean(e):+6.1f} "
                  f"{kendall(predicted[keep], measured[keep]):6.3f} "
                  f"{kendall([c.flops for c, k in zip(costs, keep) if k], measured[keep]):9.3f} "
                  f"{kendall([c.params for c, k in zip(costs, keep) if k], measured[keep]):10.3f}  "
                  f"{measured[keep].min():.2f}–{measured[keep].max():.2f}")
    extra = Path(args.out) / "runtimes.jsonl"
    sub = [json.loads(line) for line in extra.read_text().splitlines()] if extra.exists() else []
    floats = {r["i"]: r["tflite/1"] for r in rows}
    sub = [{**r, "tflite/1": floats[r["i"]]} for r in sub if r["i"] in floats]
    if len(sub) >= 3:
        names = ("tflite/1", "tflite-int8/1", "keras/1")
        print(f"\nKendall tau between runtimes (1 thread, {len(sub)} architectures):")
        for a in range(3):
            for b in range(a + 1, 3):
                print(f"  {names[a]:14s} vs {names[b]:14s} {kendall([r[names[a]] for r in sub], [r[names[b]] for r in sub]):.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", type=int, default=200)
    p.add_argument("--resolutions", type=int, nargs="+", default=[128, 172])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--profiles", nargs="+", default=["results/latency/tflite_stream_1t.json",
                                                     "results/latency/tflite_stream_2t.json"])
    p.add_argument("--runtimes-subset", type=int, default=0,
                   help="the first N architectures are also timed as int8 TFLite and in TensorFlow")
    p.add_argument("--out", default=str(ROOT / "results/latency/bench"))
    p.add_argument("--report", action="store_true", help="print the table from what is measured; measure nothing")
    p.add_argument("--rate", action="store_true", help="only time estimate_latency against estimate_cost")
    args = p.parse_args()
    if args.rate:
        rate(args)
        return
    if not args.report:
        run(args)
    report(args)


if __name__ == "__main__":
    main()
