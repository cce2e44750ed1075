"""A study's trial as a model to export: its weights (kept from the search, retrained, or fresh)
and its model card. `movinas export` picks the trial and writes the files with
`evaluation.deploy.export.export_model`; this module decides what weights the files carry and says so.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.results.record import LATENCY_MS, TRAIN_ACCURACY, TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS, Outcome

WEIGHTS_FILE = "weights.npz"  # a trial folder's kept proxy weights: {variable path: array}


@dataclass(frozen=True)
class Weights:
    """Where an export's weights come from: "kept" (the trial's own proxy run during the search),
    "retrained" (from scratch here) or "random" (fresh initialization)."""

    source: str
    model: Any = field(compare=False, repr=False)
    labels: list[str] | None = None
    detail: dict = field(default_factory=dict)  # kept: file, metrics; retrained: epochs, dataset, budget, seed, metrics


def save_weights(model, folder: Path) -> Path:
    """Save a trained model's weights by variable path, so they load into the spec's own graph
    (built at another input size, or with stochastic depth off) by name."""
    import numpy as np

    path = Path(folder) / WEIGHTS_FILE
    np.savez(path, **{v.path: np.asarray(v.numpy()) for v in model.weights})
    return path


def load_weights(model, path: Path) -> None:
    """Copy weights saved by `save_weights` into `model`; ValueError when they do not fit it."""
    import numpy as np

    with np.load(path) as arrays:
        saved = {k: arrays[k] for k in arrays.files}
    mine = {v.path: v for v in model.weights}
    if set(saved) != set(mine):
        missing = sorted(set(mine) - set(saved))[:3]
        raise ValueError(f"{path}: the saved weights do not fit the architecture (missing e.g. {missing})")
    for key, variable in mine.items():
        if tuple(saved[key].shape) != tuple(variable.shape):
            raise ValueError(f"{path}: {key} has shape {saved[key].shape}, the architecture needs {variable.shape}")
        variable.assign(saved[key])


def study_labels(attrs: dict, num_classes: int) -> list[str] | None:
    """The study's class names (stored with the study; for older synthetic studies, the built-in
    class list), None when unknown."""
    names = attrs.get("class_names")
    if isinstance(names, list) and len(names) == num_classes:
        return [str(n) for n in names]
    dataset = (attrs.get("config") or {}).get("dataset") or {"kind": "synthetic"}
    if dataset.get("kind") == "synthetic":
        from evaluation.datasets.motion import SYNTHETIC_CLASSES

        if num_classes <= len(SYNTHETIC_CLASSES):
            return [name for name, _ in SYNTHETIC_CLASSES[:num_classes]]
    return None


def kept_weights(spec, folder: str | Path | None, record_weights: str | None, num_classes: int, seed: int = 0,
                 metrics: dict | None = None) -> Weights | None:
    """The trial's weights kept by the search, loaded into `build_model(spec)`; None when the
    trial kept none or its file is not on this machine."""
    if not record_weights or folder is None or not (Path(folder) / record_weights).is_file():
        return None
    from evaluation.compat import seeded
    from search_space import build_model

    with seeded(seed):  # no global seed left behind
        model = build_model(spec, num_classes)
    load_weights(model, Path(folder) / record_weights)
    return Weights("kept", model, detail={"file": record_weights, "metrics": dict(metrics or {})})


def random_weights(spec, num_classes: int, seed: int = 0) -> Weights:
    from evaluation.compat import seeded
    from search_space import build_model

    with seeded(seed):  # no global seed left behind
        return Weights("random", build_model(spec, num_classes))


@contextlib.contextmanager
def epoch_bar(epochs: int, desc: str, show: bool = True):
    """A tqdm bar on stderr counting training epochs, with the latest validation accuracy; yields
    the `train_proxy` callback that advances it (None when not `show`)."""
    if not show:
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=epochs, desc=desc, unit="epoch", file=sys.stderr, dynamic_ncols=True) as bar:
        def on_epoch(epoch: int, entry: dict) -> bool:
            bar.update(1)
            bar.set_postfix_str(f"val_accuracy={entry[VAL_ACCURACY]:.4g}", refresh=True)
            return False

        yield on_epoch


def retrain(spec, data_config: dict, budget: Any, num_classes: int, seed: int = 0,
            base_dir: str | Path | None = None, progress=None) -> Weights:
    """Train `spec` from scratch on the study's dataset (`data_config`, with the spec's sizes filled
    in) within `budget` (a `Budget`, e.g. `evaluation.evaluator.training_budget` of the study's proxy:
    its settings for `budget.epochs` epochs). `progress(line)` is told what is trained and
    turns on a bar of the epochs (`epoch_bar`). ValueError for a dataset or budget that cannot be
    used, or a failed run."""
    from evaluation.datasets import load_dataset
    from evaluation.proxies.train import train_proxy

    epochs = budget.epochs
    dataset = load_dataset(data_config, base_dir=base_dir if base_dir is not None else Path.cwd())
    if dataset.num_classes != num_classes:
        raise ValueError(f"dataset: {dataset.num_classes} classes, the study costed {num_classes}")
    if progress is not None:
        progress(f"training from scratch for {epochs} epochs on {dataset!r} ...")
    with epoch_bar(epochs, "training", progress is not None) as on_epoch:
        result = train_proxy(spec, dataset, budget, seed=seed, num_classes=num_classes, return_model=True,
                             callback=on_epoch)
    if result.status is Outcome.FAILED:
        raise ValueError(f"training failed ({result.reason})")
    labels = list(dataset.class_names) if len(dataset.class_names) == num_classes else None
    return Weights("retrained", result.model, labels, {"epochs": epochs, "dataset": data_config,
                                                       "budget": budget.to_dict(), "seed": seed,
                                                       "metrics": dict(result.metrics)})


# ---------------------------------------------------------------------------------------------
# model card


def model_card(row, attrs: dict, how: str, weights: Weights, paths: dict, num_classes: int) -> str:
    """Markdown: which weights, provenance, architecture, costs, search metrics, files."""
    from evaluation.results.report import format_value

    spec, number = row["spec"], int(row["number"])
    config = attrs.get("config") or {}
    lines = [f"# Model card: {attrs['study']}-{number}", "", *_weights_lines(weights, number), ""]
    lines += ["## How it was found", "",
              f"- study `{attrs['study']}`, storage `{attrs['storage']}`, trial {number} (selected by `{how}`)",
              f"- objectives: {', '.join(o['direction'] + ' ' + o['name'] for o in attrs.get('objectives', []))}",
              f"- constraints: {', '.join(c['text'] for c in attrs.get('constraints', [])) or 'none'}",
              f"- sampler: {_inline(config.get('sampler', 'tpe'))}, seed {config.get('seed', 0)}",
              f"- dataset: {_inline(config.get('dataset', {'kind': 'synthetic'}))}",
              f"- proxy training budget: {_inline(config.get('proxy', {}))}",
              f"- exported {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `movinas export`", ""]
    lines += ["## Architecture", "",
              f"{spec.num_layers} blocks in {len(spec.stages)} stages; {spec.conv_type} conv, SE {spec.se_type}, "
              f"{spec.activation}{', causal' if spec.causal else ''}; input {spec.frames} frames × "
              f"{spec.resolution}² RGB in [0, 1]; {num_classes} classes"
              f"{' (' + ', '.join(weights.labels[:8]) + (', ...' if len(weights.labels) > 8 else '') + ')' if weights.labels else ''}.",
              "", "| stage | blocks | filters | kernels (t×h×w) | expansion widths | first stride |",
              "|---|---|---|---|---|---|"]
    for i, stage in enumerate(spec.stages, 1):
        kernels = ", ".join("×".join(map(str, b.kernel)) for b in stage.blocks)
        expands = ", ".join(str(b.expand) for b in stage.blocks)
        lines.append(f"| {i} | {len(stage.blocks)} | {stage.filters} | {kernels} | {expands} | "
                     f"{'×'.join(map(str, stage.blocks[0].strides))} |")
    lines += ["", f"Stem {spec.stem.filters} filters; head {spec.head.filters} filters, classifier hidden "
              f"{spec.head.hidden}. The full spec is `spec.yaml` (`ArchSpec.from_yaml`).", ""]
    lines += [f"## Costs (analytic, {spec.frames}×{spec.resolution}², batch 1)", "", "| cost | value |", "|---|---|"]
    for col in ("params", "macs", "flops", "activation_bytes", "state_bytes"):
        if col in row and row[col] == row[col]:
            lines.append(f"| {col} | {format_value(col, row[col])} ({int(row[col]):,}) |")
    metrics = [c for c in (VAL_ACCURACY, VAL_LOSS, TRAIN_ACCURACY, TRAIN_LOSS, "epochs", LATENCY_MS,
                           "grad_norm", "snip", "synflow", "naswot") if c in row and row[c] == row[c]]
    if metrics:
        whose = {"kept": "these weights' own proxy run", "supernet": "the supernet sub-network, recalibrated: "
                 "these weights"}.get(weights.source, "proxy training, not these weights")
        lines += ["", f"## Metrics measured during the search ({whose})", "",
                  "| metric | value |", "|---|---|"] + [f"| {c} | {format_value(c, row[c])} |" for c in metrics]
    lines += ["", "## Files", ""] + [f"- `{Path(p).name}` ({key})" for key, p in paths.items()]
    lines += ["", "Run it: `movinas predict THIS_FOLDER video.mp4`" + (" (add `--stream` for the stream model)"
                                                                      if "stream_tflite" in paths or
                                                                      "stream_keras" in paths else ""), ""]
    return "\n".join(lines)


def _supernet_lines(weights: Weights) -> list[str]:
    """The model card's first paragraph for supernet weights."""
    d = weights.detail
    m = d.get("metrics") or {}
    scores = (f"validation accuracy {m.get(VAL_ACCURACY, float('nan')):.4g}, "
              f"validation loss {m.get(VAL_LOSS, float('nan')):.4g}")
    inherited = (f"inherited from the study's supernet (`{d['checkpoint']}`, step {d['step']}), BatchNorm statistics "
                 f"recalibrated on {d['recalibration_clips']} training clips")
    if weights.source == "supernet":
        return [f"Weights: {inherited}, not trained on their own: {scores}. Re-export with `--train-epochs E` to "
                "fine-tune them first."]
    return [f"Weights: {inherited}, then fine-tuned for {d['epochs']} epochs with the study's proxy settings: "
            f"{scores} (inherited, before fine-tuning: validation accuracy "
            f"{d['inherited_metrics'].get(VAL_ACCURACY, float('nan')):.4g})."]


