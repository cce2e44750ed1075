"""Proxy kind `supernet`: a trial's spec scored as a sub-network of a trained supernet.

The checkpoint (`supernet.checkpoint`, relative paths inside the study folder) is read once per
scorer and never written, so any number of workers (one process or PostgreSQL workers on other
machines) can share it. Each candidate's BN statistics are recalibrated on `recalibration_clips`
training clips at its own input size, then it is evaluated on the validation clips (all, or the
first `val_clips`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evaluation.results.record import Outcome


def checkpoint_file(supernet: Any, study_dir: str | Path) -> Path:
    """Where the checkpoint of a `SupernetConfig` lives: its `checkpoint`, inside the study folder
    when relative."""
    path = Path(supernet.checkpoint).expanduser()
    return path if path.is_absolute() else Path(study_dir) / path


def checkpoint_path(config: Any, study_dir: str | Path) -> Path:
    """Where a study's supernet checkpoint lives (`config`: a search config, its `supernet:` section)."""
    from evaluation.oneshot.supernet import SupernetConfig

    return checkpoint_file(config.supernet or SupernetConfig(), study_dir)


class SupernetScorer:
    """Scores specs on the study's supernet (`evaluation.evaluator.SupernetProxy`): metrics
    val_accuracy, val_loss, seconds, supernet_step. The supernet is loaded when the scorer is made
    (ValueError naming a bad checkpoint)."""

    def __init__(self, proxy: Any, context: Any) -> None:
        from evaluation.oneshot.score import Scorer
        from evaluation.oneshot.supernet import load_supernet

        self.config, self.context = proxy.supernet, context
        path = checkpoint_file(self.config, context.study_dir)
        try:
            self.net = load_supernet(path, context.space, context.num_classes)
        except ValueError as exc:
            raise ValueError(f"supernet.checkpoint: {' '.join(str(exc).split())} (train it with `movinas "
                             "supernet train CONFIG`)") from None
        self.scorer = Scorer(self.net)

    def __call__(self, spec: Any, callback: Any = None, keep_model: bool = False):
        from evaluation.oneshot.score import recalibration_clips
        from evaluation.proxies.train import ProxyResult

        cfg = self.config
        data = self.context.dataset(spec)
        n_val = len(data.val.y) if cfg.val_clips is None else min(cfg.val_clips, len(data.val.y))
        recal = recalibration_clips(data.train.x, cfg.recalibration_clips, self.context.seed)
        metrics = self.scorer.score(spec, recal, data.val.x[:n_val], data.val.y[:n_val].astype("int64"))
        metrics["supernet_step"] = float(self.net.meta["step"])
        return ProxyResult(status=Outcome.COMPLETE, metrics=metrics)


__all__ = ["SupernetScorer", "checkpoint_file", "checkpoint_path"]
