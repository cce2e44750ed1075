"""Which slice of which supernet weight each weight of a sub-network reads: the one weight map.

`weight_map(envelope, spec, num_classes)` walks the sub-network and the envelope side by side
(`search_space.plan.walk`) and gives, per weight path of `build_model(spec)`, the envelope's weight
path it reads and the box of it. Slicing (`Supernet.values`, hence `extract` and export) and masking
(`search_space.supernet_masks`) both read it, so they cannot drift. The rules, each written once here:

- depth: layer j of stage s reads layer j of the envelope's stage s (`layer_pairs`);
- width: the leading c entries of every channel axis (expansion, depthwise, SE, BN, projection
  input rows, stage and stem filters, head width);
- kernels (`crop_offset`): spatial taps are the centre crop of the larger kernel (offset (K - k) // 2);
  temporal taps too in a non-causal network and the k *most recent* taps (offset K - k) in a causal
  one, so a causal sub-network reads no frame the larger kernel would not;
- SE (`_se`): the squeeze input is m blocks of e channels (m = 2 for se_type 2plus3d: [3d pool | 2d
  pool]), each block sliced to its leading e rows; its hidden width is the walk's.

Pure Python; no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from .plan import LayerPlan, walk
from .spec import ArchSpec

Box = tuple[tuple[int, int], ...]  # (start, size) along each axis of a weight
BN = ("gamma", "beta", "moving_mean", "moving_variance")


class Slice(NamedTuple):
    """The part of envelope weight `source` a sub-network weight reads: `boxes` stacked along axis 0
    (one box, but for the 2plus3d SE squeeze: one per pooled half)."""

    source: str
    boxes: tuple[Box, ...]

    @property
    def shape(self) -> tuple[int, ...]:
        return shape(self.boxes)


def crop_offset(big: int, small: int, causal_time: bool) -> int:
    """Where a `small`-tap kernel axis starts inside a `big` one (the kernel rule): the most recent
    taps on a causal time axis, else the centre."""
    return big - small if causal_time else (big - small) // 2


def layer_pairs(envelope: ArchSpec, spec: ArchSpec, frames: int | None = None,
                resolution: int | None = None) -> Iterator[tuple[LayerPlan, LayerPlan]]:
    """(layer of `spec`, the envelope layer whose weights it reads), walked at `spec`'s input (or
    `frames` × `resolution`²): layer j of stage s of each."""
    frames, resolution = frames or spec.frames, resolution or spec.resolution
    env_layers = walk(envelope, frames, resolution).layers
    starts = [0]
    for stage in envelope.stages:
        starts.append(starts[-1] + len(stage.blocks))
    for lp in walk(spec, frames, resolution).layers:
        yield lp, env_layers[starts[lp.stage] + lp.block]


def weight_map(envelope: ArchSpec, spec: ArchSpec, num_classes: int) -> dict[str, Slice]:
    """Per weight path of `build_model(spec, num_classes)` (dropout seed states aside), the slice of
    the envelope's weights it reads (see the module docstring for the rules)."""
    top = {"stem_conv/kernel": ((*_crop(envelope.stem.kernel, spec.stem.kernel, spec.causal), (0, 3),
                                 (0, spec.stem.filters)),),
           **_bn("stem_bn", spec.stem.filters),
           **_dense("head_conv", spec.stages[-1].filters, spec.head.filters),
           **_bn("head_bn", spec.head.filters),
           **_dense("classifier_hidden", spec.head.filters, spec.head.hidden, bias=True),
           **_dense("classifier", spec.head.hidden, num_classes, bias=True)}
    out = {path: Slice(path, boxes) for path, boxes in top.items()}
    for lp, el in layer_pairs(envelope, spec):
        p, q = f"b{lp.index}_", f"b{el.index}_"  # layer j of stage s, in the sub-network and the envelope
        out.update((p + name, Slice(q + name, boxes)) for name, boxes in _layer(lp, el, spec).items())
    return out


def projection(name: str, c_in: int, c_out: int) -> dict[str, tuple[Box, ...]]:
    """Boxes of a 1×1×1 conv without bias (`name`/kernel) and its BatchNorm (`name`_bn/...): c_in → c_out."""
    return {**_dense(name, c_in, c_out), **_bn(name + "_bn", c_out)}


def shape(boxes: tuple[Box, ...]) -> tuple[int, ...]:
    """The shape of the tensor `boxes` stack along axis 0."""
    return (sum(b[0][1] for b in boxes), *(n for _, n in boxes[0][1:])) if boxes[0] else ()


def _crop(big: tuple, small: tuple, causal: bool) -> Box:
    return tuple((crop_offset(b, s, a == 0 and causal), s) for a, (b, s) in enumerate(zip(big, small)))


def _dense(name: str, c_in: int, c_out: int, bias: bool = False) -> dict[str, tuple[Box, ...]]:
    out = {f"{name}/kernel": (((0, c_in), (0, c_out)),)}
    if bias:
        out[f"{name}/bias"] = (((0, c_out),),)
    return out


def _bn(name: str, c: int) -> dict[str, tuple[Box, ...]]:
    return {f"{name}/{w}": (((0, c),),) for w in BN}


def _layer(lp: LayerPlan, el: LayerPlan, spec: ArchSpec) -> dict[str, tuple[Box, ...]]:
    """Boxes of inverted-bottleneck layer `lp`'s weights in envelope layer `el`, by name inside the
    layer (builder.block's order)."""
    e = lp.expand
    out = projection("expand", lp.c_in, e)
    kt, kh, kw = lp.kernel
    if spec.conv_type == "3d":
        depthwise = (("dw", lp.kernel, el.kernel),)
    else:  # 2+1D: spatial 1×kh×kw, then (kt > 1) temporal kt×1×1, each with its BN
        depthwise = (("dw", (1, kh, kw), (1, *el.kernel[1:])),) + (
            (("dw_t", (kt, 1, 1), (el.kernel[0], 1, 1)),) if kt > 1 else ())
    for name, small, big in depthwise:
        out[name + "/kernel"] = ((*_crop(big, small, spec.causal), (0, e)),)
        out.update(_bn(name + "_bn", e))
    if lp.se_in:
        out.update(_se(lp, el, spec.positional_encoding))
    out.update(projection("project", e, lp.c_out))
    out["scale/scale"] = ((),)
    if lp.skip_conv:
        out.update(projection("skip", lp.c_in, lp.c_out))
    return out


def _se(lp: LayerPlan, el: LayerPlan, positional_encoding: bool) -> dict[str, tuple[Box, ...]]:
    """Squeeze-excitation (the SE rule): m pooled blocks of e channels, each its leading e rows of the
    envelope's E-row block → hidden → e."""
    e, hidden, m = lp.expand, lp.se_hidden, lp.se_in // lp.expand
    out = {"se/reduce/kernel": tuple(((i * el.expand, e), (0, hidden)) for i in range(m)),
           "se/reduce/bias": (((0, hidden),),),
           "se/expand/kernel": (((0, hidden), (0, e)),),
           "se/expand/bias": (((0, e),),)}
    if positional_encoding:
        out["se/pe_scale"] = ((),)
    return out


__all__ = ["BN", "Box", "Slice", "crop_offset", "layer_pairs", "projection", "shape", "weight_map"]
