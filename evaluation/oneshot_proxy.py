"""Proxy kind `supernet`: a trial's spec scored as a sub-network of a trained supernet.

The checkpoint (`supernet.checkpoint`, relative paths inside the study folder) is read once per
process and never written, so any number of workers (one process or PostgreSQL workers on other
machines) can share it. Each candidate's BN statistics are recalibrated on `recalibration_clips`
training clips at its own input size, then it is evaluated on the validation clips (all, or the
first `val_clips`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def checkpoint_path(config: Any, study_dir: str | Path) -> Path:
    """Where a study's supernet checkpoint lives: `supernet.checkpoint`, inside the study folder
    when relative."""
    from .oneshot import SupernetConfig

    path = Path((config.supernet or SupernetConfig()).checkpoint).expanduser()
    return path if path.is_absolute() else Path(study_dir) / path


def load_state(runner: Any):
    """(supernet, scorer) of the runner's study, loaded once (ValueError naming a bad checkpoint)."""
    state = getattr(runner, "_supernet_state", None)
    if state is None:
        from .oneshot import load_supernet
        from .oneshot_score import Scorer

        path = checkpoint_path(runner.config, runner.study_dir)
        try:
            net = load_supernet(path, runner.space, runner.num_classes)
        except ValueError as exc:
            raise ValueError(f"supernet.checkpoint: {' '.join(str(exc).split())} (train it with `movinas "
                             "supernet train CONFIG`)") from None
        state = runner._supernet_state = (net, Scorer(net))
    return state


def supernet_proxy(runner: Any, spec: Any, callback: Any = None):
    """ProxyResult of `spec` scored on the study's supernet (metrics val_accuracy, val_loss, seconds,
    supernet_step)."""
    from .oneshot import SupernetConfig
    from .oneshot_score import recalibration_clips
    from .proxy import ProxyResult

    net, scorer = load_state(runner)
    cfg = runner.config.supernet or SupernetConfig()
    data = runner.dataset(spec)
    n_val = len(data.val.y) if cfg.val_clips is None else min(cfg.val_clips, len(data.val.y))
    recal = recalibration_clips(data.train.x, cfg.recalibration_clips, runner.config.seed or 0)
    metrics = scorer.score(spec, recal, data.val.x[:n_val], data.val.y[:n_val].astype("int64"))
    metrics["supernet_step"] = float(net.meta["step"])
    return ProxyResult(status="complete", metrics=metrics)


__all__ = ["checkpoint_path", "load_state", "supernet_proxy"]
