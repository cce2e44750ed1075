"""Datasets from the split files real video datasets ship with, over a folder of video files:

- `split_list`: UCF101-style lists, one ``path label`` or ``path`` per line (``trainlist01.txt``,
  ``testlist01.txt``), with an optional class-index file (``classInd.txt``: ``1 ApplyEyeMakeup``);
- `hmdb51`: HMDB51's ``<class>_test_split<k>.txt`` files, ``video flag`` per line (1 train, 2 test, 0 unused);
- `kinetics_csv`: Kinetics' ``label,youtube_id,time_start,time_end,split`` CSV files, each row's clip found
  through a path template.

Videos are decoded as `video_folder` decodes them (`folder.Decoding`); a listed file that is missing or
unreadable is skipped with one `DatasetWarning` and counted in `VideoDataset.skipped`, and only a split with
no readable video at all is an error. Malformed lines raise ValueError naming the file and line.
The parsers (`parse_split_list`, `parse_classes`, `parse_hmdb_split`, `parse_kinetics_csv`) read text, so
they are checked without any video.
"""

from __future__ import annotations

import csv
import io
import string
import warnings
from pathlib import Path

from .clips import DatasetWarning, VideoDataset
from .folder import DECODING_FIELDS, Decoding, Item, check_split, decode_all, labelled_dataset

LIST_OPTIONS = (*DECODING_FIELDS, "val_fraction", "seed")
"""Keyword options every list loader takes: the decoding fields, and the split of the training list when
no validation list is given (`val_fraction`, `seed`, as `video_folder`'s)."""
KINETICS_TEMPLATE = "{split}/{label}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
KINETICS_COLUMNS = ("label", "youtube_id", "time_start", "time_end", "split")
TRAIN_SPLITS, VAL_SPLITS = ("train", "training"), ("val", "validate", "validation")


def split_list(train: str | Path, val: str | Path | None = None, root: str | Path | None = None,
               classes: str | Path | None = None, **options) -> VideoDataset:
    """The videos a UCF101-style `train` list names (and a `val` list, else a stratified split of `train`).

    Lines: ``path label`` or ``path``; paths relative to `root` (default: the list's folder). A label is a
    class index of the `classes` file or a class name; a line without one takes the path's first folder
    as its class (UCF101's test lists). Without `classes`, labels are class names, sorted. `options`:
    `LIST_OPTIONS` (frames, resolution, stride, fps, cache_dir, progress, val_fraction, seed)."""
    decoding, split_by = _options(options, "split_list")
    train = _existing(train, "list")
    root = Path(root) if root is not None else train.parent
    names = parse_classes(_read(_existing(classes, "class-index file")), str(classes)) if classes else None
    train_items = parse_split_list(_read(train), str(train), root, names)
    val_items = parse_split_list(_read(_existing(val, "list")), str(val), root, names) if val else None
    order = list(dict.fromkeys(names.values())) if names else None
    return _dataset(train.stem, (train_items, val_items), decoding, split_by, order)


def hmdb51(splits: str | Path, root: str | Path, split: int = 1, **options) -> VideoDataset:
    """HMDB51's split `split` (1, 2 or 3): the ``<class>_test_split<split>.txt`` files in the folder
    `splits`, videos at ``root/<class>/<video>``; flag 1 trains, 2 validates (HMDB's test), 0 is unused.
    `options`: as `split_list`'s (`val_fraction` and `seed` are unused: HMDB names both sides)."""
    decoding, split_by = _options(options, "hmdb51")
    if split not in (1, 2, 3) or isinstance(split, bool):
        raise ValueError(f"split: {split!r}, must be 1, 2 or 3")
    folder, root = _existing(splits, "folder of split files"), _existing(root, "video folder")
    suffix = f"_test_split{split}.txt"
    files = sorted(p for p in folder.iterdir() if p.name.endswith(suffix)) if folder.is_dir() else []
    if not files:
        raise ValueError(f"{folder}: no *{suffix} files (HMDB51's split files, one per class)")
    sides: tuple[list[Item], list[Item]] = ([], [])
    for path in files:
        label = path.name[: -len(suffix)]
        for video, flag in parse_hmdb_split(_read(path), str(path)):
            if flag:
                sides[flag - 1].append((root / label / video, label))
    return _dataset(f"hmdb51-split{split}", sides, decoding, split_by, None)


