"""Import the released MoViNet weights: TF Model Garden checkpoints and TF Hub / Kaggle SavedModels.

Both formats are object-based TensorFlow checkpoints (a SavedModel keeps its variables as one under
`variables/`); their object graph names every variable by its path through the official classifier,
e.g. ``layer_with_weights-0/layer_with_weights-3/_feature/_conv/_conv/depthwise_kernel`` (backbone,
layer 3 = block 2, depthwise conv). `official_names(spec)` lists, for a movinas spec, every path the
official classifier of that preset has and the movinas weight it fills, so an import is a table
look-up: no official code is needed, and a missing, extra or mis-shaped variable is refused by name.

Official kernels differ from movinas ones only by axes of size 1 (Conv3D vs Conv2D vs Dense, grouped
vs depthwise), so values move by a reshape. The stream models' `2plus1d` and `3d_2plus1d` weights
are the same numbers in those two layouts.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .plan import walk
from .presets import PRESETS, movinet
from .spec import ArchSpec

BN = ("gamma", "beta", "moving_mean", "moving_variance")
_LEAVES = ("kernel", "depthwise_kernel", "bias", "scale", *BN)


class OfficialError(ValueError):
    """A path that is not a usable MoViNet checkpoint; the message is one line naming what is wrong."""


class Official(NamedTuple):
    """An imported model: the Keras model (causal for stream presets) and what describes it."""

    model: Any
    spec: ArchSpec
    num_classes: int
    source: str  # "checkpoint" or "savedmodel"
    path: Path  # the checkpoint prefix read


# ---------------------------------------------------------------------------------------------
# the name table


def official_names(spec: ArchSpec) -> dict[str, str]:
    """{official variable path (normalised, see `normalise`): movinas weight path} for `spec`,
    in the model's order. The classifier's two dense layers are included."""
    table: dict[str, str] = {}

    def conv(official: str, ours: str, bias: bool = False) -> None:
        table[f"{official}/_conv/kernel"] = f"{ours}/kernel"
        if bias:
            table[f"{official}/_conv/bias"] = f"{ours}/bias"

    def bn(official: str, ours: str) -> None:
        table.update({f"{official}/{v}": f"{ours}/{v}" for v in BN})

    back = "layer_with_weights-0"
    conv(f"{back}/layer_with_weights-0/_stem", "stem_conv")
    bn(f"{back}/layer_with_weights-0/_stem/_batch_norm", "stem_bn")
    plan = walk(spec)
    for lp in plan.layers:
        o, p = f"{back}/layer_with_weights-{lp.index + 1}", f"b{lp.index}_"
        conv(f"{o}/_expansion", p + "expand")
        bn(f"{o}/_expansion/_batch_norm", p + "expand_bn")
        conv(f"{o}/_feature", p + "dw")
        bn(f"{o}/_feature/_batch_norm", p + "dw_bn")
        if spec.conv_type != "3d" and lp.kernel[0] > 1:
            table[f"{o}/_feature/_conv_temporal/kernel"] = p + "dw_t/kernel"
            bn(f"{o}/_feature/_batch_norm_temporal", p + "dw_t_bn")
        if lp.se_in:
            if spec.positional_encoding:
                table[f"{o}/_attention/_pos_encoding/_rezero/scale"] = p + "se/pe_scale"
            conv(f"{o}/_attention/_se_reduce", p + "se/reduce", bias=True)
            conv(f"{o}/_attention/_se_expand", p + "se/expand", bias=True)
        conv(f"{o}/_projection", p + "project")
        bn(f"{o}/_projection/_batch_norm", p + "project_bn")
        table[f"{o}/_mobile_bottleneck/_rezero/scale"] = p + "scale/scale"
        if lp.skip_conv:
            conv(f"{o}/_skip/_projection", p + "skip")
            bn(f"{o}/_skip/_projection/_batch_norm", p + "skip_bn")
    head = f"{back}/layer_with_weights-{len(plan.layers) + 1}/_project"
    conv(head, "head_conv")
    bn(f"{head}/_batch_norm", "head_bn")
    conv("layer_with_weights-1/_head", "classifier_hidden", bias=True)
    conv("layer_with_weights-1/_classifier", "classifier", bias=True)
    return table


def normalise(path: str) -> str:
    """One name per variable whatever the conv layout: `_conv/_conv/` (a Conv2D inside MobileConv2D)
    and `_conv/` (Conv3D) both become `_conv/`, `_conv_temporal/_conv/` becomes `_conv_temporal/`,
    and `depthwise_kernel` becomes `kernel`."""
    parts = path.split("/")
    out = []
    for i, part in enumerate(parts):
        if part == "_conv" and i > 0 and parts[i - 1] in ("_conv", "_conv_temporal"):
            continue
        out.append("kernel" if part == "depthwise_kernel" else part)
    return "/".join(out)


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if int(d) != 1)


# ---------------------------------------------------------------------------------------------
# reading a checkpoint or SavedModel


def find_checkpoint(path: str | Path) -> tuple[str, str]:
    """(checkpoint prefix, "checkpoint" | "savedmodel") for a SavedModel folder, a checkpoint folder,
    a checkpoint prefix (`.../ckpt-1`) or its `.index` file."""
    p = Path(path)
    if p.is_dir() and ((p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists()):
        prefix = p / "variables" / "variables"
        if not Path(str(prefix) + ".index").exists():
            raise OfficialError(f"{p}: a SavedModel without variables/variables.index (incomplete copy?)")
        return str(prefix), "savedmodel"
    if p.is_dir():
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(str(p))
        indexes = sorted(p.glob("*.index"))
        if latest is None and len(indexes) == 1:
            latest = str(indexes[0])[: -len(".index")]
        if latest is None:
            what = f"{len(indexes)} checkpoints and no 'checkpoint' file" if indexes else \
                "no saved_model.pb and no checkpoint (*.index)"
            raise OfficialError(f"{p}: not a MoViNet checkpoint or SavedModel folder ({what}); give a "
                                "SavedModel folder, a checkpoint folder or a checkpoint prefix such as ckpt-1")
        return latest, "checkpoint"
    prefix = str(p)[: -len(".index")] if str(p).endswith(".index") else str(p)
    if not Path(prefix + ".index").exists():
        raise OfficialError(f"{p}: no such checkpoint or SavedModel (neither a folder nor {Path(prefix).name}.index)")
    return prefix, "checkpoint"


def _reader(prefix: str):
    import tensorflow as tf

    try:
        return tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as exc:
        raise OfficialError(f"{prefix}: not a readable TensorFlow checkpoint (truncated or corrupt?): "
                            f"{_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]


def variable_paths(reader, prefix: str) -> dict[str, str]:
    """{normalised path from the classifier: checkpoint key}, read from the object graph (the keys of a
    Keras SavedModel are `variables/N`; the graph still knows each variable's layer path)."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    if not reader.has_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"):
        raise OfficialError(f"{prefix}: a name-based (TF1) checkpoint; MoViNet checkpoints are object-based (TF2)")
    graph = trackable_object_graph_pb2.TrackableObjectGraph()
    try:
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except Exception as exc:  # noqa: BLE001 - a corrupt proto: any decode error means the same
        raise OfficialError(f"{prefix}: the checkpoint's object graph cannot be read (truncated or corrupt "
                            f"file?): {_first_line(exc)}") from None
    root = next((c.node_id for c in graph.nodes[0].children if c.local_name == "model"), 0)
    seen, queue, found = {root: ""}, collections.deque([root]), {}
    while queue:
        n = queue.popleft()
        node, here = graph.nodes[n], seen[n]
        for attr in node.attributes:
            if attr.name == "VARIABLE_VALUE" and here.startswith("layer_with_weights-"):
                found[normalise(here)] = attr.checkpoint_key
        # layer_with_weights-N first: a variable's path is the first one found (Keras lists layers twice)
        for child in sorted(node.children, key=lambda c: not c.local_name.startswith("layer_with_weights-")):
            name = child.local_name
            if child.node_id not in seen and (name.startswith(("layer_with_weights-", "_")) or name in _LEAVES):
                seen[child.node_id] = f"{here}/{name}".lstrip("/")
                queue.append(child.node_id)
    return found


# ---------------------------------------------------------------------------------------------
# which preset, and does the checkpoint fit it


def _block_count(names) -> int:
    layers = {int(n.split("/")[1].rsplit("-", 1)[1]) for n in names
              if n.startswith("layer_with_weights-0/layer_with_weights-")}
    return max(layers) - 1 if layers else 0  # layers 0 (stem) … N + 1 (head)


def infer_spec(shapes: dict[str, tuple], preset: str | None = None, stream: bool | None = None,
               where: str = "checkpoint") -> ArchSpec:
    """The movinas spec of the official model whose variables are `shapes` ({normalised path: shape}):
    `preset` and `stream` when given, else read from the variables (block count, stem and head widths,
    temporal convs, positional encoding)."""
    if not any(n.startswith("layer_with_weights-0/") for n in shapes):
        raise OfficialError(f"{where}: no variable of a MoViNet classifier (not a MoViNet checkpoint or SavedModel)")
    has_pe = any("/_pos_encoding/" in n for n in shapes)
    if stream is None:
        stream = has_pe or any("/_conv_temporal/" in n for n in shapes)
    if preset is None:
        preset = _guess_preset(shapes, stream, where)
    return movinet(preset, stream=stream, positional_encoding=has_pe if stream else None)


def _guess_preset(shapes: dict[str, tuple], stream: bool, where: str) -> str:
    blocks = _block_count(shapes)
    stem = shapes.get("layer_with_weights-0/layer_with_weights-0/_stem/_batch_norm/gamma", (0,))[0]
    for name in PRESETS:
        spec = movinet(name, stream=stream)
        if spec.num_layers == blocks and spec.stem.filters == stem:
            return name
    raise OfficialError(f"{where}: {blocks} blocks and a stem of {stem} filters match no MoViNet preset "
                        f"({', '.join(PRESETS)}); pass the preset (--preset)")


def check_variables(spec: ArchSpec, shapes: dict[str, tuple], model_shapes: dict[str, tuple],
                    where: str = "checkpoint") -> dict[str, str]:
    """The name table of `spec` after checking that `shapes` (the checkpoint's) holds exactly its
    variables with the shapes of `model_shapes` (the movinas model's; axes of size 1 aside).
    OfficialError names the first missing or mis-shaped variable in model order, else the first extra."""
    table = official_names(spec)
    hint = f"{spec.name} needs"
    for official, ours in table.items():
        if official not in shapes:
            raise OfficialError(f"{where}: missing variable {official} ({hint} it for {ours}; a checkpoint of "
                                "another preset or variant, or not MoViNet?)")
        want, got = model_shapes[ours], shapes[official]
        if _squeezed(want) != _squeezed(got):
            raise OfficialError(f"{where}: variable {official} has shape {list(got)}, {hint} {list(want)} "
                                "(a checkpoint of another preset or variant?)")
    extra = sorted(set(shapes) - set(table))
    if extra:
        raise OfficialError(f"{where}: unexpected variable {extra[0]} ({len(extra)} in all) that {spec.name} does "
                            "not have (a checkpoint of another preset or variant?)")
    return table


def num_classes_of(shapes: dict[str, tuple], where: str = "checkpoint") -> int:
    bias = shapes.get("layer_with_weights-1/_classifier/_conv/bias")
    if not bias or len(bias) != 1:
        raise OfficialError(f"{where}: no classifier (layer_with_weights-1/_classifier/_conv/bias); "
                            "import a MoViNet classifier, not a backbone alone")
    return int(bias[0])


# ---------------------------------------------------------------------------------------------
# the public face


def load_official(path: str | Path, preset: str | None = None, stream: bool | None = None) -> Official:
    """Read the released MoViNet weights at `path` into a movinas Keras model.

    `path`: a TF Model Garden checkpoint (folder, prefix such as ``.../ckpt-1``, or its ``.index``) of the
    classifier, or a TF Hub / Kaggle SavedModel folder of MoViNet (base, or stream). `preset` (``a0`` …
    ``a5``) and `stream` are read from the variables when not given. Returns the model (the causal
    base model for stream presets: ``build_model(spec, mode="stream")`` takes its weights), its spec and
    class count. Raises OfficialError naming the first missing, extra or mis-shaped variable; nothing is
    left at its initial value.
    """
    prefix, source = find_checkpoint(path)
    where = str(path)
    reader = _reader(prefix)
    keys = variable_paths(reader, prefix)
    key_shapes = reader.get_variable_to_shape_map()
    shapes = {name: tuple(key_shapes[key]) for name, key in keys.items() if key in key_shapes}
    model, spec, num_classes = _fill(shapes, lambda name: _read(reader, keys[name], name, where), preset, stream,
                                     where)
    return Official(model, spec, num_classes, source, Path(prefix))


def from_arrays(arrays: dict[str, np.ndarray], preset: str | None = None, stream: bool | None = None) -> Official:
    """`load_official` for values already in memory: {official path or checkpoint key: array}."""
    arrays = {normalise(k.removeprefix("model/").removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")): v
              for k, v in arrays.items()}
    shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
    model, spec, num_classes = _fill(shapes, arrays.__getitem__, preset, stream, "arrays")
    return Official(model, spec, num_classes, "arrays", Path("."))


def _fill(shapes: dict[str, tuple], read, preset, stream, where: str):
    """(model, spec, classes): the spec the variables describe, checked, then every weight read by `read`."""
    spec = infer_spec(shapes, preset, stream, where)
    num_classes = num_classes_of(shapes, where)
    model = build(spec, num_classes)
    weights = {w.path: w for w in model.weights}
    table = check_variables(spec, shapes, {p: tuple(w.shape) for p, w in weights.items()}, where)
    for official, ours in table.items():
        weights[ours].assign(np.reshape(read(official), weights[ours].shape))
    return model, spec, num_classes


def build(spec: ArchSpec, num_classes: int):
    """The float32 Keras model an import fills."""
    import keras

    from .builder import build_model

    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        return build_model(spec, num_classes)
    finally:
        keras.config.set_dtype_policy(policy)


def _read(reader, key: str, name: str, where: str) -> np.ndarray:
    import tensorflow as tf

    try:
        return reader.get_tensor(key)
    except (tf.errors.OpError, ValueError) as exc:
        raise OfficialError(f"{where}: variable {name} cannot be read (truncated or corrupt file?): "
                            f"{_first_line(exc)}") from None
