"""Int8 TFLite against float TFLite, side by side in one run.

- speed: MoViNet-A0 stream at 172×172 (random weights: speed does not depend on them), converted as
  `export_model` converts its stream files, float and int8 (calibrated on synthetic clips at 172 px); ms per
  frame of one stream step, the two files interleaved call by call, median over `--frames` calls after
  warm-up, with 1 thread and with every core; prints int8 / float.
- accuracy: the best architecture of the committed demo run (results/reference) trained as the demo
  trains it (its dataset, the graded task, and proxy budget), exported float and int8 (calibrated on 32
  training clips); validation top-1 of both files on the same validation clips, and the change in
  points (target: within 1 point).

    python benchmarks/int8.py [--part speed accuracy] [--frames 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RESOLUTION = 172


def stream_ms(paths: dict, frames: int, threads: int | None) -> dict[str, float]:
    """Median ms of one stream step for each file, interleaved call by call."""
    from evaluation.export import load_tflite

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
    from evaluation.export import _image_spec, _state_tensor_specs, save_tflite
    from evaluation.quantize import check_clips, stream_samples
    from search_space import movinet
    from search_space.builder import build_model
    from search_space.stream import init_states

    # the stream files as export_model writes them (same functions), without its base-model files
    spec = movinet("a0", stream=True)
    model = build_model(spec, 600, mode="stream", resolution=RESOLUTION)
    clips = synthetic(num_classes=4, clips_per_class=2, frames=16, resolution=RESOLUTION).train.x
    clips = check_clips(clips[: max(1, calibration // 16)], RESOLUTION)
    inputs = {"image": _image_spec(1, 1, RESOLUTION), **_state_tensor_specs(spec, RESOLUTION, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        files = {"float": save_tflite(model, inputs, Path(tmp) / "stream.tflite"),
                 "int8": save_tflite(model, inputs, Path(tmp) / "stream_int8.tflite",
                                     representative=stream_samples(model, init_states(spec, 1, RESOLUTION), clips))}
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
    from evaluation.export import export_model, load_tflite
    from evaluation.proxy import Budget, train_proxy
    from nas.config import dataset_for

    df = load_results("results/reference")
    row = df[df["state"] == "COMPLETE"].sort_values("val_accuracy", ascending=False).iloc[0]
    spec = row["spec"]
    demo = yaml.safe_load(Path("nas/configs/demo.yaml").read_text())
    data = load_dataset(dataset_for(demo["dataset"], spec))  # the demo's task at the spec's frames and size
    budget = Budget(**demo["proxy"])
    start = time.perf_counter()
    result = train_proxy(spec, data, budget, seed=0, return_model=True)
    print(f"trial {int(row['number'])} of results/reference ({spec.frames}x{spec.resolution}px, "
          f"{int(row['params']):,} params) trained {budget.epochs} epochs in {time.perf_counter() - start:.0f} s: "
          f"Keras val_accuracy {result.metrics['val_accuracy']:.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_model(spec, result.model, tmp, formats=("tflite", "tflite-int8"),
                             representative=data.train.x[::max(1, len(data.train.x) // 32)][:32],
                             num_classes=data.num_classes)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("speed", "accuracy"), default=["speed", "accuracy"])
    parser.add_argument("--frames", type=int, default=200, help="timed stream steps per file (default 200)")
    parser.add_argument("--calibration", type=int, default=64, help="calibration frames of the speed part (64)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    if "speed" in args.part:
        speed(args.frames, args.calibration)
    if "accuracy" in args.part:
        accuracy()


if __name__ == "__main__":
    main()
