"""Models loaded for inference: what `load_for_inference` accepts and the `InferenceModel` it
returns (a clip function and a stream factory over Keras, SavedModel or TFLite), and the
`StreamSession` that carries one stream model's states between calls.

Accepted: a folder written by `evaluation.deploy.export.export_model` (read through `export.json`), a
`.keras` file, a spec YAML with its weights beside it (`<name>.weights.h5`, else
`model.weights.h5`; classes from a `labels.txt` beside it, else 600), a TensorFlow SavedModel whose
`serving_default` signature takes `{"image": float32[batch, frames, height, width, 3]}` in [0, 1]
(as TF Hub's MoViNets do), or a `.tflite` file. A model whose inputs are `image` plus more is a
stream model; the other inputs are its states, which start at zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.deploy.export import FILES, float32_policy, load_tflite, read_manifest
from search_space.spec import NUM_CLASSES
from search_space.stream import StateSpec, model_state_specs, zero_states

DEFAULT_RESOLUTION = 172
"""Input size for models that accept any size and say nothing else (A0's, the TF-Hub default)."""

BACKENDS = ("keras", "savedmodel", "tflite", "tflite-int8")
"""Artifacts of an export folder that can run, in the order tried by default."""
MODEL_KINDS = ("an export folder (export.json)", "a .keras file", "a spec YAML with weights beside it",
               "a TF SavedModel folder", "a .tflite file")


class StreamSession:
    """One stream model and its states: `push` sub-clips, read the running `logits`.

    `step` maps {"image": [B, t, H, W, 3], **states} to {"logits": [B, K], **new states}; only the
    states are kept between calls, so memory does not grow with the video.
    """

    def __init__(self, step: Callable[[dict], dict], states: dict):
        self._step = step
        self.states = dict(states)
        self.frames_seen = 0
        self.logits: np.ndarray | None = None

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Feed frames [B, t, H, W, 3] (float32 in [0, 1]); returns the logits [B, K] after them."""
        out = self._step({"image": frames, **self.states})
        self.states = {name: out[name] for name in self.states}
        self.logits = np.asarray(out["logits"], dtype=np.float32)
        self.frames_seen += int(np.shape(frames)[1])
        return self.logits

    @classmethod
    def from_keras(cls, model, states: dict | None = None, batch_size: int = 1) -> StreamSession:
        """A session over a Keras stream model (dict inputs `image` + states); zero states by default."""
        return cls(_keras_fn(model), states if states is not None else zero_states(model_state_specs(model),
                                                                                    batch_size))


@dataclass
class InferenceModel:
    """A classifier ready for `predict_video`: how to run a clip and how to open a stream, and the
    input it expects (`resolution`, and `frames` when its clip length is fixed; None = any)."""

    source: str
    num_classes: int
    clip: Callable[[np.ndarray], np.ndarray] | None = None  # [1, T, H, W, 3] -> logits [1, K]
    open_stream: Callable[[], StreamSession] | None = None
    labels: list[str] | None = None
    resolution: int | None = None
    frames: int | None = None
    causal: bool | None = None  # None: unknown
    why_no_stream: str = ""


LABEL_SETS = {"kinetics600": Path(__file__).with_name("kinetics_600_labels.txt")}
"""Label files shipped with movinas, by name: Kinetics-600's 600 class names in model order (TF Hub's
MoViNets and any 600-class model trained on Kinetics-600)."""


def read_labels(path: str | Path, num_classes: int | None = None) -> list[str]:
    """One label a line (trailing blank lines ignored) from a file or a name of `LABEL_SETS`; checks
    the count against `num_classes`."""
    path = LABEL_SETS.get(str(path), Path(path))
    if not path.is_file():
        raise FileNotFoundError(f"labels {path}: no such file (give a file, one label a line, or one of "
                                f"{', '.join(LABEL_SETS)})")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if "" in lines:
        raise ValueError(f"labels {path}: line {lines.index('') + 1} is empty; one label a line")
    if num_classes is not None and len(lines) != num_classes:
        raise ValueError(f"labels {path}: {len(lines)} lines, but the model has {num_classes} classes")
    return lines


# ---------------------------------------------------------------------------------------------
# loading


def load_for_inference(path: str | Path, *, stream: bool = False, backend: str | None = None) -> InferenceModel:
    """Load `path` for `predict_video`; `stream=True` prepares the stream model too.

    `backend` picks the artifact of an export folder: `keras` (default when present),
    `savedmodel` or `tflite`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model {path}: no such file or folder")
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: {backend!r}, allowed: {', '.join(BACKENDS)}")
    if path.is_dir() and (path / "export.json").is_file():
        return _load_export(path, stream, backend)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _from_signature(str(path), _load_signature(path))
    suffix = path.suffix.lower()
    if path.is_file() and suffix == ".keras":
        return _load_keras_file(path, stream)
    if path.is_file() and suffix in (".yaml", ".yml"):
        return _load_spec_yaml(path, stream)
    if path.is_file() and suffix == ".tflite":
        return _from_tflite(str(path), load_tflite(path))
    raise ValueError(f"model {path}: not {', '.join(MODEL_KINDS[:-1])} or {MODEL_KINDS[-1]}")


