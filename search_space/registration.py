"""`.keras` files of movinas models load with plain `keras.saving.load_model` after `import search_space`.

The custom layers (`layers.py`, `pooling.py`) register with Keras when their modules are imported,
and those modules import TensorFlow, which `import search_space` must not do (the cost model stays
TensorFlow-free). So registration waits until Keras and TensorFlow are loaded anyway: it happens
at `import search_space` when they already are, else through a post-import hook (wrapt's, which
TensorFlow depends on) as soon as the later of the two has finished loading.
"""

from __future__ import annotations

import sys
import warnings

NEEDS = ("keras", "tensorflow")


def register_when_keras_loads() -> None:
    """Register the custom layers with Keras now, or once Keras and TensorFlow are imported."""
    try:
        from wrapt import register_post_import_hook
    except ImportError:  # pragma: no cover - no TensorFlow installed, nothing to register with
        return
    for name in NEEDS:
        register_post_import_hook(_register, name)


def _ready(name: str, just_loaded) -> bool:
    module = sys.modules.get(name)
    if module is None:
        return False
    # `import tensorflow` imports keras half way through: a module still running its own import
    # is not ready (the hook's own module has finished executing, only its import is unwinding)
    return module is just_loaded or not _initializing(module)


def _initializing(module) -> bool:
    """Whether `module` is still running its own import."""
    return bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _register(module=None) -> None:
    if not all(_ready(name, module) for name in NEEDS):
        return
    if _initializing(sys.modules.get(f"{__package__}.layers")):
        return  # `import search_space.layers` itself loaded TensorFlow; its last line imports pooling
    try:
        from . import layers, pooling  # noqa: F401  their decorators register the custom layers
    except Exception as exc:  # pragma: no cover - never break the user's own `import keras`
        warnings.warn(f"movinas could not register its Keras layers ({exc}); load .keras files after "
                      f"`import search_space.builder`", stacklevel=2)
