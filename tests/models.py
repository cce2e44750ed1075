"""Small models shared by the export, ensemble and predict tests."""

import numpy as np

from search_space import ArchSpec, Block, Head, Stage, Stem


def small_causal_spec() -> ArchSpec:
    """A two-stage causal 2+1D spec with positional encoding: every stream state kind, tiny."""
    return ArchSpec(
        stem=Stem(filters=8), head=Head(filters=24, hidden=32), name="tiny-stream", conv_type="2plus1d",
        se_type="2plus3d", causal=True, activation="hard_swish", gating_activation="hard_sigmoid",
        positional_encoding=True, frames=8, resolution=32,
        stages=(Stage(8, (Block(16, (1, 3, 3), (1, 2, 2)),)),
                Stage(16, (Block(32, (3, 3, 3), (1, 2, 2)), Block(32, (3, 3, 3))))),
    )


def randomize(model, seed: int) -> None:
    """Replace constant-initialized weights (ReZero scales, biases, BN statistics) by random ones, so
    every block's residual branch and every state matters."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.size and np.all(w == w.flat[0]):
            w = rng.uniform(0.5, 1.5, w.shape) if w.flat[0] == 1 else rng.normal(0, 0.5, w.shape)
        else:
            w = w * rng.uniform(0.8, 1.2)
        weights.append(w.astype(np.float32))
    model.set_weights(weights)


def exported_small_stream(out, formats, clips_per_class: int, frames: int, classes: int, **options):
    """`small_causal_spec` built, randomized and exported as a stream model with `formats`, calibrated
    on synthetic clips of `frames` frames; returns (model, export paths, the dataset)."""
    from evaluation import synthetic
    from evaluation.deploy.export import ExportOptions, export_model
    from search_space.builder import build_model

    spec = small_causal_spec()
    model = build_model(spec, num_classes=classes, frames=8, resolution=32)
    randomize(model, 0)
    data = synthetic(num_classes=4, clips_per_class=clips_per_class, frames=frames, resolution=32, seed=1)
    paths = export_model(spec, model, out, formats=formats, stream=True, representative=data.train.x,
                         options=ExportOptions(num_classes=classes, **options))
    return model, paths, data
