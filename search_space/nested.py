"""Start a network from a larger (pretrained) one's weights wherever it nests in it: the supernet's rule
(`search_space.weight_map`) applied to any two specs, where the candidate may also reach beyond the
source (more stages or blocks, wider axes, larger kernels: those weights start fresh).

`nested_weights(source_spec, source, spec, shapes)` gives, for each weight of `spec`, the slice of the
source weight at the same place:

- blocks: layer j of stage s reads layer j of the source's stage s (the leading blocks of each stage);
  a stage or a layer the source does not have starts fresh;
- channels: the leading ones of every axis (expansion, depthwise, SE, BN, projection rows, stem, head);
- kernels: spatial taps are the centre crop of the source kernel; temporal taps the centre crop, or the
  most recent ones (the last k) when `spec` is causal, as a causal supernet reads them;
- SE of type 2plus3d: the [3d | 2d] halves of the squeeze input are cropped separately;
- the classifier transfers only when its output width equals the source's (other classes' weights mean
  nothing for a new task); everything else with the same rank and no axis wider than the source's.

Weights that do not fit (a wider axis, a larger kernel, another rank, a path the source lacks) keep
their fresh initialization and are listed by `nested_report`. Pure numpy; no TensorFlow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from .spec import ArchSpec
from .weight_map import crop_offset

_LAYER = re.compile(r"^b(\d+)_")
_TAPS = ("_dw/kernel", "_dw_t/kernel", "stem_conv/kernel")  # kernels laid out (kt, kh, kw, ...)
_CLASSIFIER = ("classifier/kernel", "classifier/bias")


def layer_map(source: ArchSpec, spec: ArchSpec) -> dict[int, int]:
    """Layer index of `spec` → layer index of `source` (layer j of stage s → the source's, if it has one)."""
    starts, out, i = [0], {}, 0
    for st in source.stages:
        starts.append(starts[-1] + len(st.blocks))
    for s, st in enumerate(spec.stages):
        for j in range(len(st.blocks)):
            if s < len(source.stages) and j < len(source.stages[s].blocks):
                out[i] = starts[s] + j
            i += 1
    return out


def nested_weights(source_spec: ArchSpec, source: Mapping[str, np.ndarray], spec: ArchSpec,
                   shapes: Mapping[str, tuple]) -> dict[str, np.ndarray]:
    """{weight path: array} of each weight of `spec` (`shapes`: {path: shape}, e.g. a built model's) that
    nests in `source` ({path: array} of a `source_spec` model); see the module docstring for the rule."""
    layers = layer_map(source_spec, spec)
    out = {}
    for path, shape in shapes.items():
        value = _slice(path, tuple(int(n) for n in shape), source, layers, spec)
        if value is not None:
            out[path] = value
    return out


def nested_report(shapes: Mapping[str, tuple], nested: Mapping[str, np.ndarray]) -> tuple[int, int, list[str]]:
    """(weights transferred, weights in all, paths left fresh) of a `nested_weights` result."""
    fresh = [p for p in shapes if p not in nested and "seed_generator" not in p]
    return len(nested), len(nested) + len(fresh), fresh


def _source_path(path: str, layers: dict[int, int]) -> str | None:
    m = _LAYER.match(path)
    if not m:
        return path
    index = layers.get(int(m.group(1)))
    return None if index is None else f"b{index}_{path[m.end():]}"


def _slice(path: str, shape: tuple, source: Mapping[str, np.ndarray], layers: dict[int, int], spec: ArchSpec):
    """The slice of the source weight `path` of `shape` reads, or None when it does not nest."""
    src = _source_path(path, layers)
    if src is None or src not in source or "seed_generator" in path:
        return None
    big = np.asarray(source[src])
    if len(big.shape) != len(shape) or any(s > b for s, b in zip(shape, big.shape)):
        return None
    if path.endswith(_CLASSIFIER) and shape[-1] != big.shape[-1]:
        return None
    if src.endswith("se/reduce/kernel") and spec.se_type == "2plus3d":
        e, big_e = shape[0] // 2, big.shape[0] // 2  # rows [3d pool | 2d pool], each e wide
        return np.concatenate([big[:e, :shape[1]], big[big_e:big_e + e, :shape[1]]], axis=0)
    begin = [0] * len(shape)
    if src.endswith(_TAPS):  # the supernet's kernel rule, written once in weight_map
        begin[:3] = [crop_offset(big.shape[a], shape[a], a == 0 and spec.causal) for a in range(3)]
    return np.array(big[tuple(slice(b, b + n) for b, n in zip(begin, shape))])
