"""Stream TFLite files side by side in one run: movinas' float / fp16 / int8 MoViNet stream files against
the official MoViNet stream model converted the official way, timed interleaved in LiteRT with XNNPACK.

- movinas: `search_space.movinet(name, stream=True)` with random weights (batch-norm statistics and
  ReZero scales randomized like a trained network's: speed does not depend on them, but an all-zero
  residual branch would quantize degenerately), written by `evaluation.deploy.export.save_stream_tflite` as
  `export_model(..., stream=True)` writes them; int8 calibrated on synthetic clips streamed from zero
  states (`--calibration CLIPSxFRAMES`).
- official: `benchmarks/official_stream.py` run with the python of the side environment of
  `benchmarks/side_venv.py` (tf-models-official; made on demand, minutes the first time). When it cannot
  be made (no registry), the line saying why is printed and the table has no official column.
- timing: one frame a call, batch 1, `--resolution`² (172), every file's states carried from call to
  call; all files interleaved call by call, median of `--frames` calls after 20 warm-up calls, at each
  of `--threads`; the machine may be loaded, so read the ratios, measured within the same round.
- op profile (`evaluation.deploy.tflite_ops.op_profile`): ops in the file, the fraction XNNPACK takes, its
  partitions, and the ops it leaves out.

    python benchmarks/tflite.py [--models a0 a1 a2] [--precisions float fp16 int8] [--threads 1 2]
                                [--frames 200] [--out DIR] [--no-official]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

FORMAT = {"float": "tflite", "fp16": "tflite-fp16", "dynamic": "tflite-dynamic", "int8": "tflite-int8"}
WARMUP = 20


def movinas_files(names, precisions, resolution: int, clips: np.ndarray, out: Path) -> dict[str, Path]:
    from evaluation.deploy.export import save_stream_tflite
    from evaluation.deploy.profile import random_model
    from search_space import movinet

    files = {}
    for name in names:
        spec = movinet(name, stream=True)
        model = random_model(spec, resolution)
        for precision in precisions:
            path = out / f"{name}_stream_{precision}.tflite"
            start = time.perf_counter()
            save_stream_tflite(spec, model, resolution, FORMAT[precision], path,
                               clips if precision == "int8" else None)
            print(f"  {path.name}: converted in {time.perf_counter() - start:.0f} s", flush=True)
            files[f"{name} {precision}"] = path
    return files


def official_files(names, resolution: int, out: Path) -> dict[str, Path]:
    """The official stream files, or {} (with the reason printed) when the side environment is missing."""
    from benchmarks.side_venv import SideVenvError, official_python

    try:
        python = official_python()
    except SideVenvError as err:
        print(f"no official column: {err}")
        return {}
    files = {}
    for name in names:
        path = out / f"official_{name}_stream_float.tflite"
        script = Path(__file__).with_name("official_stream.py")
        done = subprocess.run([str(python), str(script), name, str(resolution), str(path)], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(f"no official {name} file: the official conversion failed ({last})")
            continue
        print(f"  {path.name}: converted by tf-models-official", flush=True)
        files[f"official {name} float"] = path
    return files


def time_interleaved(files: dict[str, Path], frames: int, threads: int, resolution: int) -> dict[str, float]:
    """Median ms of one stream step of each file, the files interleaved call by call: wall time, and for
    one thread also the calling thread's CPU time (keys "cpu <file>"), which waiting for a core on a loaded
    machine does not inflate."""
    from evaluation.deploy.export import load_tflite

    runners = {k: load_tflite(p, num_threads=threads) for k, p in files.items()}
    feeds = {k: {n: np.zeros(d["shape"], d["dtype"]) for n, d in r.get_input_details().items()}
             for k, r in runners.items()}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {k: [] for k in runners}
    cpu: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(frames + WARMUP):
        frame = rng.uniform(0, 1, (resolution, resolution, 3)).astype(np.float32)
        for key, runner in runners.items():
            feed = feeds[key]
            feed["image"] = frame.reshape(feed["image"].shape)
            start, start_cpu = time.perf_counter(), time.thread_time()
            out = runner(**feed)
            if i >= WARMUP:
                times[key].append((time.perf_counter() - start) * 1000)
                cpu[key].append((time.thread_time() - start_cpu) * 1000)
            feed.update({n: out[n] for n in feed if n in out})
    medians = {k: float(np.median(v)) for k, v in times.items()}
    if threads == 1:
        medians.update({f"cpu {k}": float(np.median(v)) for k, v in cpu.items()})
    return medians


def report(files: dict[str, Path], ms: dict[int, dict[str, float]]) -> None:
    from evaluation.deploy.tflite_ops import op_profile

    if 1 in ms:  # the one-thread CPU time as a column of its own, "cpu"
        ms["cpu"] = {k[4:]: v for k, v in ms[1].items() if k.startswith("cpu ")}
    threads = [t for t in ms if t != "cpu"] + (["cpu"] if "cpu" in ms else [])
    head = f"{'file':<20} {'MB':>5} {'ops':>4} {'XNNPACK':>7} {'parts':>5}"
    for t in threads:
        head += f" {f'ms {t}t' if t != 'cpu' else 'cpu 1t':>7} {'/float':>6} {'/offic':>6}"
    print(head)
    left = {}
    for key, path in files.items():
        prof = op_profile(path)
        name = key.split()[0] if not key.startswith("official") else key.split()[1]
        line = (f"{key:<20} {path.stat().st_size / 1e6:>5.2f} {prof.total:>4} {100 * prof.delegated_fraction:>6.1f}%"
                f" {prof.partitions:>5}")
        for t in threads:
            refs = (ms[t].get(f"{name} float"), ms[t].get(f"official {name} float"))
            ratios = " ".join(f"{ms[t][key] / ref:>6.2f}" if ref else f"{'-':>6}" for ref in refs)
            line += f" {ms[t][key]:>7.2f} {ratios}"
        print(line)
        if prof.not_delegated:
            left[key] = prof.describe_not_delegated()
    for key, text in left.items():
        print(f"  not in XNNPACK, {key}: {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["a0"], choices=("a0", "a1", "a2"))
    parser.add_argument("--precisions", nargs="+", default=["float", "fp16", "int8"], choices=tuple(FORMAT))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--frames", type=int, default=200, help="timed calls per file (default 200)")
    parser.add_argument("--resolution", type=int, default=172)
    parser.add_argument("--calibration", default="4x16", metavar="CLIPSxFRAMES",
                        help="int8 calibration: synthetic clips streamed from zero states (default 4x16)")
    parser.add_argument("--out", default=None, metavar="DIR", help="keep the timed .tflite files in DIR")
    parser.add_argument("--no-official", action="store_true", help="skip the official model")
    args = parser.parse_args()
    import tensorflow as tf

    from evaluation.datasets import synthetic

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"TensorFlow {tf.__version__}; load average {os.getloadavg()[0]:.1f}")
    n_clips, n_frames = (int(v) for v in args.calibration.lower().split("x"))
    clips = synthetic(num_classes=4, clips_per_class=max(2, -(-n_clips // 2)), frames=n_frames, resolution=args.resolution,
                      seed=0).train.x[:n_clips].astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="movinas-bench-") as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        files = {} if args.no_official else official_files(args.models, args.resolution, out)
        files.update(movinas_files(args.models, args.precisions, args.resolution, clips, out))
        ms = {}
        for t in args.threads:
            ms[t] = time_interleaved(files, args.frames, t, args.resolution)
            print(f"  timed {len(files)} files at {t} thread(s); load average {os.getloadavg()[0]:.1f}", flush=True)
        print(f"\nstream files, {args.resolution}x{args.resolution}, one frame a call, median ms of {args.frames} calls "
              f"(wall at 1 and 2 threads, and the CPU time of the 1-thread call; /float: to movinas' float file "
              f"of the model, /offic: to the official float file, in the same column)")
        report(files, ms)
        if args.out:
            print(f"files kept in {out}")


if __name__ == "__main__":
    main()
