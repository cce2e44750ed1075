"""Stream-mode state of a causal spec: names, shapes, zero initial values, and a checked step.

A stream model (``build_model(spec, mode="stream")``) takes ``{"image": clip, **states}`` and
returns ``{"logits": ..., **new_states}`` under the same names. The states, in `walk` order:

- ``b{i}_buffer``  float32 [batch, k_t - 1, h, w, e]: last input frames of layer i's causal temporal
  conv (2plus1d: after the spatial stride, between spatial and temporal conv; 3d: before the conv);
- ``b{i}_se_sum`` float32 [batch, 1, 1, 1, e] and ``b{i}_se_count`` int32 [batch, 1]: running sum of
  frame means and frames seen by layer i's cumulative SE pool (SE types 3d and 2plus3d);
- ``b{i}_pe_count`` int32 [batch, 1]: frames seen by layer i's positional encoding;
- ``head_sum`` float32 [batch, 1, 1, 1, P] and ``head_count`` int32 [batch, 1]: the head's pool.

Their sizes are what `estimate_cost` counts in ``state_bytes`` / ``state_floats`` / ``state_tensors``.
This module imports no TensorFlow except inside `stream_step`.
"""

from __future__ import annotations

import weakref
from typing import Any, NamedTuple

import numpy as np

from .plan import walk
from .spec import ArchSpec


class StateSpec(NamedTuple):
    """Shape without the batch axis (None: decided by the input resolution) and dtype of a state."""

    shape: tuple[int | None, ...]
    dtype: str


def state_specs(spec: ArchSpec, resolution: int | None = None) -> dict[str, StateSpec]:
    """Every stream state of causal `spec`, in order. `resolution=None`: buffers' h, w are None."""
    if not spec.causal:
        raise ValueError(f"spec {spec.name!r}: stream states need causal: true, found causal: false")
    plan = walk(spec, None, resolution)
    split = spec.conv_type != "3d"
    cumulative = spec.se_type in ("3d", "2plus3d")
    out: dict[str, StateSpec] = {}
    for lp in plan.layers:
        kt = lp.kernel[0]
        e = lp.expand
        if kt > 1:
            _, h, w = lp.out_shape if split else lp.in_shape
            if resolution is None:
                h = w = None
            out[f"b{lp.index}_buffer"] = StateSpec((kt - 1, h, w, e), "float32")
        if cumulative:
            out[f"b{lp.index}_se_sum"] = StateSpec((1, 1, 1, e), "float32")
            out[f"b{lp.index}_se_count"] = StateSpec((1,), "int32")
        if spec.positional_encoding:
            out[f"b{lp.index}_pe_count"] = StateSpec((1,), "int32")
    out["head_sum"] = StateSpec((1, 1, 1, spec.head.filters), "float32")
    out["head_count"] = StateSpec((1,), "int32")
    return out


def init_states(
    spec: ArchSpec, batch_size: int = 1, resolution: int | None = None, num_classes: int = 600
) -> dict[str, np.ndarray]:
    """Zero states for a stream model of `spec` at `resolution` (the spec's own by default).

    `num_classes` is accepted for symmetry with `build_model`; no state depends on it.
    """
    del num_classes
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: {batch_size!r}, must be an integer >= 1")
    res = resolution or spec.resolution
    return {
        name: np.zeros((batch_size, *s.shape), dtype=s.dtype) for name, s in state_specs(spec, res).items()
    }


def check_states(model: Any, states: dict[str, Any]) -> None:
    """Raise ValueError naming a missing, unknown or wrongly shaped state of stream `model`."""
    expected = {t.name: t for t in _named_inputs(model) if t.name != "image"}
    if not isinstance(states, dict):
        raise ValueError(f"stream states: {type(states).__name__}, must be a dict of arrays (init_states)")
    missing = [n for n in expected if n not in states]
    if missing:
        raise ValueError(f"stream states: missing {', '.join(missing)} (start from init_states(spec, ...))")
    unknown = [n for n in states if n not in expected]
    if unknown:
        raise ValueError(f"stream states: unknown {', '.join(unknown)} (not an input of this stream model)")
    for name, tensor in expected.items():
        _check_shape(f"stream state {name!r}", states[name], tuple(tensor.shape))


def _check_shape(what: str, value: Any, want: tuple) -> None:
    got = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
    if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
        shown = tuple("?" if w is None else w for w in want)
        raise ValueError(f"{what}: shape {got}, expected {shown} (? = any size)")


def stream_step(model: Any, image: Any, states: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """One call of stream `model` on a sub-clip `image` [batch, t, H, W, 3] (t >= 1).

    Checks the states first (a wrong shape names the state and both shapes), then runs the model in
    a `tf.function` traced once per model for any batch and sub-clip length. Returns
    ``(logits, new_states)`` as tensors, the new states ready for the next call. Inside a
    `tf.function` of your own, call the model directly: ``model({"image": image, **states})``.
    """
    check_states(model, states)
    want = next(tuple(t.shape) for t in _named_inputs(model) if t.name == "image")
    _check_shape("stream image", image, (want[0], None, *want[2:]))
    out = dict(_compiled(model)({"image": image, **states}))
    logits = out.pop("logits")
    return logits, out


# one traced step per live stream model; entries go when the model does
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled(model: Any):
    fn = _COMPILED.get(model)
    if fn is None:
        import tensorflow as tf

        signature = {}
        for t in _named_inputs(model):
            shape = (None, None, *t.shape[2:]) if t.name == "image" else (None, *t.shape[1:])
            signature[t.name] = tf.TensorSpec(shape, t.dtype, name=t.name)
        fn = tf.function(lambda inputs: model(inputs, training=False), input_signature=[signature])
        _COMPILED[model] = fn
    return fn


def _named_inputs(model: Any) -> list:
    inputs = model.inputs
    if not isinstance(inputs, (list, tuple)) or not inputs or all(t.name != "image" for t in inputs):
        raise ValueError("stream_step: not a stream model (build_model(spec, mode='stream'))")
    return list(inputs)