def kinetics_csv(source: str | Path, root: str | Path | None = None, template: str = KINETICS_TEMPLATE,
                 **options) -> VideoDataset:
    """The clips a Kinetics CSV (``label,youtube_id,time_start,time_end,split`` with a header; other columns
    ignored) lists, at ``root / template.format(...)`` (default root: the CSV's folder; the template's
    fields are the five columns, times as integers when whole). Rows of split train train, of
    val / validate validate; test rows (no label) are left out. Without validation rows, the training rows
    are split per class by `val_fraction` and `seed`. `options`: as `split_list`'s."""
    decoding, split_by = _options(options, "kinetics_csv")
    source = _existing(source, "CSV file")
    root = Path(root) if root is not None else source.parent
    check_template(template)
    sides: tuple[list[Item], list[Item]] = ([], [])
    for fields in parse_kinetics_csv(_read(source), str(source)):
        side = 0 if fields["split"] in TRAIN_SPLITS else 1 if fields["split"] in VAL_SPLITS else None
        if side is not None:
            sides[side].append((root / _clip_path(template, fields, source), fields["label"]))
    if not sides[0]:
        raise ValueError(f"{source}: no rows of split train")
    return _dataset(source.stem, (sides[0], sides[1] or None), decoding, split_by, None)


# ---------------------------------------------------------------------------------------------
# parsers: text in, items out, ValueError naming file:line


def parse_classes(text: str, where: str) -> dict[str, str]:
    """{index or name as a list may write it: class name} of a class-index file: ``INDEX NAME`` lines
    (UCF101's classInd.txt) or ``NAME`` lines (numbered from 1). Names also match in lower case (UCF101's
    lists write ``HandstandPushups`` for its class ``HandStandPushups``). Names come first, in file order."""
    index: dict[str, str] = {}
    for number, line in _lines(text):
        parts = line.split()
        if len(parts) == 2 and _is_int(parts[0]):
            key, name = str(int(parts[0])), parts[1]
        elif len(parts) == 1:
            key, name = str(len(index) + 1), parts[0]
        else:
            raise ValueError(f"{where}:{number}: expected 'INDEX NAME' or 'NAME', found {line!r}")
        if key in index or name in index.values():
            raise ValueError(f"{where}:{number}: class {name!r} or index {key} given twice")
        index[key] = name
    if not index:
        raise ValueError(f"{where}: no classes")
    lower = {name.lower(): name for name in index.values()}  # UCF101's own lists spell HandstandPushups both ways
    return {**lower, **{name: name for name in index.values()}, **index}


def parse_split_list(text: str, where: str, root: Path, classes: dict[str, str] | None) -> list[Item]:
    """(file under `root`, class name) for each ``path label`` or ``path`` line of a split list."""
    items = []
    for number, line in _lines(text):
        parts = line.split()
        if len(parts) > 2:
            raise ValueError(f"{where}:{number}: expected 'path label' or 'path', found {line!r}")
        path = Path(parts[0])
        label = parts[1] if len(parts) == 2 else (path.parts[0] if len(path.parts) > 1 else None)
        if label is None:
            raise ValueError(f"{where}:{number}: {parts[0]!r} has no label and no class folder")
        if classes is not None:
            key = str(int(label)) if _is_int(label) else label
            key = key if key in classes else key.lower()
            if key not in classes:
                raise ValueError(f"{where}:{number}: class {label!r} is not in the class-index file")
            label = classes[key]
        items.append((path if path.is_absolute() else root / path, label))
    if not items:
        raise ValueError(f"{where}: no videos listed")
    return items


def parse_hmdb_split(text: str, where: str) -> list[tuple[str, int]]:
    """(video file name, flag 0/1/2) for each line of an HMDB51 split file."""
    rows = []
    for number, line in _lines(text):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise ValueError(f"{where}:{number}: expected 'VIDEO FLAG' with FLAG 0, 1 or 2, found {line!r}")
        rows.append((parts[0], int(parts[1])))
    if not rows:
        raise ValueError(f"{where}: no videos listed")
    return rows


