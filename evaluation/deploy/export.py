"""Export a built architecture: spec YAML, `.keras`, TF SavedModel, TFLite, base and stream.

`export_model(spec, model_or_weights, out_dir)` writes one folder that `movinas predict` (and
`evaluation.deploy.predict.load_for_inference`) reads back through its `export.json` manifest:

| file | what |
|---|---|
| `spec.yaml` | the `ArchSpec` (format `"yaml"`) |
| `labels.txt` | one class name a line, when labels are given |
| `model.keras` | the base model, any batch, frames and size (format `"keras"`) |
| `model.weights.h5` | the base model's weights alone (format `"weights"`, not written by default) |
| `saved_model/` | TF SavedModel, signature `serving_default`: `{"image": float32[batch, frames, height, width, 3]}` in [0, 1] → `{"logits": float32[batch, classes]}`, every input dimension dynamic (the TF-Hub MoViNet convention) |
| `model.tflite` | TFLite base model, input `[1, any frames, resolution, resolution, 3]` (static spatial sizes, which TFLite wants; the manifest names them), so it classifies the same frames as the other formats |
| `stream.keras`, `stream_saved_model/` | with `stream=True`: the stream model; inputs `image` `[batch, t, resolution, resolution, 3]` (any batch and t) and every state, outputs `logits` and the new states; the SavedModel adds TF Hub's `init_states` and `call` signatures |
| `stream.tflite` | with `stream=True`: the stream model for one frame a call, batch 1, converted from its one-frame graph (`evaluation.deploy.frame_graph`: 4-D float states, every op in XNNPACK); states are explicit inputs and outputs of the same names, listed in the manifest's `tflite_states`, zeros at the start |
| `model_fp16.tflite`, `stream_fp16.tflite` | format `"tflite-fp16"`: float16 weights, float32 inputs, outputs and compute |
| `model_dynamic.tflite`, `stream_dynamic.tflite` | format `"tflite-dynamic"`: int8 weights, float activations (no calibration) |
| `model_int8.tflite`, `stream_int8.tflite` | format `"tflite-int8"`: the TFLite files with int8 weights and activations (float32 inputs and outputs), calibrated on `representative` clips; the stream file keeps its running means in float |
| `stream_gpu.tflite` | with `ExportOptions(gpu_compatible=True)`: the float stream file with image [1, H, W, 3]: no tensor above rank 4 (LiteRT GPU delegate) |
| `export.json` | the manifest: files, input sizes, classes, state names, shapes and dtypes (`states`: the Keras and SavedModel stream models'; `tflite_states`: the stream TFLite files') |

The stream model carries the base model's weights (they are the same variables in the same order);
feeding a clip frame by frame through it gives the causal base model's logits.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from search_space import validate
from search_space.spec import NUM_CLASSES, ArchSpec
from search_space.stream import state_specs

FORMATS = ("yaml", "keras", "savedmodel", "tflite")
"""Formats written by default."""
TFLITE_FORMATS = {"tflite": "float", "tflite-fp16": "fp16", "tflite-dynamic": "dynamic", "tflite-int8": "int8"}
"""TFLite formats and the precision (`save_tflite`) each is written in."""
ALL_FORMATS = ("yaml", "keras", "weights", "savedmodel", *TFLITE_FORMATS)
PRECISIONS = ("float", "fp16", "dynamic", "int8")
"""TFLite precisions, as `save_tflite` names them."""
FLOAT_OPS = ("SUB", "DIV")
"""Op types an int8 file of a function (the stream frame graph) keeps in float: its running means and frame
count (`evaluation.deploy.frame_graph`), whose updates shrink below an int8 step as the frames add up."""
MANIFEST = "export.json"
MANIFEST_VERSION = 1
FILES = {
    "yaml": "spec.yaml",
    "labels": "labels.txt",
    "keras": "model.keras",
    "weights": "model.weights.h5",
    "savedmodel": "saved_model",
    "tflite": "model.tflite",
    "stream_keras": "stream.keras",
    "stream_savedmodel": "stream_saved_model",
    "stream_tflite": "stream.tflite",
    "tflite-fp16": "model_fp16.tflite",
    "tflite-dynamic": "model_dynamic.tflite",
    "tflite-int8": "model_int8.tflite",
    "stream_tflite-fp16": "stream_fp16.tflite",
    "stream_tflite-dynamic": "stream_dynamic.tflite",
    "stream_tflite-int8": "stream_int8.tflite",
    "stream_tflite-gpu": "stream_gpu.tflite",
}


@dataclass(frozen=True)
class ExportOptions:
    """The seldom set options of `export_model`: sizes it otherwise takes from the model and the spec,
    and the GPU stream file. `num_classes` defaults to the model's output width, else the number of
    labels, else 600. `resolution` (spec default) fixes the TFLite input size; it and `frames` (spec
    default) are recorded in the manifest as the model's input. `gpu_compatible=True` (with `stream`)
    adds `stream_gpu.tflite`: the float stream file with a [1, H, W, 3] image, so no tensor of the graph
    has more than 4 dimensions (the LiteRT GPU delegate's limit)."""

    num_classes: int | None = None
    resolution: int | None = None
    frames: int | None = None
    gpu_compatible: bool = False


@dataclass(frozen=True)
class _Job:
    """What `export_model` writes, checked: the options resolved against the spec and the model."""

    spec: ArchSpec
    formats: tuple[str, ...]
    stream: bool
    labels: list[str] | None
    num_classes: int
    resolution: int
    frames: int
    representative: Any
    gpu_compatible: bool

    def tflite(self) -> list[str]:
        """The TFLite formats asked for, in `TFLITE_FORMATS` order."""
        return [f for f in TFLITE_FORMATS if f in self.formats]


class _Folder:
    """The export folder being written: each file's path by artifact key, and the manifest."""

    def __init__(self, out: Path, job: _Job):
        out.mkdir(parents=True, exist_ok=True)
        self.out, self.paths = out, {}
        self.manifest: dict[str, Any] = {
            "version": MANIFEST_VERSION, "name": job.spec.name, "num_classes": job.num_classes,
            "frames": job.frames, "resolution": job.resolution, "causal": job.spec.causal, "stream": job.stream,
            "files": {},
        }

    def path(self, key: str) -> Path:
        return self.out / FILES[key]

    def put(self, key: str, path: Path) -> None:
        self.paths[key] = path
        self.manifest["files"][key] = path.name


def export_model(
    spec: ArchSpec,
    model_or_weights: Any,
    out_dir: str | Path,
    formats: Sequence[str] = FORMATS,
    *,
    stream: bool = False,
    labels: Sequence[str] | None = None,
    representative: Any = None,
    options: ExportOptions | None = None,
) -> dict[str, Path]:
    """Write `spec` with the given weights to `out_dir` in `formats`; returns {artifact: path}.

    `model_or_weights` is a Keras model built from `spec` (at any input size), the list its
    `get_weights()` returns, or the path of a `.weights.h5` file. `stream=True` (causal specs only)
    adds the stream model in the same formats; its TFLite files are the one-frame graph of
    `evaluation.deploy.frame_graph` (4-D states, every op in XNNPACK), whose states the manifest lists
    under `tflite_states`. TFLite precisions (`TFLITE_FORMATS`): `"tflite"` float32, `"tflite-fp16"`
    float16 weights, `"tflite-dynamic"` int8 weights with float activations, `"tflite-int8"`
    full-integer post-training quantization calibrated on `representative`: clips [N, T, H, W, 3] in
    [0, 1], e.g. `evaluation.deploy.quantize.calibration_clips` of the study's dataset (see
    `evaluation.deploy.quantize`); a stream is calibrated on every clip streamed to its end. `options`
    (`ExportOptions`): the number of classes, the input size, the GPU stream file. Artifact keys: the
    format names, `stream_<format>` for stream artifacts (`stream_tflite-gpu`), `labels`, `manifest`.
    """
    job = _job(spec, model_or_weights, formats, stream, labels, representative, options or ExportOptions())
    from search_space.builder import build_model

    with float32_policy():
        base = build_model(spec, job.num_classes)
    _set_weights(base, model_or_weights)
    folder = _Folder(Path(out_dir), job)
    _export_base(job, base, folder)
    if stream:
        _export_stream(job, base, folder)
    folder.paths["manifest"] = _write_text(folder.out / MANIFEST, json.dumps(folder.manifest, indent=2) + "\n")
    return folder.paths


def _job(spec: ArchSpec, model_or_weights: Any, formats: Sequence[str], stream: bool, labels, representative,
         options: ExportOptions) -> _Job:
    """`export_model`'s arguments checked (ValueError naming the bad one) and resolved."""
    formats = tuple(formats)
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad or not formats:
        raise ValueError(f"formats: {bad or 'empty'} not allowed; choose from {', '.join(ALL_FORMATS)}")
    if stream and not spec.causal:
        raise ValueError(f"stream=True needs a causal spec; spec {spec.name!r} has causal: false")
    if options.gpu_compatible and not stream:
        raise ValueError("gpu_compatible=True writes a stream file; it needs stream=True")
    resolution = _positive("resolution", options.resolution or spec.resolution)
    frames = _positive("frames", options.frames or spec.frames)
    num_classes = _num_classes(model_or_weights, labels, options.num_classes)
    if "tflite-int8" in formats:
        if representative is None:
            raise ValueError("formats: tflite-int8 needs representative clips to calibrate on (e.g. "
                             "evaluation.deploy.quantize.calibration_clips of the study's dataset)")
        from evaluation.deploy.quantize import check_clips

        representative = check_clips(representative, resolution)
    if labels is not None:
        labels = [str(label) for label in labels]
        if len(labels) != num_classes:
            raise ValueError(f"labels: {len(labels)} given, but the model has {num_classes} classes")
        if any(not label.strip() or "\n" in label for label in labels):
            raise ValueError("labels: every label must be one non-empty line")
    return _Job(spec, formats, stream, labels, num_classes, resolution, frames, representative,
                options.gpu_compatible)


def _export_base(job: _Job, base, folder: _Folder) -> None:
    """The base model's files (and the spec and labels)."""
    if "yaml" in job.formats:
        folder.put("yaml", _write_text(folder.path("yaml"), job.spec.to_yaml()))
    if job.labels is not None:
        folder.put("labels", _write_text(folder.path("labels"), "\n".join(job.labels) + "\n"))
    if "keras" in job.formats:
        base.save(folder.path("keras"))
        folder.put("keras", folder.path("keras"))
    if "weights" in job.formats:
        base.save_weights(folder.path("weights"))
        folder.put("weights", folder.path("weights"))
    if "savedmodel" in job.formats:
        folder.put("savedmodel", save_signature(base, {"image": _image_spec(None, None, None)},
                                                folder.path("savedmodel")))
    for fmt in job.tflite():
        samples = None
        if fmt == "tflite-int8":
            from evaluation.deploy.quantize import base_samples

            samples = base_samples(job.representative)
            folder.manifest["int8_calibration"] = {"clips": len(job.representative),
                                                   "frames": job.representative.shape[1]}
        folder.put(fmt, save_tflite(base, {"image": _image_spec(1, None, job.resolution)}, folder.path(fmt),
                                    representative=samples, precision=TFLITE_FORMATS[fmt]))
        folder.manifest["tflite_image_shape"] = [1, None, job.resolution, job.resolution, 3]  # any number of frames


def _export_stream(job: _Job, base, folder: _Folder) -> None:
    """The stream model's files: Keras and SavedModel of the Keras stream model, TFLite of its one-frame
    graph (`evaluation.deploy.frame_graph`), and the GPU file."""
    from search_space.builder import build_model

    spec, resolution = job.spec, job.resolution
    states = _state_tensor_specs(spec, resolution, 1)
    folder.manifest["states"] = {n: {"shape": list(s.shape), "dtype": s.dtype.name} for n, s in states.items()}
    if "keras" in job.formats or "savedmodel" in job.formats:
        with float32_policy():
            smodel = build_model(spec, job.num_classes, mode="stream", resolution=resolution)
        smodel.set_weights(base.get_weights())
        if "keras" in job.formats:
            smodel.save(folder.path("stream_keras"))
            folder.put("stream_keras", folder.path("stream_keras"))
        if "savedmodel" in job.formats:
            inputs = {"image": _image_spec(None, None, resolution), **_state_tensor_specs(spec, resolution, None)}
            folder.put("stream_savedmodel", save_signature(smodel, inputs, folder.path("stream_savedmodel"),
                                                           stream_states=state_specs(spec, resolution)))
    for fmt in job.tflite():
        key = "stream_" + fmt
        folder.put(key, save_stream_tflite(spec, base, resolution, fmt, folder.path(key), job.representative))
        folder.manifest["stream_tflite_image_shape"] = [1, 1, resolution, resolution, 3]
    if job.tflite():
        from evaluation.deploy.frame_graph import lite_state_specs

        folder.manifest["tflite_states"] = {n: {"shape": list(s.shape), "dtype": s.dtype}
                                            for n, s in lite_state_specs(spec, resolution).items()}
    if job.gpu_compatible:
        save_stream_tflite(spec, base, resolution, "tflite", folder.path("stream_tflite-gpu"), None, image_rank=4)
        folder.put("stream_tflite-gpu", folder.path("stream_tflite-gpu"))
        folder.manifest["stream_gpu_image_shape"] = [1, resolution, resolution, 3]


def save_stream_tflite(spec: ArchSpec, model, resolution: int, fmt: str, path: str | Path, clips=None,
                       image_rank: int = 5) -> Path:
    """One stream TFLite file as `export_model` writes it: `evaluation.deploy.frame_graph.frame_step` of the
    weights of `model` (a Keras model of causal `spec`, base or stream) at `resolution`, in the precision
    of TFLite format `fmt` (`TFLITE_FORMATS`; int8: calibrated on `clips` [N, T, H, W, 3] streamed
    through the float graph); `image_rank` 4 for a file without any rank-5 tensor."""
    import tensorflow as tf

    from evaluation.deploy.frame_graph import frame_step, lite_state_specs

    precision = TFLITE_FORMATS[fmt]
    states = lite_state_specs(spec, resolution)
    image = [1, resolution, resolution, 3] if image_rank == 4 else [1, 1, resolution, resolution, 3]
    inputs = {"image": tf.TensorSpec(image, tf.float32, name="image"),
              **{n: tf.TensorSpec(s.shape, s.dtype, name=n) for n, s in states.items()}}
    step = frame_step(spec, model, image_rank, int8=precision == "int8")
    samples = None
    if precision == "int8":
        from evaluation.deploy.quantize import frame_samples

        samples = frame_samples(step, {n: np.zeros(s.shape, s.dtype) for n, s in states.items()}, clips)
    return save_tflite(step, inputs, path, representative=samples, precision=precision)


@contextlib.contextmanager
def float32_policy():
    """Build under the float32 dtype policy whatever the global one (a mixed-precision session may
    have set another): exported and served models compute in float32."""
    import keras

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(policy)


def read_manifest(export_dir: str | Path) -> dict[str, Any]:
    """The `export.json` of a folder written by `export_model` (ValueError if unreadable)."""
    path = Path(export_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable export manifest ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {data.get('version') if isinstance(data, dict) else None!r}, "
                         f"this movinas reads version {MANIFEST_VERSION}")
    return data


# ---------------------------------------------------------------------------------------------
# the formats


def save_signature(model, inputs: dict, path: str | Path, stream_states: dict | None = None) -> Path:
    """Save `model` as a TF SavedModel whose `serving_default` takes the dict `inputs`
    ({name: tf.TensorSpec}) and returns a dict with `logits` (and the new states of a stream model).

    With `stream_states` ({name: `search_space.stream.StateSpec`}), the signatures of TF Hub's MoViNet
    stream models are added: `init_states(input_shape=int32[5])` returns zero states for a batch of
    `input_shape[0]`, and `call` (the same function as `serving_default`) takes `image` and the
    states and returns `logits` and the new states. Neither needs movinas to run.
    """
    import tensorflow as tf

    single = len(model.inputs) == 1  # a base model takes the image tensor itself

    @tf.function(input_signature=[inputs])
    def serve(features):
        return _as_output_dict(model(features["image"] if single else features, training=False))

    module = tf.Module()
    module.model = model  # tracks the variables
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    signatures = {"serving_default": serve.get_concrete_function()}
    if stream_states is not None:
        signatures["call"] = signatures["serving_default"]
        signatures["init_states"] = _init_states_function(stream_states).get_concrete_function()
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def _init_states_function(stream_states: dict):
    """TF Hub's `init_states`: the 5-d input shape [batch, frames, height, width, 3] → zero states
    of that batch (their other sizes are fixed by the export's resolution)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([5], tf.int32, name="input_shape")])
    def init_states(input_shape):
        batch = input_shape[:1]
        return {name: tf.zeros(tf.concat([batch, tf.constant(s.shape, tf.int32)], 0), s.dtype)
                for name, s in stream_states.items()}

    return init_states


def save_tflite(model, inputs: dict, path: str | Path, representative=None, precision: str | None = None) -> Path:
    """Convert `model` for the `inputs` ({name: tf.TensorSpec}) to a TFLite file of `precision`
    (`PRECISIONS`): "float" float32; "fp16" float16 weights, float32 compute (half the file; the GPU
    delegate computes in float16 anyway); "dynamic" int8 weights, float32 activations (dynamic-range
    quantization: a quarter of the file, no calibration); "int8" full-integer int8 calibrated on
    `representative` (a function returning an iterator of {input name: array}), its inputs and outputs
    still float32.

    `model` is a Keras model or a function of the input dict returning a dict of tensors (e.g.
    `evaluation.deploy.frame_graph.frame_step`). The graph is frozen (variables to constants) before
    conversion: TFLite's own freezing leaves every variable unfrozen when the model holds a scalar
    weight (ReZero scales), and the file then fails at run time. Conversion goes through a SavedModel
    signature so the TFLite signature keeps the input and output names (`image`, `logits`, the state
    names). Built-in TFLite ops only, so the file runs in the plain LiteRT interpreter.
    """
    import tensorflow as tf

    precision = precision or ("int8" if representative is not None else "float")
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {precision!r}, must be one of {', '.join(PRECISIONS)}")
    if (precision == "int8") != (representative is not None):
        raise ValueError("precision 'int8' needs representative inputs, and only it takes them")
    keras_model = hasattr(model, "inputs") and hasattr(model, "get_weights")
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="movinas-tflite-") as tmp, _quiet_absl():
        # constants captured by custom-gradient ops (swish's beta) cannot be saved with gradients
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(tf.Module(), tmp, signatures={"serving_default": _frozen_signature(model, inputs)},
                            options=options)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if precision != "float":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if precision == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        path.write_bytes(_convert(converter, representative, keras_model) if precision == "int8"
                         else converter.convert())
    return path


def _frozen_signature(model, inputs: dict):
    """The concrete serving function of `model` (Keras model or function of the input dict) for `inputs`,
    its variables frozen to constants (`evaluation.compat.freeze`), taking and returning named dicts."""
    import tensorflow as tf

    from evaluation.compat import freeze

    keras_model = hasattr(model, "inputs") and hasattr(model, "get_weights")
    single = keras_model and len(model.inputs) == 1

    @tf.function(input_signature=[inputs])
    def serve(features):
        if keras_model:
            return _as_output_dict(model(features["image"] if single else features, training=False))
        return dict(model(features))

    traced = serve.get_concrete_function()
    frozen = freeze(traced)

    @tf.function(input_signature=[inputs])
    def serve_frozen(features):  # the frozen graph takes the flattened dict (sorted names)
        return tf.nest.pack_sequence_as(traced.structured_outputs, frozen(*tf.nest.flatten(features)))

    return serve_frozen.get_concrete_function()


def _convert(converter, representative, keras_model: bool) -> bytes:
    """Full-integer int8 conversion calibrated on `representative`; a function's (the stream frame graph's)
    SUB and DIV, its running means and frame count, stay float (`FLOAT_OPS`)."""
    import tensorflow as tf

    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if keras_model:
        return converter.convert()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=list(FLOAT_OPS))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=representative,
                                                         debug_options=options)
    return debugger.get_nondebug_quantized_model()


def load_tflite(path: str | Path, num_threads: int | None = None):
    """The `serving_default` signature runner of a TFLite file: call it with numpy arrays by
    input name (`runner(image=...)`), get {output name: array}; `runner.get_input_details()`
    gives names, shapes and dtypes. Uses LiteRT (`ai-edge-litert`) when installed, else the
    deprecated `tf.lite.Interpreter`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such TFLite file")
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - depends on the environment
        Interpreter = None
    try:
        if Interpreter is not None:
            interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        else:
            import warnings

            import tensorflow as tf

            with warnings.catch_warnings():  # "deprecated, use ai_edge_litert": the fallback knows
                warnings.simplefilter("ignore", UserWarning)
                interpreter = tf.lite.Interpreter(model_path=str(path), num_threads=num_threads)
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable TFLite model ({' '.join(str(exc).split())})") from None
    return interpreter.get_signature_runner()


