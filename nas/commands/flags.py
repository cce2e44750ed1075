"""Checks of command-line flags shared by the commands: bounded integers, input sizes, output folders
(and `staged`, how a command writes an output folder whole or not at all).
Each raises `UsageError` naming the flag and what is allowed (the CLI prints it on one line, exit 2)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from search_space import validate as v
from search_space.spec import MAX_FRAMES, MAX_RESOLUTION

from ..errors import UsageError


def flag(value: int | None, name: str, lo: int = 1, hi: int | None = None) -> None:
    """An integer flag in [lo, hi] (None: not given)."""
    if value is not None:
        v.integer(value, name, lo, hi, error=UsageError)


def input_flags(args: argparse.Namespace) -> None:
    """--frames and --resolution, within the bounds of a spec's own input."""
    flag(args.frames, "--frames", 1, MAX_FRAMES)
    flag(args.resolution, "--resolution", 1, MAX_RESOLUTION)


def out_folder(value: str | Path, name: str = "--out") -> Path:
    """A folder to write into: it may not exist yet, but neither it nor a parent may be a file."""
    path = Path(value)
    for p in (path, *path.parents):
        if p.exists() and not v.is_dir(p):
            where = "" if p == path else f" ({v.one_line(str(p), 200)} is a file)"
            raise UsageError(f"{name}: {v.one_line(str(path), 200)}: must be a folder{where}")
    return path


@contextlib.contextmanager
def staged(out: Path):
    """A fresh folder beside `out` to write into; renamed to `out` (absent or empty: checked before)
    when the block ends, removed if it raises, so `out` never holds half an export."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    try:
        stage.chmod(0o777 & ~umask)  # mkdtemp's folder is private; an export is an ordinary folder
        yield stage
        if out.exists():
            out.rmdir()
        stage.rename(out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
