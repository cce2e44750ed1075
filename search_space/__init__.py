"""MoViNet search space: the `ArchSpec` description, presets, sampling, analytic costs, builder.

Importing this package does not import TensorFlow; `build_model` loads it on first use. Once
Keras is loaded, the custom layers are registered with it, so `keras.saving.load_model` reads
exported `.keras` files (see `search_space.registration`).
"""

from .cost import BlockCost, Cost, estimate_cost
from .plan import LayerPlan, Plan, walk
from .presets import PRESETS, movinet, preset_from_name
from .registration import register_when_keras_loads
from .space import BUILTIN_SPACES, SearchSpace
from .spec import ArchSpec, Block, Head, SpecError, Stage, Stem, make_divisible

register_when_keras_loads()

__all__ = [
    "ArchSpec",
    "BUILTIN_SPACES",
    "Block",
    "BlockCost",
    "Cost",
    "Head",
    "LayerPlan",
    "PRESETS",
    "Plan",
    "SearchSpace",
    "SpecError",
    "Stage",
    "Stem",
    "build_model",
    "estimate_cost",
    "init_states",
    "load_official",
    "make_divisible",
    "movinet",
    "preset_from_name",
    "stream_step",
    "walk",
]


def __getattr__(name):  # lazy: keep `import search_space` free of TensorFlow
    if name == "build_model":
        from .builder import build_model

        return build_model
    if name == "load_official":
        from .official import load_official

        return load_official
    if name in ("init_states", "stream_step"):
        from . import stream

        return getattr(stream, name)
    raise AttributeError(f"module 'search_space' has no attribute {name!r}")
