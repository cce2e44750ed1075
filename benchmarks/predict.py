"""Streaming inference in constant memory: per-frame latency and peak resident memory of
`movinas predict --stream` for the A0 stream preset at 172×172, on a short and a long video.

One run writes a 100-frame and a 2,000-frame video (256×192, 25 fps, mp4) with `write_video`,
exports A0-stream with random weights (Keras and TFLite), then runs each (backend, video) pair in a
fresh subprocess so that peak memories do not mix. Each child runs `predict_video(..., stream=True)`
over the file (decode, centre crop, resize, one stream step per frame) and reports:

- end-to-end ms per frame: time between successive frames' running predictions (frames 10 onward),
  and the process CPU time per frame over the same span (less sensitive to other load; with two
  threads it can exceed the wall time);
- model ms per frame: `StreamSession.push` of one frame alone, median of 200 after warm-up;
- peak RSS (VmHWM of /proc/self/status) after the video, and RSS growth from frame 10 to the end.

Targets (issue 8): under 20 ms per frame; peak memory for 2,000 frames within 10% of 100 frames.
Usage: python benchmarks/predict.py [--lengths 100 2000] [--backends keras tflite]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RESOLUTION = 172
WIDTH, HEIGHT = 256, 192


def proc_mb(field: str) -> float:
    """A memory field of /proc/self/status in MiB: VmRSS (resident now) or VmHWM (peak resident).
    Not `getrusage`: its ru_maxrss survives exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def child(export_dir: str, video: str, backend: str) -> None:
    from evaluation.deploy.predict import Updates, load_for_inference, predict_video

    t0 = time.perf_counter()
    model = load_for_inference(export_dir, stream=True, backend=backend)
    load_s = time.perf_counter() - t0
    stamps: list[float] = []
    cpu: list[float] = []
    rss_at_10: list[float] = []

    def on_update(pred) -> None:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        if pred.frames_seen == 10:
            rss_at_10.append(proc_mb("VmRSS"))

    pred = predict_video(model, video, stream=True, updates=Updates(1, on_update))
    peak_mb = proc_mb("VmHWM")
    end_mb = proc_mb("VmRSS")
    gaps = 1000 * np.diff(stamps[9:])

    session = model.open_stream()
    frame = np.random.default_rng(0).uniform(0, 1, (1, 1, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
    for _ in range(10):
        session.push(frame)
    times = []
    for _ in range(200):
        t = time.perf_counter()
        session.push(frame)
        times.append(time.perf_counter() - t)
    print(json.dumps({
        "frames": pred.frames_seen, "load_s": load_s, "e2e_median_ms": float(np.median(gaps)),
        "e2e_mean_ms": float(np.mean(gaps)), "cpu_ms": 1000 * (cpu[-1] - cpu[9]) / (len(cpu) - 10),
        "model_median_ms": 1000 * statistics.median(times),
        "peak_mb": peak_mb, "rss_growth_mb": end_mb - rss_at_10[0],
    }))


def make_videos(folder: Path, lengths: list[int]) -> dict[int, Path]:
    from evaluation.datasets import write_video

    rng = np.random.default_rng(0)
    background = rng.integers(0, 80, (HEIGHT, WIDTH, 3), dtype=np.uint8)

    def frames(n: int):
        for t in range(n):
            f = background.copy()
            x = (5 * t) % (WIDTH - 40)
            f[60:100, x:x + 40] = (220, 120, 40)
            yield f

    return {n: write_video(folder / f"video_{n}.mp4", frames(n), fps=25) for n in lengths}


def export_a0(folder: Path, backends: list[str]) -> Path:
    from evaluation.deploy.export import ExportOptions, export_model
    from search_space import movinet
    from search_space.builder import build_model

    spec = movinet("a0", stream=True)
    model = build_model(spec)
    # ReZero scales and biases start at 0; make every branch count as in a trained network
    model.set_weights([w if w.any() else np.full_like(w, 0.1) for w in model.get_weights()])
    formats = ["yaml"] + [b for b in backends if b in ("keras", "tflite", "savedmodel")]
    export_model(spec, model, folder / "a0", formats=formats, stream=True,
                 options=ExportOptions(resolution=RESOLUTION))
    return folder / "a0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[100, 2000])
    parser.add_argument("--backends", nargs="+", default=["keras", "tflite"], choices=["keras", "savedmodel", "tflite"])
    parser.add_argument("--child", nargs=3, metavar=("EXPORT", "VIDEO", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="movinas-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        videos = make_videos(tmp, args.lengths)
        export = export_a0(tmp, args.backends)
        print(f"videos {WIDTH}x{HEIGHT} mp4 of {', '.join(map(str, args.lengths))} frames and the A0-stream export "
              f"({', '.join(args.backends)}) written in {time.perf_counter() - t0:.0f} s")
        results: dict[tuple[str, int], dict] = {}
        for backend in args.backends:
            for n, video in videos.items():
                done = subprocess.run([sys.executable, __file__, "--child", str(export), str(video), backend],
                                      capture_output=True, text=True, check=False)
                if done.returncode:
                    sys.exit(f"child {backend} {n} failed:\n{done.stderr[-3000:]}")
                results[backend, n] = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"\nA0 stream, {RESOLUTION}x{RESOLUTION}, one frame per step, batch 1; each row a fresh process "
          f"(load average {os.getloadavg()[0]:.1f} at the end)\n")
    head = ("backend", "frames", "e2e ms/frame (median, mean)", "CPU ms/frame", "model ms/frame", "peak RSS MB",
            "RSS growth after frame 10 MB")
    rows = [head]
    for (backend, _), r in results.items():
        rows.append((backend, f"{r['frames']:,}", f"{r['e2e_median_ms']:.1f}, {r['e2e_mean_ms']:.1f}",
                     f"{r['cpu_ms']:.1f}", f"{r['model_median_ms']:.1f}", f"{r['peak_mb']:,.0f}", f"{r['rss_growth_mb']:+.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for row in rows:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
    short, long = min(args.lengths), max(args.lengths)
    print()
    for backend in args.backends:
        a, b = results[backend, short], results[backend, long]
        ratio = b["peak_mb"] / a["peak_mb"]
        print(f"{backend}: peak RSS {long:,}/{short:,} frames = {ratio:.3f}× (target <= 1.10: "
              f"{'met' if ratio <= 1.10 else 'missed'}); e2e {b['e2e_mean_ms']:.1f} ms/frame = "
              f"{b['e2e_mean_ms'] / 20:.2f}× the 20 ms target ({'met' if b['e2e_mean_ms'] < 20 else 'missed'})")
    if "keras" in args.backends and "tflite" in args.backends:
        k, t = results["keras", long], results["tflite", long]
        print(f"tflite / keras model ms per frame: {t['model_median_ms'] / k['model_median_ms']:.2f}×")


if __name__ == "__main__":
    main()