def _load_export(folder: Path, stream: bool, backend: str | None) -> InferenceModel:
    """An export folder: for a stream, only its stream artifact is loaded (default order tflite,
    keras, savedmodel: LiteRT runs a frame fastest and needs no TensorFlow); for a clip, only its
    base model (keras, savedmodel, tflite)."""
    manifest = read_manifest(folder)
    files = manifest.get("files", {})
    spec = _read_spec(folder / files["yaml"]) if "yaml" in files else None
    if stream and manifest["causal"]:
        model = _export_stream(folder, manifest, spec, backend)
    else:
        model = _export_clip(folder, manifest, spec, backend)
        model.why_no_stream = (f"needs a causal model; {manifest['name']!r} has causal: false"
                               if not manifest["causal"] else "loaded for clips (load with stream=True)")
    if "labels" in files:
        model.labels = read_labels(folder / files["labels"], manifest["num_classes"])
    model.resolution = manifest["resolution"]
    model.causal = manifest["causal"]
    return model


def _export_clip(folder: Path, manifest: dict, spec, backend: str | None) -> InferenceModel:
    files = manifest["files"]
    backend = backend or next((b for b in BACKENDS if b in files), "keras")
    if backend in files:
        return _LOADERS[backend](str(folder), folder / files[backend])
    if backend == "keras" and "weights" in files and spec is not None:
        return _from_keras(str(folder), _build_with_weights(spec, folder / files["weights"], manifest["num_classes"]))
    raise ValueError(f"model {folder}: no {backend} model in this export (it has: {', '.join(files)})")


def _export_stream(folder: Path, manifest: dict, spec, backend: str | None) -> InferenceModel:
    files = manifest["files"]
    for b in (backend,) if backend else ("tflite", "keras", "savedmodel"):
        if f"stream_{b}" in files:
            return _LOADERS[b](str(folder), folder / files[f"stream_{b}"])
    if backend in (None, "keras") and spec is not None and ("keras" in files or "weights" in files):
        base = _load_keras(folder / files["keras"]) if "keras" in files else \
            _build_with_weights(spec, folder / files["weights"], manifest["num_classes"])
        model = _from_keras(str(folder), base)
        model.open_stream = _stream_from_base(spec, base, manifest["resolution"])  # the base's weights
        return model
    what = f"{backend} stream model" if backend else "stream model"
    raise ValueError(f"model {folder}: no {what} in this export (it has: {', '.join(files)}); "
                     f"export with stream=True")


def _load_keras_file(path: Path, stream: bool) -> InferenceModel:
    keras_model = _load_keras(path)
    model = _from_keras(str(path), keras_model)
    spec_path = next((p for p in (path.with_suffix(".yaml"), path.parent / FILES["yaml"]) if p.is_file()), None)
    spec = _read_spec(spec_path) if spec_path else None
    if spec is not None:
        model.causal = spec.causal
        model.resolution = model.resolution or spec.resolution
    if stream and model.open_stream is None:
        if spec is None:
            model.why_no_stream = (f"{path.name} is a base model and no spec ({path.with_suffix('.yaml').name} "
                                   f"or spec.yaml) lies beside it to build its stream model")
        elif not spec.causal:
            model.why_no_stream = f"needs a causal model; {spec_path.name} has causal: false"
        else:
            model.open_stream = _stream_from_base(spec, keras_model, model.resolution or DEFAULT_RESOLUTION)
    return model


