"""Write the synthetic motion dataset as a folder of real video files, one sub-folder per class:
the layout `video_folder` reads, so the whole path from encoded videos to clips can be tried (and
tested) without footage of one's own. `movinas videos OUT` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .clips import check_float, check_int
from .motion import MAX_CLASSES, SYNTHETIC_CLASSES, render
from .video_io import write_video

EXTENSIONS = (".mp4", ".avi")
"""Containers written: mp4 (MPEG-4 part 2) or avi (MJPG), both decoded by OpenCV everywhere."""
_CHUNK = 8  # clips rendered at once: bounds memory for long or large videos


@dataclass(frozen=True)
class Encoding:
    """How the videos are written: `fps` frames per second, in the container of `extension` (`EXTENSIONS`)."""

    fps: float = 5.0
    extension: str = ".mp4"


class WrittenFolder(NamedTuple):
    root: Path
    classes: tuple[str, ...]
    videos: int


def write_synthetic_folder(
    out: str | Path,
    num_classes: int = 4,
    clips_per_class: int = 24,
    frames: int = 16,
    resolution: int = 112,
    noise: float = 0.05,
    seed: int = 0,
    encoding: Encoding = Encoding(),
) -> WrittenFolder:
    """Write `clips_per_class` videos of each of the first `num_classes` synthetic motion classes to
    ``out/<class>/<class>_<i>.<ext>``: `frames` frames of `resolution`² pixels at `encoding.fps` frames
    per second. One frame of the generator is one frame of the file, so a search reading the folder at
    that rate sees the motion the synthetic dataset has. The same arguments write the same pictures
    (before the lossy codec); existing files of the same names are replaced."""
    num_classes = check_int(num_classes, "num_classes", 2, MAX_CLASSES)
    clips_per_class = check_int(clips_per_class, "clips_per_class", 1, 100_000)
    frames = check_int(frames, "frames", 3, 10_000)
    resolution = check_int(resolution, "resolution", 16, 4096)
    fps = check_float(encoding.fps, "fps", 0.0, 1000.0, lo_open=True)
    noise = check_float(noise, "noise", 0.0, 1.0)
    seed = check_int(seed, "seed", 0)
    extension = encoding.extension
    if extension not in EXTENSIONS:
        raise ValueError(f"extension: {extension!r}, must be one of {', '.join(EXTENSIONS)}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    names = tuple(name for name, _ in SYNTHETIC_CLASSES[:num_classes])
    written = 0
    for label, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, clips_per_class, _CHUNK):
            count = min(_CHUNK, clips_per_class - start)
            clips = render(np.full(count, label, np.int32), frames, resolution, noise, 1, rng)
            for i, clip in enumerate(clips, start):
                write_video(folder / f"{name}_{i:04d}{extension}", clip, fps=fps)
                written += 1
    return WrittenFolder(root, names, written)
