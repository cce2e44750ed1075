"""A model to start from: an export folder (what `movinas import`, `export` and `finetune` write) or a
released MoViNet checkpoint / SavedModel (read through `search_space.load_official`), as its spec, its
weights by variable path, and its labels.

`movinas finetune` starts from one; a search's `proxy: {init: MODEL}` starts each candidate from its
nested weights (`Pretrained.nested_in`, the rule of `search_space.nested`).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from evaluation.deploy.export import float32_policy, read_manifest
from search_space.spec import ArchSpec


class Pretrained(NamedTuple):
    """`weights`: {variable path: float32 array} of the base (for causal specs: causal) model."""

    spec: ArchSpec
    weights: dict[str, np.ndarray]
    num_classes: int
    labels: list[str] | None
    manifest: dict  # the export's export.json ({} for a checkpoint)
    source: str  # where it came from, for messages and model cards

    def nested_in(self, spec: ArchSpec):
        """A function of a built model of `spec` giving its weights nested in this one's (for
        `evaluation.proxies.train.BuildOptions.initial_weights`)."""
        from search_space.nested import nested_weights

        def initial(model) -> dict:
            return nested_weights(self.spec, self.weights, spec, {w.path: tuple(w.shape) for w in model.weights})

        return initial


def load_pretrained(path: str | Path) -> Pretrained:
    """The model at `path`: an export folder (export.json, spec.yaml and model.keras or model.weights.h5),
    or a MoViNet checkpoint or SavedModel. FileNotFoundError for a missing path, ValueError (one line
    naming the path) for anything else that is not such a model."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such model folder or checkpoint")
    if path.is_dir() and (path / "export.json").is_file():
        return _from_export(path)
    from search_space.official import load_official

    imported = load_official(path)  # OfficialError (a ValueError) names what is wrong
    labels = _kinetics_labels() if imported.num_classes == 600 else None
    return Pretrained(imported.spec, weights_by_path(imported.model), imported.num_classes, labels, {},
                      f"{path} (released MoViNet {imported.source})")


def weights_by_path(model: Any) -> dict[str, np.ndarray]:
    """{variable path: array} of a Keras model, dropout seed states left out."""
    return {w.path: np.asarray(w.numpy()) for w in model.weights if "seed_generator" not in w.path}


def _from_export(folder: Path) -> Pretrained:
    manifest = read_manifest(folder)
    files = manifest.get("files", {})
    if "yaml" not in files:
        raise ValueError(f"{folder}: the export holds no spec.yaml (export it with the yaml format)")
    weights = next((folder / files[k] for k in ("keras", "weights") if k in files), None)
    if weights is None:
        raise ValueError(f"{folder}: the export holds neither model.keras nor model.weights.h5 "
                         f"(it has: {', '.join(files)}); export it with the keras or weights format")
    spec = ArchSpec.from_yaml(folder / files["yaml"])
    num_classes = int(manifest["num_classes"])
    from search_space.builder import build_model

    with float32_policy():
        model = build_model(spec, num_classes)
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{weights}: does not hold the weights of {spec.name!r} with {num_classes} classes "
                         f"({' '.join(str(exc).split())[:200]})") from None
    labels = None
    if "labels" in files:
        from evaluation.deploy.inference import read_labels

        labels = read_labels(folder / files["labels"], num_classes)
    return Pretrained(spec, weights_by_path(model), num_classes, labels, manifest, str(folder))


def _kinetics_labels() -> list[str]:
    from evaluation.deploy.inference import LABEL_SETS

    return LABEL_SETS["kinetics600"].read_text().split("\n")[:600]


__all__ = ["Pretrained", "load_pretrained", "weights_by_path"]
