"""Stream-mode state of a causal spec: names, shapes, zero initial values, and a checked step.

A stream model (``build_model(spec, mode="stream")``) takes ``{"image": clip, **states}`` and
returns ``{"logits": ..., **new_states}`` under the same names. The states are described once, on
the layer plan (`search_space.plan.LayerPlan.states`); in `walk` order they are:

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

from . import validate
from .plan import walk
from .spec import NUM_CLASSES, ArchSpec


class StateSpec(NamedTuple):
    """Shape without the batch axis (None: decided by the input resolution) and dtype of a state."""

    shape: tuple[int | None, ...]
    dtype: str


def state_specs(spec: ArchSpec, resolution: int | None = None) -> dict[str, StateSpec]:
    """Every stream state of causal `spec`, in order (read from the plan's `LayerPlan.states`).
    `resolution=None`: buffers' h, w are None."""
    if not spec.causal:
        raise ValueError(f"spec {spec.name!r}: stream states need causal: true, found causal: false")
    out: dict[str, StateSpec] = {}
    for state in walk(spec, None, resolution).states:
        shape = state.shape
        if resolution is None and state.feeds == "temporal_conv":  # (k_t - 1, h, w, channels)
            shape = (shape[0], None, None, shape[3])
        out[state.name] = StateSpec(shape, state.dtype)
    return out


def model_state_specs(model: Any) -> dict[str, StateSpec]:
    """The states of a Keras stream model: its inputs other than ``image``, batch axis left out."""
    return {t.name: StateSpec(tuple(t.shape)[1:], np.dtype(t.dtype).name)
            for t in model.inputs if t.name != "image"}


def zero_states(specs: dict[str, StateSpec], batch_size: int = 1) -> dict[str, np.ndarray]:
    """Zero arrays [batch_size, *shape] for `specs` (ValueError when a shape is not fully known)."""
    validate.integer(batch_size, "batch_size")
    states = {}
    for name, s in specs.items():
        if any(d is None for d in s.shape):
            raise ValueError(f"state {name}: shape {tuple(s.shape)} is not fully known; give the resolution "
                             f"(build the stream model at a fixed resolution)")
        states[name] = np.zeros((batch_size, *s.shape), dtype=s.dtype)
    return states


def init_states(
    spec: ArchSpec, batch_size: int = 1, resolution: int | None = None, num_classes: int = NUM_CLASSES
) -> dict[str, np.ndarray]:
    """Zero states for a stream model of `spec` at `resolution` (the spec's own by default).

    `num_classes` is accepted for symmetry with `build_model`; no state depends on it.
    """
    del num_classes
    return zero_states(state_specs(spec, resolution or spec.resolution), batch_size)


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