# ---------------------------------------------------------------------------------------------
# helpers


def _state_tensor_specs(spec: ArchSpec, resolution: int, batch: int | None) -> dict:
    """{state name: tf.TensorSpec} of `spec`'s stream model at `resolution` for `batch` (None: any)."""
    import tensorflow as tf

    return {n: tf.TensorSpec((batch, *s.shape), s.dtype, name=n) for n, s in state_specs(spec, resolution).items()}


@contextlib.contextmanager
def _quiet_absl():
    """Silence absl's warning that the frozen graph has no saved gradients (nothing trains it)."""
    from absl import logging

    level = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        yield
    finally:
        logging.set_verbosity(level)


def _image_spec(batch, frames, resolution):
    import tensorflow as tf

    return tf.TensorSpec([batch, frames, resolution, resolution, 3], tf.float32, name="image")


def _as_output_dict(outputs) -> dict:
    return dict(outputs) if isinstance(outputs, dict) else {"logits": outputs}


def _positive(name: str, value: Any) -> int:
    return validate.integer(value, name)


def _num_classes(model_or_weights: Any, labels, num_classes: int | None) -> int:
    if num_classes is not None:
        return _positive("num_classes", num_classes)
    shape = getattr(model_or_weights, "output_shape", None)
    if isinstance(shape, dict):
        shape = shape.get("logits")
    if shape and isinstance(shape[-1], int):
        return shape[-1]
    return len(labels) if labels is not None else NUM_CLASSES


def _set_weights(model, source: Any) -> None:
    """Copy `source` (a Keras model, a weight list or a .weights.h5 path) into `model`."""
    if isinstance(source, (str, Path)):
        if not Path(source).is_file():
            raise FileNotFoundError(f"{source}: no such weights file")
        model.load_weights(str(source))
        return
    if hasattr(source, "weights") and hasattr(model, "weights"):
        # match by variable path (`b3_dw/kernel`): the order of a functional model's weights follows
        # its graph, which changes with e.g. stochastic depth on or off, while the names do not
        by_path = {v.path: v for v in source.weights}
        if len(by_path) == len(source.weights) and set(by_path) == {v.path for v in model.weights}:
            source = [by_path[v.path].numpy() for v in model.weights]
    weights = source.get_weights() if hasattr(source, "get_weights") else list(source)
    mine = model.get_weights()
    if len(weights) != len(mine):
        raise ValueError(f"weights: {len(weights)} arrays given, the model built from the spec has {len(mine)}")
    for i, (w, m) in enumerate(zip(weights, mine)):
        if np.shape(w) != m.shape:
            raise ValueError(f"weights[{i}]: shape {np.shape(w)}, the model built from the spec expects {m.shape}")
    model.set_weights(weights)


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
