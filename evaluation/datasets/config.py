"""`load_dataset`: a dataset from its YAML mapping, e.g. ``{kind: synthetic, num_classes: 6}`` or
``{kind: video_folder, source: videos/, fps: 5, cache_dir: cache/}``. Field names are the keyword
arguments of the function `kind` names; defaults live in those functions."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

from .clips import VideoDataset
from .folder import video_folder
from .graded import graded
from .motion import synthetic

DATASET_KINDS = {"synthetic": synthetic, "graded": graded, "video_folder": video_folder}
_PATH_FIELDS = ("source", "cache_dir")


def load_dataset(config: Mapping, where: str = "dataset", base_dir: str | Path | None = None) -> VideoDataset:
    """Build the dataset `config` describes. Every error is a ValueError whose message starts with
    the field path under `where` (``dataset.clips_per_class: 0, must be >= 2``). Relative `source`
    and `cache_dir` paths are taken relative to `base_dir` (e.g. the config file's folder)."""
    kinds = ", ".join(DATASET_KINDS)
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'kind' field ({kinds}), found {config!r}")
    if "kind" not in config:
        raise ValueError(f"{where}.kind: missing, allowed: {kinds}")
    kind = config["kind"]
    if kind not in DATASET_KINDS:
        raise ValueError(f"{where}.kind: {kind!r}, allowed: {kinds}")
    make = DATASET_KINDS[kind]
    allowed = tuple(inspect.signature(make).parameters)
    kwargs = {}
    for key, value in config.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise ValueError(
                f"{where}.{key}: unknown field for kind {kind}, allowed: kind, {', '.join(allowed)}"
            )
        if key in _PATH_FIELDS and value is not None:
            if not isinstance(value, str | Path):
                raise ValueError(f"{where}.{key}: {value!r}, must be a path")
            value = Path(base_dir) / value if base_dir is not None else Path(value)
        if key == "extensions" and isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    if kind == "video_folder" and "source" not in kwargs:
        raise ValueError(f"{where}.source: missing, the folder or CSV file of the videos")
    try:
        return make(**kwargs)
    except FileNotFoundError as exc:
        raise ValueError(f"{where}.source: {exc}") from None
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise ValueError(f"{where}.{exc}" if field in allowed else f"{where}: {exc}") from None


SPEC_SIZED = ("frames", "resolution")  # dataset fields that may say `spec`: each trial's own input size


def dataset_for(dataset: Mapping, spec) -> dict:
    """The dataset config with every `spec` size replaced by `spec`'s own frames / resolution."""
    return {k: getattr(spec, k) if k in SPEC_SIZED and v == "spec" else v for k, v in dataset.items()}