def _weights_lines(weights: Weights, number: int) -> list[str]:
    if weights.source.startswith("supernet"):
        return _supernet_lines(weights)
    if weights.source == "random":
        return ["> **WARNING: the weights in these files are RANDOMLY INITIALIZED, not trained.** They are fit for "
                "checking size, speed and conversion, not for predictions. Re-export with `--train-epochs E` to "
                "train on the study's dataset, or train the spec yourself."]
    m = weights.detail.get("metrics") or {}
    scores = (f"validation accuracy {m.get(VAL_ACCURACY, float('nan')):.4g}, "
              f"validation loss {m.get(VAL_LOSS, float('nan')):.4g}")
    if weights.source == "kept":
        return [f"Weights: trained during the search, by trial {number}'s own proxy run (kept in "
                f"`{weights.detail.get('file')}`; {m.get('epochs', float('nan')):.3g} epochs at the proxy's input "
                f"size): {scores}. Re-export with `--train-epochs E` to retrain from scratch for longer."]
    d = weights.detail
    return [f"Weights: trained from scratch for {d['epochs']} epochs on {_inline(d['dataset'])} (seed {d['seed']}): "
            f"{scores}."]


def _inline(value) -> str:
    import yaml

    if isinstance(value, str):
        return value
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).strip() + "`"


__all__ = ["WEIGHTS_FILE", "Weights", "epoch_bar", "kept_weights", "load_weights", "model_card", "random_weights", "retrain",
           "save_weights", "study_labels"]
