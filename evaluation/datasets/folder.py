"""A dataset of real videos: a folder with one sub-folder per class (the UCF101 / Kinetics layout)
or a CSV file of ``path,label`` rows, decoded with OpenCV into fixed-size clips.

Files that cannot be decoded are skipped with one `DatasetWarning` each (through `warnings.warn`),
naming the file, and listed in `VideoDataset.skipped`. Decoded clips can be cached on disk as
uint8 ``.npy`` files so that repeated trials do not decode again.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .clips import Clips, DatasetWarning, VideoDataset, check_float, check_int, stratified_split
from .video_io import VIDEO_EXTENSIONS, check_sampling, decode_clip, to_float

_CACHE_VERSION = 1  # bump when decoding changes, so that old cache entries are not reused


def video_folder(
    source: str | Path,
    frames: int = 8,
    resolution: int = 64,
    stride: int | None = None,
    fps: float | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    progress: bool | None = None,
) -> VideoDataset:
    """Load the videos under `source` as clips of `frames` frames at `resolution`², sampled every
    `stride`-th frame or at `fps` frames per second (see `video_io`), split per class into train
    and validation by `seed`.

    `source` is a folder whose sub-folders name the classes (sorted; files with `extensions`,
    searched recursively; an empty sub-folder is skipped with a warning), or a CSV file of
    ``path,label`` rows with an optional ``path,label`` header (relative paths are relative to the
    CSV's folder). A class whose files are all unreadable is dropped with a warning. Raises
    FileNotFoundError for a missing `source`, ValueError if no video can be decoded.
    `progress`: a tqdm bar of the files decoded on stderr (None: only when stderr is a terminal).
    """
    check_sampling(frames, resolution, stride, fps)
    val_fraction = check_float(val_fraction, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)
    seed = check_int(seed, "seed", 0)
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
        raise ValueError(f"extensions: {extensions!r}, must be a list of file endings such as '.mp4'")
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such folder or CSV file")
    if source.is_dir():
        items = _list_folder(source, tuple(e.lower() for e in extensions))
    elif source.suffix.lower() == ".csv":
        items = _list_csv(source)
    else:
        raise ValueError(
            f"{source}: neither a folder of class sub-folders nor a .csv file of path,label rows"
        )

    cache = Path(cache_dir) if cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)

    def load(item: tuple[Path, str]):
        try:
            return _load_clip(item[0], frames, resolution, stride, fps, cache), None
        except (OSError, ValueError) as exc:
            return None, str(exc)
        except Exception as exc:  # cv2.error and other decoder failures: the file is unusable
            return None, f"{item[0]}: {type(exc).__name__}: {exc}"

    from tqdm import tqdm

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # OpenCV releases the GIL
        results = list(tqdm(pool.map(load, items), total=len(items), desc=f"decoding {source.name}", unit="video",
                            file=sys.stderr, disable=None if progress is None else not progress))

    clips, labels, skipped = [], [], []
    for (path, label), (clip, error) in zip(items, results):
        if clip is None:
            warnings.warn(f"skipped unreadable video: {error}", DatasetWarning, stacklevel=2)
            skipped.append(str(path))
        else:
            clips.append(clip)
            labels.append(label)
    if not clips:
        raise ValueError(f"{source}: no readable videos ({len(items)} found, {len(skipped)} unreadable)")
    listed = sorted({label for _, label in items})
    class_names = tuple(sorted(set(labels)))
    for name in sorted(set(listed) - set(class_names)):
        warnings.warn(
            f"class {name!r} in {source} has no readable video; dropped", DatasetWarning, stacklevel=2
        )

    y = np.array([class_names.index(label) for label in labels], np.int32)
    train, val = stratified_split(y, val_fraction, seed)
    if len(val) == 0:
        warnings.warn(
            f"{source}: too few videos per class for a validation split", DatasetWarning, stacklevel=2
        )
    x = np.stack(clips)
    return VideoDataset(
        name=source.stem if source.is_file() else source.name,
        class_names=class_names,
        train=Clips(to_float(x[train]), y[train]),
        val=Clips(to_float(x[val]), y[val]),
        frames=frames,
        resolution=resolution,
        skipped=tuple(skipped),
    )


def _list_folder(root: Path, extensions: tuple[str, ...]) -> list[tuple[Path, str]]:
    """(file, class) for every video under each class sub-folder of `root`, in sorted order."""
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in extensions and not p.name.startswith(".")
        )
        if not files:
            warnings.warn(
                f"class folder {folder} holds no video files ({', '.join(extensions)}); skipped",
                DatasetWarning,
                stacklevel=3,
            )
        items += [(f, folder.name) for f in files]
    if not items:
        raise ValueError(f"{root}: no video files in class sub-folders (looked for {', '.join(extensions)})")
    return items


def _list_csv(path: Path) -> list[tuple[Path, str]]:
    """(file, class) for every ``path,label`` row of the CSV at `path`."""
    items = []
    with open(path, newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.reader(f), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            cells = [cell.strip() for cell in row]
            if line == 1 and [c.lower() for c in cells] == ["path", "label"]:
                continue
            if len(cells) != 2 or not cells[0] or not cells[1]:
                raise ValueError(f"{path}:{line}: expected 'path,label', found {','.join(row)!r}")
            file = Path(cells[0])
            items.append((file if file.is_absolute() else path.parent / file, cells[1]))
    if not items:
        raise ValueError(f"{path}: no 'path,label' rows")
    return items


def _load_clip(path, frames, resolution, stride, fps, cache: Path | None) -> np.ndarray:
    """The uint8 clip of `path`, from the cache when an entry for this file version and sampling
    exists; decoded (and stored) otherwise."""
    if cache is None:
        return decode_clip(path, frames, resolution, stride, fps)
    st = path.stat()  # FileNotFoundError for a missing file
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{frames}|{resolution}|{stride}|{fps}|{_CACHE_VERSION}"
    entry = cache / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"
    if entry.exists():
        try:
            clip = np.load(entry)
            if clip.shape == (frames, resolution, resolution, 3) and clip.dtype == np.uint8:
                return clip
        except (OSError, ValueError):
            pass  # a damaged entry is decoded again and overwritten
    clip = decode_clip(path, frames, resolution, stride, fps)
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, clip)
    os.replace(tmp, entry)  # atomic: a concurrent reader sees the whole entry or none
    return clip
