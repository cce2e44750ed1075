"""A dataset of real videos: a folder with one sub-folder per class (the UCF101 / Kinetics layout)
or a CSV file of ``path,label`` rows, decoded with OpenCV into fixed-size clips.

Files that cannot be decoded are skipped with one `DatasetWarning` each (through `warnings.warn`),
naming the file, and listed in `VideoDataset.skipped`. Decoded clips can be cached on disk as
uint8 ``.npy`` files so that repeated trials do not decode again.

`Decoding` (how a file becomes a clip) and `decode_all` / `labelled_dataset` are shared with the split-list
and Kinetics-CSV loaders of `evaluation.datasets.lists`.
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .clips import Clips, DatasetWarning, VideoDataset, check_float, check_int, stratified_split
from .video_io import VIDEO_EXTENSIONS, check_sampling, decode_clip, to_float

_CACHE_VERSION = 1  # bump when decoding changes, so that old cache entries are not reused

Item = tuple[Path, str]  # (video file, class name)


@dataclass(frozen=True)
class Decoding:
    """How each video file becomes a clip: `frames` frames at `resolution`² sampled every `stride`-th
    frame or at `fps` (see `video_io`), cached under `cache_dir` (None: no cache), with a tqdm bar of the
    files when `progress` (None: when stderr is a terminal). Checked on construction."""

    frames: int = 8
    resolution: int = 64
    stride: int | None = None
    fps: float | None = None
    cache_dir: str | Path | None = None
    progress: bool | None = None

    def __post_init__(self) -> None:
        check_sampling(self.frames, self.resolution, self.stride, self.fps)


DECODING_FIELDS = tuple(f.name for f in fields(Decoding))
FOLDER_OPTIONS = ("cache_dir", "extensions", "progress")  # video_folder's keyword-only options


def video_folder(
    source: str | Path,
    frames: int = 8,
    resolution: int = 64,
    stride: int | None = None,
    fps: float | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    **options,
) -> VideoDataset:
    """Load the videos under `source` as clips of `frames` frames at `resolution`², sampled every
    `stride`-th frame or at `fps` frames per second (see `video_io`), split per class into train
    and validation by `seed`.

    `source` is a folder whose sub-folders name the classes (sorted; files with `extensions`,
    searched recursively; an empty sub-folder is skipped with a warning), or a CSV file of
    ``path,label`` rows with an optional ``path,label`` header (relative paths are relative to the
    CSV's folder). A class whose files are all unreadable is dropped with a warning. Raises
    FileNotFoundError for a missing `source`, ValueError if no video can be decoded.
    `options`: `cache_dir` (decoded clips cached there), `extensions` (default `VIDEO_EXTENSIONS`),
    `progress` (a tqdm bar of the files decoded on stderr; None: only when stderr is a terminal).
    """
    unknown = sorted(set(options) - set(FOLDER_OPTIONS))
    if unknown:
        raise TypeError(f"video_folder() got an unexpected keyword argument {unknown[0]!r}")
    extensions = options.get("extensions", VIDEO_EXTENSIONS)
    decoding = Decoding(frames, resolution, stride, fps, options.get("cache_dir"), options.get("progress"))
    val_fraction, seed = check_split(val_fraction, seed)
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
    name = source.stem if source.is_file() else source.name
    clips, labels, skipped = decode_all(items, decoding, source.name, str(source))
    dataset = labelled_dataset(name, (clips, labels), decoding, split_by=(val_fraction, seed), skipped=skipped)
    if len(dataset.val.y) == 0:
        warnings.warn(f"{source}: too few videos per class for a validation split", DatasetWarning, stacklevel=2)
    return dataset


def check_split(val_fraction, seed) -> tuple[float, int]:
    """`val_fraction` in (0, 1) and `seed` >= 0, checked (ValueError naming the argument)."""
    return (check_float(val_fraction, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True),
            check_int(seed, "seed", 0))


def decode_all(items: list[Item], decoding: Decoding, desc: str, where: str):
    """(clips, labels, skipped files) of `items`, decoded up to four at once (OpenCV releases the GIL).
    Each unreadable file gets one DatasetWarning naming it; classes left without a readable video get
    one each. ValueError naming `where` if no file at all can be decoded."""
    from tqdm import tqdm

    cache = Path(decoding.cache_dir) if decoding.cache_dir is not None else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)

    def load(item: Item):
        try:
            return _load_clip(item[0], decoding, cache), None
        except (OSError, ValueError) as exc:
            return None, str(exc)
        except Exception as exc:  # cv2.error and other decoder failures: the file is unusable
            return None, f"{item[0]}: {type(exc).__name__}: {exc}"

    disable = None if decoding.progress is None else not decoding.progress
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = list(tqdm(pool.map(load, items), total=len(items), desc=f"decoding {desc}", unit="video",
                            file=sys.stderr, disable=disable))
    clips, labels, skipped, first_error = [], [], [], None
    for (path, label), (clip, error) in zip(items, results):
        if clip is None:
            warnings.warn(f"skipped unreadable video: {error}", DatasetWarning, stacklevel=3)
            skipped.append(str(path))
            first_error = first_error or error
        else:
            clips.append(clip)
            labels.append(label)
    if not clips:
        raise ValueError(f"{where}: no readable videos ({len(items)} found, {len(skipped)} unreadable; first: "
                         f"{first_error})")
    for name in sorted({label for _, label in items} - set(labels)):
        warnings.warn(f"class {name!r} in {where} has no readable video; dropped", DatasetWarning, stacklevel=3)
    return clips, labels, skipped


def labelled_dataset(name: str, train: tuple, decoding: Decoding, *, split_by: tuple[float, int] | None = None,
                     val: tuple | None = None, class_names: tuple[str, ...] | None = None,
                     skipped: list[str] = ()) -> VideoDataset:
    """The `VideoDataset` of decoded (clips, labels) pairs: `train` split per class by `split_by`
    (val_fraction, seed), or `train` and `val` as given. Class names: `class_names` (those with a clip
    kept, in their order) or the sorted labels. The caller warns when the validation split is empty."""
    labels = list(train[1]) + (list(val[1]) if val else [])
    kept = set(labels)
    names = tuple(c for c in class_names if c in kept) if class_names is not None else tuple(sorted(kept))
    index = {c: i for i, c in enumerate(names)}
    x = np.stack(list(train[0]))
    y = np.array([index[label] for label in train[1]], np.int32)
    if val is None:
        tr, va = stratified_split(y, *split_by)
        train_clips, val_clips = Clips(to_float(x[tr]), y[tr]), Clips(to_float(x[va]), y[va])
    else:
        train_clips = Clips(to_float(x), y)
        val_clips = Clips(to_float(np.stack(list(val[0]))), np.array([index[label] for label in val[1]], np.int32))
    return VideoDataset(name=name, class_names=names, train=train_clips, val=val_clips, frames=decoding.frames,
                        resolution=decoding.resolution, skipped=tuple(skipped))


def _list_folder(root: Path, extensions: tuple[str, ...]) -> list[Item]:
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


def _list_csv(path: Path) -> list[Item]:
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


def _load_clip(path: Path, decoding: Decoding, cache: Path | None) -> np.ndarray:
    """The uint8 clip of `path`, from the cache when an entry for this file version and sampling
    exists; decoded (and stored) otherwise."""
    d = decoding
    if cache is None:
        return decode_clip(path, d.frames, d.resolution, d.stride, d.fps)
    st = path.stat()  # FileNotFoundError for a missing file
    key = (f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{d.frames}|{d.resolution}|{d.stride}|{d.fps}|"
           f"{_CACHE_VERSION}")
    entry = cache / f"{hashlib.sha1(key.encode()).hexdigest()}.npy"
    if entry.exists():
        try:
            clip = np.load(entry)
            if clip.shape == (d.frames, d.resolution, d.resolution, 3) and clip.dtype == np.uint8:
                return clip
        except (OSError, ValueError):
            pass  # a damaged entry is decoded again and overwritten
    clip = decode_clip(path, d.frames, d.resolution, d.stride, d.fps)
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, clip)
    os.replace(tmp, entry)  # atomic: a concurrent reader sees the whole entry or none
    return clip
