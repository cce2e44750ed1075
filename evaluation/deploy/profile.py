"""Measure a latency profile (`search_space.latency.LatencyProfile`) on this machine or, through a
command template, on another device.

Each op kind (`search_space.latency.ops`) is timed at shapes drawn from a search space: one small
model per (kind, shape), written by the project's own TFLite converter
(`evaluation.deploy.export.save_tflite`, the one the stream export uses) or run as a TF graph
(runtime `keras`). The time of a call is the median of the fastest quarter of many calls (robust to
other processes taking the cores), less the time of a call of a one-op model (the `overhead`, kept
as the profile's per-frame constant); each kind's times are then fitted by non-negative least
squares on (1, work, moved). Progress (each measured shape) is appended to a JSON-lines file, so an
interrupted run resumes where it stopped.

A command template (`adb shell ... --graph={model}`) times a model file elsewhere: `{model}` is
replaced by the file's path (quoted); the command prints a time (`parse_time_ms`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from search_space.latency import (
    FORMAT,
    MODES,
    RUNTIMES,
    LatencyProfile,
    ProfileError,
    features,
    kind_strides,
    ops,
)
from search_space.spec import NUM_CLASSES

WARMUP = 3
MIN_CALLS, MAX_CALLS, MIN_SECONDS = 15, 400, 0.15
PRECISION = {"tflite": "float", "tflite-int8": "int8"}


# ---------------------------------------------------------------------------------------------
# which shapes


def choose_shapes(space, mode: str = "stream", per_kind: int = 8, samples: int = 300,
                  seed: int = 0) -> dict[str, list[tuple[int, ...]]]:
    """Up to `per_kind` shapes of every op kind that `samples` random architectures of `space` use,
    spread evenly over the range of each kind's work (log scale, ends included). Stream mode draws
    each architecture causal, with its own conv type and with (2+1)D, so that a profile of a
    non-causal space also serves its stream models."""
    rng = np.random.default_rng(seed)
    seen: dict[str, set] = {}
    for _ in range(samples):
        spec = space.sample(rng)
        variants = [spec]
        if mode == "stream":
            variants = [spec.replace(causal=True), spec.replace(causal=True, conv_type="2plus1d")]
        for kind, shape in (op for s in variants for op in ops(s, mode)):
            seen.setdefault(kind, set()).add(shape)
    out = {}
    for kind, shapes in sorted(seen.items()):
        ranked = sorted(shapes, key=lambda s: (sum(features(kind, s)), s))
        if len(ranked) <= per_kind:
            out[kind] = ranked
            continue
        keys = np.log1p([sum(features(kind, s)) for s in ranked])
        targets = np.linspace(keys[0], keys[-1], per_kind)
        picks = sorted({int(np.argmin(np.abs(keys - t))) for t in targets})  # the ends, when 2 or more
        out[kind] = [ranked[i] for i in picks]
    return out


# ---------------------------------------------------------------------------------------------
# one small model per (kind, shape)


def op_function(kind: str, shape: tuple[int, ...], activation: str = "swish", seed: int = 0):
    """(function of a dict of tensors, {name: tf.TensorSpec}) computing one op of `kind` at `shape`
    as the frame graph writes it (random weights: speed does not depend on them)."""
    import tensorflow as tf

    from search_space.layers import ACTIVATIONS

    rng = np.random.default_rng(seed)

    def const(*dims):
        return np.asarray(rng.normal(0, 0.1, dims), np.float32)

    def spec(name, dims):
        return {name: tf.TensorSpec(list(dims), tf.float32, name=name)}

    if kind == "overhead":
        return (lambda d: {"y": d["x"] - np.float32(-1.0)}), spec("x", (1, 1, 1, 1))
    t, h, w, *rest = shape
    strides = [1, *kind_strides(kind), 1]
    if kind == "pointwise" or kind.startswith("conv_"):
        cin, cout, *k = rest
        kernel, bias = const(*(k or (1, 1)), cin, cout), const(cout)
        return (lambda d: {"y": tf.nn.bias_add(tf.nn.conv2d(d["x"], kernel, strides, "SAME"), bias)}), \
            spec("x", (t, h, w, cin))
    if kind.startswith("depthwise_"):
        c, kh, kw = rest
        kernel, bias = const(kh, kw, c, 1), const(c)
        return (lambda d: {"y": tf.nn.bias_add(tf.nn.depthwise_conv2d(d["x"], kernel, strides, "SAME"), bias)}), \
            spec("x", (t, h, w, c))
    if kind.startswith("avgpool_"):
        return (lambda d: {"y": tf.nn.avg_pool2d(d["x"], [3, 3], strides[1:3], "SAME")}), spec("x", (t, h, w, rest[0]))
    if kind.startswith("act_"):
        fn = ACTIVATIONS[kind[4:]]
        return (lambda d: {"y": fn(d["x"])}), spec("x", (t, h, w, rest[0]))
    if kind == "elementwise":
        return (lambda d: {"y": d["x"] + d["z"]}), {**spec("x", (t, h, w, rest[0])), **spec("z", (t, h, w, rest[0]))}
    if kind == "se":
        return _se(shape, const, ACTIVATIONS[activation]), spec("x", (t, h, w, rest[0]))
    if kind == "classifier":
        return _classifier(shape, const, ACTIVATIONS[activation]), spec("x", (t, h, w, rest[0]))
    raise ValueError(f"unknown op kind {kind!r}")


def _se(shape, const, act):
    import tensorflow as tf

    _, _, _, e, se_in, hid = shape
    w1, b1, w2, b2 = const(1, 1, se_in, hid), const(hid), const(1, 1, hid, e), const(e)

    def fn(d):
        m = tf.reduce_mean(d["x"], axis=[1, 2], keepdims=True)
        if se_in != e:  # 2plus3d: [clip mean | frame mean]
            m = tf.concat([m, m * np.float32(0.5)], axis=-1)
        g = act(tf.nn.bias_add(tf.nn.conv2d(m, w1, 1, "VALID"), b1))
        return {"y": tf.sigmoid(tf.nn.bias_add(tf.nn.conv2d(g, w2, 1, "VALID"), b2))}

    return fn


def _classifier(shape, const, act):
    import tensorflow as tf

    _, _, _, hp, hidden, classes = shape
    w1, b1, w2, b2 = const(1, 1, hp, hidden), const(hidden), const(1, 1, hidden, classes), const(classes)

    def fn(d):
        m = tf.reduce_mean(d["x"], axis=[1, 2], keepdims=True)
        x = act(tf.nn.bias_add(tf.nn.conv2d(m, w1, 1, "VALID"), b1))
        return {"y": tf.reshape(tf.nn.bias_add(tf.nn.conv2d(x, w2, 1, "VALID"), b2), [-1, classes])}

    return fn


# ---------------------------------------------------------------------------------------------
# timing


def robust_ms(seconds: list[float]) -> tuple[float, float]:
    """(median of the fastest quarter, its spread: overall median / that − 1), in ms: other processes
    only ever add time, so the fast calls are the op's own."""
    s = np.sort(np.asarray(seconds)) * 1000
    fast = float(np.median(s[: max(1, len(s) // 4)]))
    return fast, float(np.median(s) / fast - 1) if fast > 0 else 0.0


def time_calls(call, min_calls: int = MIN_CALLS, max_calls: int = MAX_CALLS, min_seconds: float = MIN_SECONDS,
               clock: str = "wall"):
    """Times of `call()` after `WARMUP` calls: at least `min_calls` and `min_seconds` of wall time.
    `clock` "wall", or "thread_cpu": the calling thread's CPU time, which waiting for a core on a
    loaded machine does not inflate (a one-thread runtime computes in the calling thread)."""
    for _ in range(WARMUP):
        call()
    times = []
    tick = time.thread_time if clock == "thread_cpu" else time.perf_counter
    start = time.perf_counter()
    while len(times) < max_calls and (len(times) < min_calls or time.perf_counter() - start < min_seconds):
        t = tick()
        call()
        times.append(tick() - t)
    return times


def clock_for(threads: int) -> str:
    """The clock a measurement at `threads` uses: one thread's own CPU time, else wall time."""
    return "thread_cpu" if threads == 1 else "wall"


def interpreter(path: str | Path, threads: int):
    """A LiteRT interpreter of the file with its inputs set to random values (XNNPACK, `threads`)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the environment
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in it.get_input_details():
        it.set_tensor(d["index"], rng.uniform(0, 1, d["shape"]).astype(d["dtype"]))
    return it


def time_tflite(path: str | Path, threads: int, **kw) -> tuple[float, float]:
    """Robust ms of one `invoke()` of a TFLite file (inputs set once: what benchmark_model times); on
    one thread its CPU time (`clock_for`)."""
    it = interpreter(path, threads)
    return robust_ms(time_calls(it.invoke, clock=clock_for(threads), **kw))


def time_function(fn, inputs: dict, **kw) -> tuple[float, float]:
    """Robust ms of one call of `fn` traced as a TF graph (the `keras` runtime)."""
    import tensorflow as tf

    graph = tf.function(fn, input_signature=[inputs])
    rng = np.random.default_rng(0)
    feed = {n: tf.constant(rng.uniform(0, 1, s.shape).astype(np.float32)) for n, s in inputs.items()}
    return robust_ms(time_calls(lambda: graph(feed), **kw))  # wall: TensorFlow runs ops on its own threads


_AVG_US = re.compile(r"Inference \(avg\):\s*([0-9.eE+]+)")  # TFLite's benchmark_model, in microseconds
_NUMBER = re.compile(r"([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|us|µs|s)?\b")


def parse_time_ms(text: str) -> float | None:
    """The time a command printed, in ms: TFLite benchmark_model's `Inference (avg): N` (µs), else the
    last number of the output, in ms unless followed by `us`/`µs` or `s`. None when there is none."""
    found = _AVG_US.findall(text)
    if found:
        return float(found[-1]) / 1000
    numbers = _NUMBER.findall(text)
    if not numbers:
        return None
    value, unit = numbers[-1]
    return float(value) * {"us": 1e-3, "µs": 1e-3, "s": 1e3}.get(unit, 1.0)


def run_command(template: str, model: str | Path, timeout: float) -> float:
    """Run `template` with `{model}` replaced by the (quoted) path of the model file; the ms it prints.
    `ProfileError` when it fails, times out or prints no time."""
    command = template.replace("{model}", shlex.quote(str(model)))
    try:
        done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise ProfileError(f"--command: {template!r} did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
        raise ProfileError(f"--command: {template!r} exited with status {done.returncode} ({last})")
    ms = parse_time_ms(done.stdout)
    if ms is None or not np.isfinite(ms) or ms < 0:
        raise ProfileError(f"--command: {template!r} printed no time (expected a number of ms, e.g. '1.23 ms', "
                           f"or benchmark_model's 'Inference (avg): N'); it printed {done.stdout.strip()[:80]!r}")
    return ms


# ---------------------------------------------------------------------------------------------
# the profile


def versions(runtime: str) -> dict[str, str]:
    """The versions that make a profile's figures: runtime library and movinas' profile format."""
    from importlib import metadata

    out = {"profile_format": str(FORMAT)}
    for package in (("tensorflow",) if runtime == "keras" else ("tensorflow", "ai-edge-litert")):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def machine() -> str:
    """This machine in words: CPU model, cores, OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


class Profiler:
    """Measures the shapes of `choose_shapes` for one runtime, mode and thread count into a progress
    file under `work` (resumed when present), then fits a `LatencyProfile`."""

    def __init__(self, runtime: str, mode: str, threads: int, work: str | Path, command: str | None = None,
                 timeout: float = 120.0, activation: str = "swish"):
        if runtime not in RUNTIMES:
            raise ProfileError(f"--runtime: {runtime!r}, must be one of {', '.join(RUNTIMES)}")
        if mode not in MODES:
            raise ProfileError(f"--mode: {mode!r}, must be one of {', '.join(MODES)}")
        if command is not None and runtime == "keras":
            raise ProfileError("--command times TFLite files elsewhere; it needs --runtime tflite or tflite-int8")
        self.runtime, self.mode, self.threads, self.command = runtime, mode, threads, command
        self.timeout, self.activation = timeout, activation
        self.work = Path(work)
        clock = "remote" if command is not None else "wall" if runtime == "keras" else clock_for(threads)
        self.header = {"runtime": runtime, "mode": mode, "threads": threads, "command": command, "clock": clock,
                       "versions": versions(runtime), "machine": machine() if command is None else None}
        key = hashlib.sha1(json.dumps(self.header, sort_keys=True).encode()).hexdigest()[:10]
        self.progress = self.work / f"progress-{runtime}-{mode}-{threads}t-{key}.jsonl"

    def done(self) -> dict[tuple[str, tuple], list[tuple[float, float]]]:
        """Measurements already on disk: {(kind, shape): [(ms, spread) of each round]}."""
        if not self.progress.exists():
            return {}
        lines = self.progress.read_text().splitlines()
        if not lines or json.loads(lines[0]) != self.header:
            raise ProfileError(f"{self.progress}: partial progress of another runtime, machine or version; "
                               f"delete it or profile into another --out")
        out: dict = {}
        for line in lines[1:]:
            try:
                r = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by an interrupt: measured again
                continue
            out.setdefault((r["kind"], tuple(r["shape"])), []).append((r["ms"], r["spread"]))
        return out

    def measure(self, kind: str, shape: tuple[int, ...]) -> tuple[float, float]:
        """(robust ms, spread) of one op model, call overhead included."""
        fn, inputs = op_function(kind, shape, self.activation)
        if self.runtime == "keras":
            return time_function(fn, inputs)
        from evaluation.deploy.export import save_tflite

        name = f"{kind}-{'x'.join(map(str, shape)) or 'call'}-{self.runtime}.tflite"
        path = self.work / "models" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            rep = _representative(inputs) if self.runtime == "tflite-int8" else None
            save_tflite(fn, inputs, path.with_suffix(".part"), representative=rep, precision=PRECISION[self.runtime])
            path.with_suffix(".part").rename(path)
        if self.command is not None:
            return run_command(self.command, path, self.timeout), 0.0
        return time_tflite(path, self.threads)

    def measure_network(self, spec, resolution: int) -> tuple[float, float]:
        """(robust ms, spread) of one frame of the stream model of `spec` (random weights), as exported."""
        import tensorflow as tf

        from evaluation.deploy.export import save_stream_tflite
        from evaluation.deploy.frame_graph import frame_step, lite_state_specs

        name = f"network-{spec_key(spec)}-{resolution}-{self.runtime}.tflite"
        path = self.work / "models" / name
        if self.runtime == "keras":
            step = tf.function(frame_step(spec, random_model(spec, resolution)))
            feed = {"image": tf.zeros([1, 1, resolution, resolution, 3]),
                    **{n: tf.zeros(s.shape, s.dtype) for n, s in lite_state_specs(spec, resolution).items()}}
            return robust_ms(time_calls(lambda: step(feed), min_seconds=0.3))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            clips = np.random.default_rng(0).uniform(0, 1, (2, 4, resolution, resolution, 3)).astype(np.float32)
            save_stream_tflite(spec, random_model(spec, resolution), resolution,
                               {"tflite": "tflite", "tflite-int8": "tflite-int8"}[self.runtime],
                               path.with_suffix(".part"), clips if self.runtime == "tflite-int8" else None)
            path.with_suffix(".part").rename(path)
        if self.command is not None:
            return run_command(self.command, path, self.timeout), 0.0
        return time_tflite(path, self.threads, min_seconds=0.3)

    def run(self, shapes: dict[str, list[tuple]], rounds: int = 3, progress_bar: bool = True,
            networks: tuple = ()) -> dict:
        """Measure every shape `rounds` times (the rounds minutes apart: a burst of load on the machine
        spoils one, not all), skipping what is on disk; {(kind, shape): (fastest ms, its spread)}."""
        from tqdm import tqdm

        self.work.mkdir(parents=True, exist_ok=True)
        measured = self.done()
        if not self.progress.exists():
            self.progress.write_text(json.dumps(self.header) + "\n")
        keys = [("overhead", ())] + [(k, s) for k, ss in shapes.items() if k != "overhead" for s in ss]
        nets = {("network", (i, res)): (spec, res) for i, (spec, res) in enumerate(networks)}
        keys += list(nets)
        rounds = 1 if self.command is not None else rounds  # a remote tool repeats on its own
        todo = [key for r in range(rounds) for key in keys if len(measured.get(key, ())) <= r]
        with open(self.progress, "a") as log, _quiet_tf():
            for kind, shape in tqdm(todo, desc=f"profile {self.runtime} {self.threads}t", unit="op",
                                    disable=not progress_bar):
                ms, spread = self.measure_network(*nets[(kind, shape)]) if kind == "network" else \
                    self.measure(kind, shape)
                measured.setdefault((kind, shape), []).append((ms, spread))
                log.write(json.dumps({"kind": kind, "shape": list(shape), "ms": ms, "spread": spread}) + "\n")
                log.flush()
        return {key: min(measured[key]) for key in keys}


def fit_profile(results: dict, header: dict, space: str = "", networks: tuple = ()) -> LatencyProfile:
    """A profile of timed ops: per kind its points (size = work + moved, ms less the call overhead),
    sizes measured twice averaged; its `scale`: the median of the whole `networks`' times over their
    ops' sum. Its spread: the median repeat spread, the error of predicting each inner point from its
    neighbours alone (leave-one-out: how far the table is from smooth), the networks' ratios."""
    import dataclasses

    from search_space.latency import estimate_latency

    overhead = results[("overhead", ())][0]
    by_kind: dict[str, dict[float, list]] = {}
    for (kind, shape), (ms, _) in results.items():
        if kind not in ("overhead", "network"):
            by_kind.setdefault(kind, {}).setdefault(float(sum(features(kind, shape))), []).append(max(ms - overhead, 0.0))
    kinds = {k: tuple((x, float(np.mean(v))) for x, v in sorted(points.items())) for k, points in by_kind.items()}
    errors = [e for points in kinds.values() for e in _leave_one_out(points)]
    spreads = [s for _, s in results.values()]
    profile = LatencyProfile(
        runtime=header["runtime"], mode=header["mode"], threads=header["threads"],
        machine=header["machine"] or "(remote)", kinds=kinds, overhead_ms=float(overhead),
        versions=header["versions"], clock=header["clock"],
        spread={"repeat_spread_median": float(np.median(spreads)),
                "interpolation_error_median": float(np.median(errors)) if errors else 0.0,
                "interpolation_error_p90": float(np.percentile(errors, 90)) if errors else 0.0},
        space=space, command=header["command"], created=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        samples=len(results))
    if not networks:
        return profile
    ratios = [(results[("network", (i, res))][0] - overhead) / (estimate_latency(spec, profile, resolution=res) - overhead)
              for i, (spec, res) in enumerate(networks)]
    spread = {**profile.spread, "network_ratio_min": float(min(ratios)), "network_ratio_max": float(max(ratios))}
    return dataclasses.replace(profile, scale=float(np.median(ratios)), spread=spread)


def _leave_one_out(points: tuple) -> list[float]:
    """|predicted / measured − 1| of each inner point of a kind from the table without it."""
    out = []
    for i in range(1, len(points) - 1):
        x, ms = points[i]
        if ms > 0:
            rest = LatencyProfile("tflite", "stream", 1, "", {"k": points[:i] + points[i + 1:]}, 0.0)
            out.append(abs(rest.at("k", x) / ms - 1))
    return out


def calibration_networks(space, count: int, mode: str = "stream", resolutions: tuple[int, ...] = ()) -> tuple:
    """`count` (spec, resolution) pairs of `space` timed whole to find a profile's `scale`: seeded
    (1,000 on), causal (2+1)D in stream mode (the stream models MoViNet ships; the frame graph of a
    causal 3d conv with a k×1×1 kernel and a spatial stride does not build), at `resolutions` in turn
    (default: each architecture's own)."""
    out = []
    for j in range(count if mode == "stream" else 0):  # the clip model is not calibrated: scale 1
        spec = space.sample(np.random.default_rng(1000 + j), name=f"calibration_{j}")
        spec = spec.replace(causal=True, conv_type="2plus1d")
        out.append((spec, resolutions[j % len(resolutions)] if resolutions else spec.resolution))
    return tuple(out)


def spec_key(spec) -> str:
    """A short stable name of an architecture (file names)."""
    return hashlib.sha1(spec.to_yaml().encode()).hexdigest()[:12]


def random_model(spec, resolution: int, seed: int = 0, num_classes: int = NUM_CLASSES):
    """The Keras model of `spec` with `num_classes` outputs and random weights, the constant-initialized
    ones (batch-norm statistics, biases, ReZero scales) drawn too: an all-zero residual branch would not
    time (nor quantize) like a trained one."""
    from search_space.builder import build_model

    model = build_model(spec, num_classes, resolution=resolution)
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.size and np.all(w == w.flat[0]):
            w = rng.uniform(0.5, 1.5, w.shape) if w.flat[0] == 1 else rng.normal(0, 0.2, w.shape)
        weights.append(np.asarray(w, np.float32))
    model.set_weights(weights)
    return model


def _representative(inputs: dict):
    """Calibration inputs of an int8 op model: a few random draws."""
    rng = np.random.default_rng(0)

    def gen():
        for _ in range(4):
            yield {n: rng.uniform(0, 1, s.shape).astype(np.float32) for n, s in inputs.items()}

    return gen


class _quiet_tf:
    """TensorFlow's converter chatter off while profiling (absl warnings per converted model)."""

    def __enter__(self):
        import logging

        self.logger = logging.getLogger("tensorflow")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: Any) -> None:
        self.logger.setLevel(self.level)
