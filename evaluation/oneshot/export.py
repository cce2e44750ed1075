"""Exporting a trial of a supernet study: the sub-network with the weights it inherits from the
study's supernet (BN statistics recalibrated), or those weights fine-tuned (`--train-epochs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.results.record import VAL_ACCURACY, VAL_LOSS, Outcome


def supernet_weights(spec: Any, cfg: Any, attrs: dict, num_classes: int, seed: int = 0,
                     budget: Any = None, progress: Any = None):
    """`evaluation.deploy.export_trial.Weights` of `spec` from the study's supernet: source "supernet"
    (inherited, recalibrated on `supernet.recalibration_clips` training clips, scored on the
    validation clips) or, with a `budget`, "supernet_finetuned" (then trained within it, e.g.
    `evaluation.evaluator.training_budget` of the study's proxy). `cfg`: the study's `SupernetConfig`
    (`SupernetProxy.supernet`). ValueError naming
    the checkpoint or dataset when they cannot be used."""
    from evaluation.datasets import dataset_for, load_dataset
    from evaluation.deploy.export_trial import Weights, epoch_bar
    from evaluation.oneshot.proxy import checkpoint_file
    from evaluation.oneshot.score import Scorer, recalibrated_model, recalibration_clips
    from evaluation.oneshot.supernet import load_supernet
    from evaluation.proxies.train import BuildOptions, train_proxy

    config = attrs.get("config") or {}
    path = checkpoint_file(cfg, attrs.get("folder") or ".")
    net = load_supernet(path, num_classes=num_classes)
    data = load_dataset(dataset_for(config.get("dataset") or {"kind": "synthetic"}, spec), base_dir=Path.cwd())
    model = recalibrated_model(net, spec, data.train.x, cfg.recalibration_clips, seed)
    recal = recalibration_clips(data.train.x, cfg.recalibration_clips, seed)
    metrics = Scorer(net).score(spec, recal, data.val.x, data.val.y.astype("int64"))
    labels = list(data.class_names) if len(data.class_names) == num_classes else None
    detail = {"checkpoint": str(path), "step": int(net.meta["step"]), "recalibration_clips": len(recal),
              "metrics": {k: metrics[k] for k in (VAL_ACCURACY, VAL_LOSS)}}
    if budget is None:
        return Weights("supernet", model, labels, detail)
    epochs = budget.epochs
    if progress is not None:
        progress(f"fine-tuning the inherited weights for {epochs} epochs on {data!r} ...")
    start = {w.path: w.numpy() for w in model.weights if "seed_generator" not in w.path}
    with epoch_bar(epochs, "fine-tuning", progress is not None) as on_epoch:
        result = train_proxy(spec, data, budget, seed=seed, num_classes=num_classes, return_model=True,
                             build=BuildOptions(initial_weights=start), callback=on_epoch)
    if result.status is Outcome.FAILED:
        raise ValueError(f"fine-tuning failed ({result.reason})")
    detail.update(epochs=epochs, inherited_metrics=detail["metrics"],
                  metrics={k: float(v) for k, v in result.metrics.items() if isinstance(v, (int, float))})
    return Weights("supernet_finetuned", result.model, labels, detail)


__all__ = ["supernet_weights"]
