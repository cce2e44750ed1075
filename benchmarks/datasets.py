"""Dataset speed: synthetic clips generated per second, and video-folder loading with and without the
decoded-clip cache.

Measured side by side in one run, best of N passes, wall clock and process CPU time (the CPU time
is less disturbed by other processes on a shared machine; numpy renders on one core, OpenCV
decodes up to 4 files at once):

1. `synthetic` at 8×64×64 and 16×112×112 (6 classes, default noise 0.05 and one distractor), and
   the same without noise and distractors;
2. `video_folder` on videos this script writes (mp4v, 160×120, 48 frames): decoding every file,
   a first cached call (decode + store), and a second cached call (cache hits only).

Usage: python benchmarks/datasets.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from evaluation.datasets import synthetic, video_folder, write_video

TARGET = 1000  # clips/s at 8×64×64: proxy training consumes 20–100 clips/s on this CPU


def best_rate(fn, clips: int, repeats: int) -> tuple[float, float]:
    """(clips/s by wall clock, clips/s by process CPU time), best of `repeats`."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return clips / min(wall), clips / min(cpu)


def bench_synthetic(repeats: int, quick: bool) -> None:
    print(f"synthetic: 6 classes, numpy {np.__version__}, rendered on one core")
    print(
        f"{'clip':>12}  {'noise, distractors':>18}  {'clips/s wall':>12}  {'clips/s CPU':>11}  {'MB/s CPU':>8}"
    )
    for frames, res, per_class in ((8, 64, 80), (16, 112, 16)):
        per_class = max(2, per_class // 4) if quick else per_class
        cpu_rates = {}
        for noise, distractors in ((0.05, 1), (0.0, 0)):
            kwargs = dict(
                clips_per_class=per_class, frames=frames, resolution=res, noise=noise, distractors=distractors
            )
            synthetic(**{**kwargs, "clips_per_class": 2})  # warm-up
            wall, cpu = best_rate(lambda kwargs=kwargs: synthetic(**kwargs), 6 * per_class, repeats)
            cpu_rates[noise] = cpu
            mb = cpu * frames * res * res * 3 * 4 / 1e6
            size = f"{frames}×{res}×{res}"
            print(f"{size:>12}  {f'{noise}, {distractors}':>18}  {wall:12,.0f}  {cpu:11,.0f}  {mb:8,.0f}")
        if (frames, res) == (8, 64):
            ratio = cpu_rates[0.05] / TARGET
            print(
                f"{'':>12}  target {TARGET:,} clips/s (CPU time): {'met' if ratio >= 1 else 'not met'} ({ratio:.2f}×)"
            )
        print(f"{'':>12}  noise + a distractor cost {cpu_rates[0.0] / cpu_rates[0.05]:.2f}× the plain render")


def bench_video_folder(repeats: int, quick: bool) -> None:
    classes, per_class, length = (2, 4, 48) if quick else (4, 12, 48)
    n = classes * per_class
    args = dict(frames=8, resolution=64, stride=2)
    with tempfile.TemporaryDirectory(prefix="movinas-bench-") as tmp:
        root, rng = Path(tmp) / "videos", np.random.default_rng(0)
        for c in range(classes):
            (root / f"class{c}").mkdir(parents=True)
            for i in range(per_class):
                base = (
                    rng.integers(0, 256, (12, 16, 3), np.uint8).repeat(10, 0).repeat(10, 1)
                )  # codec-friendly
                frames = np.stack([np.roll(base, t, axis=1) for t in range(length)])  # a slow pan
                write_video(root / f"class{c}" / f"v{i}.mp4", frames)
        print(f"\nvideo_folder: {n} mp4v videos, 160×120, {length} frames → 8×64×64 clips (stride 2)")
        print(f"{'':>28}  {'clips/s wall':>12}  {'clips/s CPU':>11}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rows = {"decode every file": best_rate(lambda: video_folder(root, **args), n, repeats)}
            cold = [
                best_rate(lambda r=r: video_folder(root, cache_dir=Path(tmp) / f"c{r}", **args), n, 1)
                for r in range(repeats)
            ]
            rows["cache: first call (store)"] = max(cold)
            rows["cache: later calls (hits)"] = best_rate(
                lambda: video_folder(root, cache_dir=Path(tmp) / "c0", **args), n, repeats
            )
        for name, (wall, cpu) in rows.items():
            print(f"{name:>28}  {wall:12,.0f}  {cpu:11,.0f}")
        hits, decode = rows["cache: later calls (hits)"], rows["decode every file"]
        print(
            f"{'':>28}  cache hits: {hits[0] / decode[0]:.1f}× decoding (wall), {hits[1] / decode[1]:.1f}× (CPU)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer clips, for a smoke run")
    args = parser.parse_args()
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores{load}, Python {platform.python_version()}"
    )
    bench_synthetic(args.repeats, args.quick)
    bench_video_folder(args.repeats, args.quick)


if __name__ == "__main__":
    main()
