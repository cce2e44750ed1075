"""The dataset value every loader returns (`Clips`, `VideoDataset`), argument checks and the
stratified train/validation split shared by the synthetic and the video-folder datasets.

Plain numpy: importing this package never imports TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from search_space import validate


class DatasetWarning(UserWarning):
    """A video file or class folder was skipped. One warning per file, naming it; silence with
    ``warnings.filterwarnings("ignore", category=DatasetWarning)``."""


class Clips(NamedTuple):
    """`x`: float32 [N, T, H, W, 3], RGB in [0, 1]; `y`: int32 [N] class indices."""

    x: np.ndarray
    y: np.ndarray


@dataclass(frozen=True, eq=False)
class VideoDataset:
    """A labelled video-classification dataset split into train and validation clips.

    `skipped` names the files a loader could not decode (empty for synthetic data). Compared and
    hashed by identity (the arrays make field-wise equality ambiguous), so it can key a cache.
    """

    name: str
    class_names: tuple[str, ...]
    train: Clips
    val: Clips
    frames: int
    resolution: int
    skipped: tuple[str, ...] = ()

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __repr__(self) -> str:  # the arrays are large; show their sizes, not their contents
        return (
            f"VideoDataset(name={self.name!r}, classes={self.num_classes}, train={len(self.train.y)}, "
            f"val={len(self.val.y)}, frames={self.frames}, resolution={self.resolution}, "
            f"skipped={len(self.skipped)})"
        )


def check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    """`value` (numpy integers too) as an int in [lo, hi]: `search_space.validate.integer`'s order and message."""
    return int(validate.integer(int(value) if isinstance(value, np.integer) else value, name, lo, hi))


def check_float(
    value, name: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False
) -> float:
    """`value` (numpy scalars too) as a float in the interval: `search_space.validate.number`'s order."""
    if isinstance(value, np.integer | np.floating):
        value = value.item()
    return float(validate.number(value, name, lo, hi, lo_open=lo_open, hi_open=hi_open))


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): per class, round(val_fraction × n) clips go to validation, kept within
    [1, n − 1] so that every class with two or more clips appears on both sides; a class with a
    single clip stays in train. Both index arrays come back shuffled by `seed`."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = 0 if len(idx) < 2 else min(max(int(np.floor(val_fraction * len(idx) + 0.5)), 1), len(idx) - 1)
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    empty = np.zeros(0, np.int64)
    return rng.permutation(np.concatenate(train or [empty])), rng.permutation(np.concatenate(val or [empty]))


def take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Clips:
    """The clips at `idx` as a `Clips` with the documented dtypes."""
    return Clips(np.ascontiguousarray(x[idx], dtype=np.float32), np.asarray(y[idx], dtype=np.int32))


def single_frame(dataset: VideoDataset, seed: int = 0) -> VideoDataset:
    """The motion-blind baseline of `dataset`: each clip replaced by one of its frames (drawn per
    clip with `seed`) repeated over time. Whatever a model learns from it, it learned without motion."""
    import dataclasses

    rng = np.random.default_rng(seed)

    def freeze(clips: Clips) -> Clips:
        pick = rng.integers(0, clips.x.shape[1], len(clips.y))
        still = clips.x[np.arange(len(clips.y)), pick][:, None]
        return Clips(np.repeat(still, clips.x.shape[1], axis=1), clips.y)

    return dataclasses.replace(dataset, name=f"{dataset.name}-single-frame", train=freeze(dataset.train),
                               val=freeze(dataset.val))