def _load_spec_yaml(path: Path, stream: bool) -> InferenceModel:
    spec = _read_spec(path)
    weights = next((p for p in (path.parent / f"{path.stem}.weights.h5", path.parent / FILES["weights"])
                    if p.is_file()), None)
    if weights is None:
        raise ValueError(f"model {path}: a spec YAML needs its weights beside it "
                         f"({path.stem}.weights.h5 or {FILES['weights']}), found neither")
    labels_path = path.parent / FILES["labels"]
    labels = read_labels(labels_path) if labels_path.is_file() else None
    num_classes = len(labels) if labels else NUM_CLASSES
    keras_model = _build_with_weights(spec, weights, num_classes)
    model = _from_keras(str(path), keras_model)
    model.labels, model.resolution, model.causal = labels, spec.resolution, spec.causal
    if stream:
        if spec.causal:
            model.open_stream = _stream_from_base(spec, keras_model, spec.resolution)
        else:
            model.why_no_stream = f"needs a causal model; {path.name} has causal: false"
    return model


def _read_spec(path: Path):
    from search_space.spec import ArchSpec

    return ArchSpec.from_yaml(path)


def _load_keras(path: Path):
    import keras  # `import search_space` (above) registers the custom layers once Keras is loaded

    try:
        return keras.saving.load_model(path)
    except (ValueError, OSError, TypeError) as exc:
        raise ValueError(f"model {path}: not a loadable .keras file ({' '.join(str(exc).split())[:300]})") from None


def _build_with_weights(spec, weights: Path, num_classes: int):
    from search_space.builder import build_model

    with float32_policy():
        model = build_model(spec, num_classes)
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as exc:
        raise ValueError(f"weights {weights}: do not fit spec {spec.name!r} with {num_classes} classes "
                         f"(give a labels.txt with one line per class); {' '.join(str(exc).split())[:200]}") from None
    return model


def _stream_from_base(spec, base, resolution: int) -> Callable[[], StreamSession]:
    """Build the stream model of causal `spec` with `base`'s weights; sessions start from zero states."""
    from search_space.builder import build_model
    from search_space.stream import init_states

    num_classes = int(base.output_shape[-1])
    with float32_policy():
        smodel = build_model(spec, num_classes, mode="stream", resolution=resolution, batch_size=1)
    smodel.set_weights(base.get_weights())
    step = _keras_fn(smodel)
    return lambda: StreamSession(step, init_states(spec, 1, resolution, num_classes))


# -- adapters: one per kind of runnable, each giving an InferenceModel ----------------------------


def _keras_fn(model) -> Callable:
    """`model` in inference mode as a graph function traced once for its own input shapes."""
    import tensorflow as tf

    specs = {t.name: tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs}
    if len(specs) == 1:
        return tf.function(lambda x: model(x, training=False), input_signature=list(specs.values()))
    return tf.function(lambda x: model(x, training=False), input_signature=[specs])


def _from_keras(source: str, model) -> InferenceModel:
    names = [t.name for t in model.inputs]
    if len(names) > 1:  # a stream model: dict inputs `image` + states
        if "image" not in names:
            raise ValueError(f"model {source}: inputs {names}, expected `image` (and stream states)")
        specs = model_state_specs(model)
        image = next(t for t in model.inputs if t.name == "image").shape
        logits = model.output["logits"] if isinstance(model.output, dict) else model.outputs[0]
        return _stream_model(source, _keras_fn(model), specs, image, int(logits.shape[-1]))
    fn = _keras_fn(model)
    shape = model.inputs[0].shape
    return InferenceModel(source, int(model.output_shape[-1]), clip=lambda x: np.asarray(fn(x)),
                          resolution=shape[2], frames=shape[1],
                          why_no_stream="a base model; stream needs a causal spec beside it")


def _load_signature(path: Path):
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"model {path}: not a loadable SavedModel ({' '.join(str(exc).split())[:200]})") from None
    sig = loaded.signatures.get("serving_default")
    if sig is None:
        raise ValueError(f"model {path}: no serving_default signature "
                         f"(found: {', '.join(loaded.signatures) or 'none'})")
    sig._movinas_keepalive = loaded  # the signature needs the loaded object's variables alive
    return sig


