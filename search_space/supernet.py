"""`Supernet`: one set of weights shared by every architecture of a `SearchSpace`, and `extract`.

The supernet's weights are those of the space's *envelope*: the network with, per stage, the most
layers, the widest filters and expansion, and the elementwise-largest kernel (t, h, w) among the
stage's kernel choices (plus a skip projection wherever some sub-network needs one that the envelope
does not). A sub-network (any spec the space can sample) reads the slices `search_space.weight_map`
names, where the rules are written once: the first d layers of each stage, the leading channels of
every axis, the centre crop of larger kernels (the most recent taps on a causal time axis), the
2plus3d SE's pooled halves sliced separately.

A forward pass of a sub-network is `build_model(spec)` run statelessly on these slices (Keras'
`stateless_call`), so the supernet computes exactly what the extracted model computes, and
gradients flow into the shared weights. `extract(supernet, spec)` copies the slices into a fresh
`build_model(spec)` model: an ordinary model for the cost model, export, stream mode and predict.

Spaces whose weight layout varies between samples (a searched `conv_type`, `se_type`, `causal` or
`positional_encoding`) are refused: pick one value per supernet.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from .space import SearchSpace, expand_filters, stage_filters
from .space_schema import OPTIONS
from .spec import ArchSpec, Block, Head, SpecError, Stage, Stem, make_divisible
from .weight_map import Slice, projection, shape, weight_map

STRUCTURAL = ("conv_type", "se_type", "causal", "positional_encoding")  # change the weight layout


def check_space(space: SearchSpace) -> None:
    """Raise SpecError when one set of weights cannot serve every spec of `space`."""
    for k in STRUCTURAL:
        if len(space.options[k]) > 1:
            raise SpecError(f"{k}: {list(space.options[k])}, a supernet needs a single value (it changes "
                            "the weight layout); make one supernet per value")


def _key(choice: Any) -> float:
    """Order of a choice from small to large network: numbers by value, kernels by volume."""
    if isinstance(choice, str) and "x" in choice and choice.replace("x", "").isdigit():
        return math.prod(int(v) for v in choice.split("x"))
    return choice if isinstance(choice, (int, float)) and not isinstance(choice, bool) else 0


def extreme_params(space: SearchSpace, largest: bool) -> dict[str, Any]:
    """Parameters of the largest (or smallest) sub-network: every searched axis at its largest (or
    smallest) choice (kernels by volume; option axes at their first choice)."""
    pick = max if largest else min
    return {k: (pick(c, key=_key) if any(_key(v) for v in c) else c[0]) for k, c in space.param_choices().items()}


def envelope(space: SearchSpace) -> ArchSpec:
    """The spec whose weights hold every sub-network's: per stage the largest depth, filters, expansion
    and the elementwise-largest kernel; head and stem at their widest; se_ratio at its largest."""
    g_all = space.width_mult
    stem_f = max(stage_filters(space.stem.width, g, m) for g in g_all for m in space.stem.width_mult)
    stages = []
    for st in space.stages:
        fs = [stage_filters(st.width, g, m) for g in g_all for m in st.width_mult]
        e = max(expand_filters(r, f) for r in st.expand_ratios for f in fs)
        kernel = tuple(max(k[a] for k in st.kernels) for a in range(3))
        blocks = tuple(Block(e, kernel, st.strides if j == 0 else (1, 1, 1)) for j in range(st.depth[1]))
        stages.append(Stage(max(fs), blocks))
    head = space.head.filters or max(make_divisible(space.head.ratio * stage_filters(space.stages[-1].width, g, m))
                                     for g in g_all for m in space.stages[-1].width_mult)
    options = {k: space.options[k][0] for k in OPTIONS}
    options["se_ratio"] = max(space.options["se_ratio"])
    return ArchSpec(stem=Stem(stem_f, space.stem.kernel, space.stem.strides), stages=tuple(stages),
                    head=Head(head, space.head.hidden), name=f"{space.name}_supernet",
                    frames=max(space.frames), resolution=max(space.resolution), **options)


def check_in_space(space: SearchSpace, spec: ArchSpec) -> None:
    """Raise SpecError naming the first field where `spec` is not a point of `space`."""
    if not isinstance(spec, ArchSpec):
        raise SpecError(f"spec: {type(spec).__name__}, must be an ArchSpec")
    near = space.decode(space.nearest(spec), name=spec.name)
    if near == spec:
        return
    a, b = _flat(spec.to_dict()), _flat(near.to_dict())
    field = next((k for k in list(a) + list(b) if a.get(k) != b.get(k)), "spec")
    raise SpecError(f"spec {spec.name!r}: {field} {a.get(field, '(absent)')!r} is outside the supernet's "
                    f"space {space.name!r} (nearest point: {b.get(field, '(absent)')!r})")


def _flat(d: Any, path: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flat(v, f"{path}.{k}" if path else k))
        return out
    if isinstance(d, list) and d and isinstance(d[0], dict):
        out = {}
        for i, v in enumerate(d):
            out.update(_flat(v, f"{path}[{i}]"))
        return out
    return {path: d}


class Supernet:
    """The shared weights of `space` for a `num_classes` classifier (see the module docstring).

    `variables`: envelope weight path → Keras variable (created under the current `tf.distribute`
    strategy scope, if any). `forward(spec, x, training)` runs a sub-network on the shared weights.
    """

    def __init__(self, space: SearchSpace, num_classes: int, block_scale_init: float | None = 1.0,
                 cache_size: int = 8):
        import keras

        from .builder import build_model

        check_space(space)
        self.space, self.num_classes = space, int(num_classes)
        self.causal = bool(space.options["causal"][0])
        self.envelope = envelope(space)
        self.largest = space.decode(extreme_params(space, True), name="largest")
        self.smallest = space.decode(extreme_params(space, False), name="smallest")
        # the envelope model holds the shared weights and runs the masked forward pass (no drop path)
        model = build_model(self.envelope.replace(stochastic_depth=0.0), num_classes=self.num_classes)
        self.envelope_model = model
        self.variables: dict[str, Any] = {w.path: w for w in model.weights}
        for path, v in self.variables.items():
            if path.endswith("_scale/scale") and block_scale_init is not None:
                v.assign(block_scale_init)
        self._add_skips(keras)
        self._models: OrderedDict = OrderedDict()
        self._cache_size = cache_size

    def _add_skips(self, keras) -> None:
        """Skip projections for first layers that are identity in the envelope but not in every spec."""
        starts = 0
        prev = [stage_filters(self.space.stem.width, g, m) for g in self.space.width_mult for m in self.space.stem.width_mult]
        for st_space, st in zip(self.space.stages, self.envelope.stages):
            cur = [stage_filters(st_space.width, g, m) for g in self.space.width_mult for m in st_space.width_mult]
            p = f"b{starts}_skip"
            if p + "/kernel" not in self.variables and any(a != b for a in prev for b in cur):
                for path, boxes in projection(p, max(prev), st.filters).items():
                    init = {"kernel": "he_normal", "gamma": "ones", "moving_variance": "ones"}.get(
                        path.rsplit("/", 1)[1], "zeros")
                    self.variables[path] = keras.Variable(
                        keras.initializers.get(init)(shape(boxes)), name=path.replace("/", "_"),
                        trainable="moving" not in path)
            prev = cur
            starts += len(st.blocks)

    # -- slicing ----------------------------------------------------------------------------------
    @property
    def trainable(self) -> list:
        return [v for v in self.variables.values() if v.trainable]

    def read(self, part: Slice) -> Any:
        """The shared weights `part` names (a tensor): its boxes of its source, stacked along axis 0."""
        import tensorflow as tf

        v = tf.convert_to_tensor(self.variables[part.source])
        if part.shape == tuple(v.shape):
            return v
        pieces = [tf.slice(v, [b for b, _ in box], [n for _, n in box]) for box in part.boxes]
        return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=0)

    def values(self, spec: ArchSpec, model: Any, seed: tuple | None = None) -> tuple[list, list]:
        """(trainable, non-trainable) slices in `model`'s variable order (`search_space.weight_map`).
        Dropout seed states are the model's own, or derived from `seed` (a tuple of ints) so that
        masks repeat run to run."""
        import tensorflow as tf

        parts = weight_map(self.envelope, spec, self.num_classes)
        n_seed = 0

        def get(w):
            nonlocal n_seed
            if "seed_generator" not in w.path:
                return self.read(self._part(parts, w))
            if seed is None:
                return w.value
            n_seed += 1
            h = hash((*seed, n_seed)) % (2**31)
            return tf.constant([h, 0], dtype=w.dtype)

        return [get(w) for w in model.trainable_variables], [get(w) for w in model.non_trainable_variables]

    def _part(self, parts: dict[str, Slice], w: Any) -> Slice:
        """The slice weight `w` of a sub-network model reads; SpecError when the supernet lacks it."""
        part = parts.get(w.path)
        v = None if part is None else self.variables.get(part.source)
        size = tuple(int(n) for n in w.shape)
        if v is None or part.shape != size or any(b + n > m for box in part.boxes
                                                   for (b, n), m in zip(box, v.shape)):
            raise SpecError(f"weight {w.path} {size}: not in the supernet "
                            f"({'no slice' if part is None else f'{part.source} {part.shape}'})")
        return part

    def model(self, spec: ArchSpec, stochastic_depth: float | None = None) -> Any:
        """The (cached, at most `cache_size`) Keras model of `spec` whose graph a forward pass runs;
        `stochastic_depth` replaces the spec's drop-path rate (it has no weights)."""
        from .builder import build_model

        key = spec.replace(name="s")
        if stochastic_depth is not None:
            key = key.replace(stochastic_depth=stochastic_depth)
        if key not in self._models:
            check_in_space(self.space, spec)
            while len(self._models) >= self._cache_size:
                self._models.popitem(last=False)
            self._models[key] = build_model(key, num_classes=self.num_classes)
        self._models.move_to_end(key)
        return self._models[key]

    def forward(self, spec: ArchSpec, x: Any, training: bool = False, stochastic_depth: float | None = None,
                seed: tuple | None = None) -> tuple[Any, list]:
        """(logits, new BN moving statistics) of sub-network `spec` on clip batch `x`; see `values`
        for `seed` and `model` for `stochastic_depth`."""
        model = self.model(spec, stochastic_depth)
        tv, ntv = self.values(spec, model, seed)
        logits, new = model.stateless_call(tv, ntv, x, training=training)
        return logits, [v for w, v in zip(model.non_trainable_variables, new) if "seed_generator" not in w.path]

    def masks(self, spec: ArchSpec) -> list | None:
        """0/1 masks of `spec` for the envelope model's trainable weights, in their order; None when
        `spec` cannot run as masks (see search_space.supernet_masks)."""
        from .supernet_masks import sub_masks

        m = sub_masks(self, spec)
        return None if m is None else [m[w.path] for w in self.envelope_model.trainable_variables]

    def masked_forward(self, masks: list, x: Any, training: bool = False, seed: tuple | None = None,
                       stats: list | None = None):
        """(logits, new BN statistics) of the envelope run with `masks` (what `masks(spec)` returns,
        as arrays or tensors): the output of `spec`'s sub-network, in one graph for every spec.
        `seed`: 3 integers (e.g. seed, step, pass) that fix the dropout masks; `stats`: BN statistics
        to run with (as returned) instead of the envelope's."""
        import tensorflow as tf

        model = self.envelope_model
        tv = [tf.convert_to_tensor(w) * tf.cast(m, w.dtype) for w, m in zip(model.trainable_variables, masks)]
        ntv, n_seed, given = [], 0, iter(stats or ())
        mix = None if seed is None else tf.reduce_sum(tf.cast(seed, tf.int64) * tf.constant([1_000_003, 8_191, 131],
                                                                                         tf.int64))
        for w in model.non_trainable_variables:
            if "seed_generator" in w.path and mix is not None:
                n_seed += 1
                ntv.append(tf.stack([tf.cast(tf.math.floormod(mix + n_seed, 2**31), w.dtype), tf.zeros((), w.dtype)]))
            elif stats is not None and "seed_generator" not in w.path:
                ntv.append(next(given))
            else:
                ntv.append(tf.convert_to_tensor(w))
        logits, new = model.stateless_call(tv, ntv, x, training=training)
        return logits, [v for w, v in zip(model.non_trainable_variables, new) if "seed_generator" not in w.path]

    def write_envelope_statistics(self, new_values: list) -> None:
        """Store the BN moving statistics a masked training pass returned (the largest's)."""
        model = self.envelope_model
        for w, value in zip([w for w in model.non_trainable_variables if "seed_generator" not in w.path], new_values):
            w.assign(value)


