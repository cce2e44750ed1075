"""`load_dataset`: a dataset from its YAML mapping, e.g. ``{kind: synthetic, num_classes: 6}`` or
``{kind: video_folder, source: videos/, fps: 5, cache_dir: cache/}``. Field names are the keyword
arguments of the function `kind` names (`dataset_fields`); defaults live in those functions."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path

from .clips import VideoDataset
from .folder import FOLDER_OPTIONS, video_folder
from .graded import graded
from .lists import LIST_OPTIONS, hmdb51, kinetics_csv, split_list
from .motion import synthetic

DATASET_KINDS = {"synthetic": synthetic, "graded": graded, "video_folder": video_folder, "split_list": split_list,
                 "hmdb51": hmdb51, "kinetics_csv": kinetics_csv}
_OPTIONS = {"video_folder": FOLDER_OPTIONS, "split_list": LIST_OPTIONS, "hmdb51": LIST_OPTIONS,
            "kinetics_csv": LIST_OPTIONS}  # keyword options of the kinds whose function takes **options
_PATH_FIELDS = ("source", "cache_dir", "train", "val", "root", "classes", "splits")


def dataset_fields(kind: str) -> tuple[str, ...]:
    """The fields a `kind` mapping may hold besides `kind`: its function's named arguments and options."""
    named = [p.name for p in inspect.signature(DATASET_KINDS[kind]).parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return (*named, *(o for o in _OPTIONS.get(kind, ()) if o not in named))


def required_fields(kind: str) -> tuple[str, ...]:
    """The fields a `kind` mapping must hold (its function's arguments without a default)."""
    return tuple(p.name for p in inspect.signature(DATASET_KINDS[kind]).parameters.values()
                 if p.default is inspect.Parameter.empty and p.kind is not inspect.Parameter.VAR_KEYWORD)


def load_dataset(config: Mapping, where: str = "dataset", base_dir: str | Path | None = None) -> VideoDataset:
    """Build the dataset `config` describes. Every error is a ValueError whose message starts with
    the field path under `where` (``dataset.clips_per_class: 0, must be >= 2``). Relative paths
    (`source`, `cache_dir`, and the list kinds' `train`, `val`, `root`, `classes`, `splits`) are taken
    relative to `base_dir` (e.g. the config file's folder)."""
    kinds = ", ".join(DATASET_KINDS)
    if not isinstance(config, Mapping):
        raise ValueError(f"{where}: expected a mapping with a 'kind' field ({kinds}), found {config!r}")
    if "kind" not in config:
        raise ValueError(f"{where}.kind: missing, allowed: {kinds}")
    kind = config["kind"]
    if not isinstance(kind, str) or kind not in DATASET_KINDS:
        raise ValueError(f"{where}.kind: {kind!r}, allowed: {kinds}")
    allowed = dataset_fields(kind)
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
    missing = [k for k in required_fields(kind) if k not in kwargs]
    if missing:
        what = "the folder or CSV file of the videos" if missing[0] == "source" else f"required for kind {kind}"
        raise ValueError(f"{where}.{missing[0]}: missing, {what}")
    try:
        return DATASET_KINDS[kind](**kwargs)
    except FileNotFoundError as exc:
        field = next((k for k in _PATH_FIELDS if k in kwargs and str(kwargs[k]) in str(exc)), "source")
        raise ValueError(f"{where}.{field}: {exc}") from None
    except ValueError as exc:
        field = str(exc).split(":", 1)[0]
        raise ValueError(f"{where}.{exc}" if field in allowed else f"{where}: {exc}") from None


SPEC_SIZED = ("frames", "resolution")  # dataset fields that may say `spec`: each trial's own input size


def dataset_for(dataset: Mapping, spec) -> dict:
    """The dataset config with every `spec` size replaced by `spec`'s own frames / resolution."""
    return {k: getattr(spec, k) if k in SPEC_SIZED and v == "spec" else v for k, v in dataset.items()}