def _from_signature(source: str, sig) -> InferenceModel:
    import tensorflow as tf

    inputs = sig.structured_input_signature[1]
    if "image" not in inputs:
        raise ValueError(f"model {source}: its signature takes {sorted(inputs)}, expected `image` "
                         f"(float32[batch, frames, height, width, 3])")
    outputs = sig.structured_outputs
    key = "logits" if "logits" in outputs else next(iter(outputs))
    image = tuple(inputs["image"].shape)
    num_classes = int(outputs[key].shape[-1])

    def step(x: dict) -> dict:
        out = sig(**{k: tf.convert_to_tensor(v, dtype=inputs[k].dtype) for k, v in x.items()})
        return {("logits" if k == key else k): v for k, v in out.items()}

    if len(inputs) > 1:
        specs = {k: StateSpec(tuple(s.shape)[1:], s.dtype.name) for k, s in inputs.items() if k != "image"}
        return _stream_model(source, step, specs, image, num_classes)
    return InferenceModel(source, num_classes, clip=lambda x: np.asarray(step({"image": x})["logits"]),
                          resolution=image[2], frames=image[1], why_no_stream="a clip model (no state inputs)")


def _from_tflite(source: str, runner) -> InferenceModel:
    details = runner.get_input_details()
    if "image" not in details:
        raise ValueError(f"model {source}: TFLite inputs {sorted(details)}, expected `image`")
    # shape_signature has -1 where the size is free (our base models: the frame count)
    signature = details["image"].get("shape_signature", details["image"]["shape"])
    image = tuple(int(d) if d > 0 else None for d in signature)
    out = runner.get_output_details()
    key = "logits" if "logits" in out else next(iter(out))
    num_classes = int(out[key]["shape"][-1])

    def step(x: dict) -> dict:
        feed = {k: np.asarray(v, dtype=details[k]["dtype"]) for k, v in x.items()}
        res = runner(**feed)
        return {("logits" if k == key else k): v for k, v in res.items()}

    if len(details) > 1:
        specs = {k: StateSpec(tuple(int(s) for s in d["shape"][1:]), np.dtype(d["dtype"]).name)
                 for k, d in details.items() if k != "image"}
        return _stream_model(source, _one_frame_at_a_time(step, image[1]), specs, image, num_classes)
    return InferenceModel(source, num_classes, clip=lambda x: step({"image": x})["logits"],
                          resolution=image[2], frames=image[1], why_no_stream="a clip model (no state inputs)")


def _one_frame_at_a_time(step: Callable, t: int | None) -> Callable:
    """A step that splits sub-clips into pieces of the fixed length `t` a TFLite model takes."""
    if not t:
        return step

    def split(x: dict) -> dict:
        clip, states = x["image"], {k: v for k, v in x.items() if k != "image"}
        if clip.shape[1] % t:
            raise ValueError(f"frames: {clip.shape[1]} given, this stream model takes them {t} at a time")
        for i in range(0, clip.shape[1], t):
            out = step({"image": clip[:, i:i + t], **states})
            states = {k: out[k] for k in states}
        return out

    return split


def _stream_model(source: str, step: Callable, specs: dict, image: tuple, num_classes: int) -> InferenceModel:
    """A stream model also classifies a clip: the whole clip in one push from zero states."""

    def open_stream() -> StreamSession:
        return StreamSession(step, zero_states(specs))

    return InferenceModel(source, num_classes, clip=lambda x: open_stream().push(x), open_stream=open_stream,
                          resolution=image[2], causal=True)


_LOADERS: dict[str, Callable[[str, Path], InferenceModel]] = {
    "keras": lambda source, path: _from_keras(source, _load_keras(path)),
    "savedmodel": lambda source, path: _from_signature(source, _load_signature(path)),
    "tflite": lambda source, path: _from_tflite(source, load_tflite(path)),
    "tflite-int8": lambda source, path: _from_tflite(source, load_tflite(path)),
}


def as_inference_model(model, stream: bool) -> InferenceModel:
    if isinstance(model, InferenceModel):
        return model
    if isinstance(model, (str, Path)):
        return load_for_inference(model, stream=stream)
    if hasattr(model, "inputs") and hasattr(model, "get_weights"):
        return _from_keras(getattr(model, "name", "model"), model)
    raise TypeError(f"model: {type(model).__name__}, expected an InferenceModel, a path or a Keras model")