def extract(supernet: Supernet, spec: ArchSpec, mode: str = "base", stochastic_depth: float | None = None,
            **build_args: Any) -> Any:
    """`build_model(spec, supernet.num_classes, mode, **build_args)` holding the shared weights.

    mode "stream" (causal spaces) gives the stream model of the same weights. `stochastic_depth`
    replaces the spec's drop-path rate (no weights depend on it). Raises SpecError when `spec` is not
    a point of the supernet's space.
    """
    import numpy as np

    from .builder import build_model

    check_in_space(supernet.space, spec)
    if stochastic_depth is not None:
        spec = spec.replace(stochastic_depth=stochastic_depth)
    base = build_model(spec, num_classes=supernet.num_classes, **build_args)
    tv, ntv = supernet.values(spec, base)
    for w, value in zip(base.trainable_variables + base.non_trainable_variables, tv + ntv):
        w.assign(np.asarray(value))
    if mode == "base":
        return base
    stream = build_model(spec, num_classes=supernet.num_classes, mode=mode, **build_args)
    stream.set_weights(base.get_weights())
    return stream


def copy_weights(source: Any, target: Any) -> None:
    """Assign `source`'s weights to `target`'s of the same path (dropout seed states left out)."""
    by_path = {w.path: w for w in source.weights if "seed_generator" not in w.path}
    for w in target.weights:
        if "seed_generator" not in w.path:
            w.assign(by_path[w.path])


__all__ = ["STRUCTURAL", "Supernet", "check_in_space", "check_space", "copy_weights", "envelope", "extract", "extreme_params"]