def parse_kinetics_csv(text: str, where: str) -> list[dict]:
    """The rows of a Kinetics CSV as {column: value} for `KINETICS_COLUMNS`, times as numbers (integers
    when whole) and the split lower-cased; test rows (no label) are left out."""
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"{where}: not a readable CSV file ({exc})") from None
    header = [c.strip().lower() for c in (table[0] if table else [])]
    missing = [c for c in KINETICS_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{where}:1: header lacks {', '.join(missing)} (needs {', '.join(KINETICS_COLUMNS)})")
    rows = []
    for number, row in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{where}:{number}: {len(row)} cells, the header has {len(header)}")
        cells = {c: row[header.index(c)].strip() for c in KINETICS_COLUMNS}
        cells["split"] = cells["split"].lower()
        if cells["split"] != "test":
            rows.append(_kinetics_row(cells, f"{where}:{number}"))
    return rows


def check_template(template: str) -> None:
    """ValueError unless `template` formats with the Kinetics columns alone."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
        template.format(label="a", youtube_id="b", time_start=1, time_end=2, split="train")
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"template: {template!r} is not a path template of the fields "
                         f"{', '.join(KINETICS_COLUMNS)} ({type(exc).__name__}: {exc})") from None
    if not names:
        raise ValueError(f"template: {template!r} names no field, so every row would be the same file")


# ---------------------------------------------------------------------------------------------
# helpers


def _kinetics_row(cells: dict, where: str) -> dict:
    if not cells["label"] or not cells["youtube_id"]:
        raise ValueError(f"{where}: empty label or youtube_id")
    if cells["split"] not in (*TRAIN_SPLITS, *VAL_SPLITS):
        raise ValueError(f"{where}: split {cells['split']!r}, allowed: train, val, validate, test")
    times = []
    for key in ("time_start", "time_end"):
        try:
            t = float(cells[key])
        except ValueError:
            raise ValueError(f"{where}: {key} {cells[key]!r}, must be a number of seconds") from None
        if not 0 <= t < 1e7:
            raise ValueError(f"{where}: {key} {cells[key]!r}, must be in [0, 1e7) seconds")
        times.append(int(t) if t == int(t) else t)
    if times[1] <= times[0]:
        raise ValueError(f"{where}: time_end {cells['time_end']} is not after time_start {cells['time_start']}")
    return {**cells, "time_start": times[0], "time_end": times[1]}


def _clip_path(template: str, fields: dict, where: Path) -> str:
    try:
        return template.format(**fields)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(f"{where}: template {template!r} does not fit the row of {fields['youtube_id']} "
                         f"({type(exc).__name__}: {exc})") from None


def _options(options: dict, name: str) -> tuple[Decoding, tuple[float, int]]:
    unknown = sorted(set(options) - set(LIST_OPTIONS))
    if unknown:
        raise TypeError(f"{name}() got an unexpected keyword argument {unknown[0]!r}")
    split_by = check_split(options.get("val_fraction", 0.2), options.get("seed", 0))
    return Decoding(**{k: v for k, v in options.items() if k in DECODING_FIELDS}), split_by


def _dataset(name: str, sides: tuple, decoding: Decoding, split_by, class_names) -> VideoDataset:
    train_items, val_items = sides
    if val_items is not None and not val_items:
        raise ValueError(f"{name}: the validation side lists no video")
    train = decode_all(train_items, decoding, f"{name} train", f"{name} (training videos)")
    val = decode_all(val_items, decoding, f"{name} val", f"{name} (validation videos)") if val_items else None
    skipped = train[2] + (val[2] if val else [])
    dataset = labelled_dataset(name, train[:2], decoding, split_by=split_by, val=val[:2] if val else None,
                               class_names=tuple(class_names) if class_names else None, skipped=skipped)
    if len(dataset.val.y) == 0:
        warnings.warn(f"{name}: too few videos per class for a validation split", DatasetWarning, stacklevel=3)
    return dataset


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such {what}")
    return path


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: a folder, expected a text file") from None


def _lines(text: str):
    """(line number, stripped line) of the non-blank lines that are not # comments."""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def _is_int(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18
