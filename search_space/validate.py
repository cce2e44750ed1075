"""Checks at the boundary, one argument order everywhere: ``check(value, path, ...)``.

Every failure is one line ``path: value, must be ...`` raised as `error` (a `ValueError` subclass
chosen by the caller: `SpecError` for specs and spaces, `UsageError` for configs and flags). A
value quoted in a message is cut to `MAX_QUOTE` characters, and its repr is computed in bounded
time, so a huge or self-referencing value (a YAML alias bomb) cannot stall or flood an error.
YAML is read through `read_text` / `load_yaml`: UTF-8 only, bounded in size, depth and expanded
node count. No TensorFlow, no numpy; imported by search_space, evaluation and nas alike.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

MAX_QUOTE = 80  # characters of a value shown in a message
MAX_TEXT_BYTES = 1_000_000  # a spec, space or config file larger than this is not one
MAX_DEPTH = 50  # nesting of YAML collections
MAX_NODES = 100_000  # scalars + collections after alias expansion

Error = type[ValueError]

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxlist, _repr.maxtuple, _repr.maxdict, _repr.maxset = 3, 8, 8, 6, 6
_repr.maxstring, _repr.maxother, _repr.maxlong = MAX_QUOTE, MAX_QUOTE, 40


def quote(value: Any) -> str:
    """`repr(value)` in bounded time and at most `MAX_QUOTE` characters."""
    try:
        text = _repr.repr(value)
    except Exception:  # a broken __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= MAX_QUOTE else text[: MAX_QUOTE - 3] + "..."


def one_line(text: str, limit: int = 300) -> str:
    """Whitespace collapsed and cut to `limit` characters (for wrapping foreign messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# scalars


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _range(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi}"
    return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def integer(value: Any, path: str, lo: int = 1, hi: int | None = None, *, optional: bool = False,
            error: Error = ValueError) -> Any:
    """`value` as given when it is an int (not a bool) in [lo, hi]; None passes when `optional`."""
    if value is None and optional:
        return None
    if _is_int(value) and value >= lo and (hi is None or value <= hi):
        return value
    raise error(f"{path}: {quote(value)}, must be an integer {_range(lo, hi)}{' or null' if optional else ''}")


def number(value: Any, path: str, lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, optional: bool = False, error: Error = ValueError) -> Any:
    """A finite int or float in the range (open or closed at each end); None passes when `optional`."""
    if value is None and optional:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        try:
            ok = math.isfinite(value)
        except OverflowError:  # an int too large for a float
            ok = False
    if ok and lo is not None:
        ok = value > lo if lo_open else value >= lo
    if ok and hi is not None:
        ok = value < hi if hi_open else value <= hi
    if ok:
        return value
    rng = "finite" if lo is None and hi is None else _range(lo, hi, lo_open, hi_open)
    raise error(f"{path}: {quote(value)}, must be a number {rng}{' or null' if optional else ''}")


def choice(value: Any, path: str, allowed: Iterable[Any], *, error: Error = ValueError) -> Any:
    allowed = tuple(allowed)
    try:
        ok = any(value == a and type(value) is type(a) for a in allowed)
    except Exception:
        ok = False
    if not ok:
        raise error(f"{path}: {quote(value)}, must be one of {', '.join(map(str, allowed))}")
    return value


def boolean(value: Any, path: str, *, error: Error = ValueError) -> bool:
    if not isinstance(value, bool):
        raise error(f"{path}: {quote(value)}, must be true or false")
    return value


def string(value: Any, path: str, max_len: int = 200, *, error: Error = ValueError) -> str:
    if not isinstance(value, str) or len(value) > max_len:
        raise error(f"{path}: {quote(value)}, must be a string of at most {max_len} characters")
    return value


def name(value: Any, path: str, *, error: Error = ValueError) -> str:
    """A name that is safe as one folder name: 1-128 characters, no '/', '\\\\' or NUL, not '.'
    or '..', not starting with '-' (a flag) or '~'; surrounding whitespace is stripped."""
    ok = isinstance(value, str)
    if ok:
        value = value.strip()
        ok = (0 < len(value) <= 128 and not any(c in value for c in "/\\\x00") and value not in (".", "..")
              and not value.startswith(("-", "~")) and value.isprintable())
    if not ok:
        raise error(f"{path}: {quote(value)}, must be a name (1-128 printable characters, no '/', '\\', "
                    "not '.' or '..')")
    return value


# ---------------------------------------------------------------------------------------------
# structures


def mapping(value: Any, path: str, allowed: Iterable[str] | None = None, required: Iterable[str] = (), *,
            error: Error = ValueError) -> dict:
    """A dict whose keys are all in `allowed` (when given) and hold every `required` one."""
    if not isinstance(value, dict):
        raise error(f"{path or 'top level'}: {quote(value)}, must be a mapping")
    where = f"{path}." if path else ""
    if allowed is not None:
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise error(f"{where}{quote(key) if not isinstance(key, str) else one_line(key, MAX_QUOTE)}: "
                            f"unknown field, allowed: {', '.join(allowed)}")
    for key in required:
        if key not in value:
            raise error(f"{where}{key}: missing")
    return value


def dataclass_fields(cls: type) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(field names, required field names) of a dataclass, for `mapping`."""
    fs = dataclasses.fields(cls)
    required = tuple(f.name for f in fs if f.default is dataclasses.MISSING
                     and f.default_factory is dataclasses.MISSING)
    return tuple(f.name for f in fs), required


def sequence(value: Any, path: str, *, min_len: int = 0, max_len: int | None = None,
             error: Error = ValueError) -> list:
    if not isinstance(value, (list, tuple)) or len(value) < min_len or (max_len is not None and len(value) > max_len):
        size = "" if not min_len and max_len is None else (
            f" of at least {min_len} entries" if max_len is None else f" of {min_len} to {max_len} entries")
        raise error(f"{path}: {quote(value)}, must be a list{size}")
    return list(value)


def triple(value: Any, path: str, lo: int = 1, hi: int | None = None, what: str = "size", *,
           error: Error = ValueError) -> tuple:
    """(t, h, w) from 'TxHxW', [t, h, w] or one integer for all three; each an integer in [lo, hi]."""
    parts: Any = value
    if _is_int(value):
        parts = (value, value, value)
    elif isinstance(value, str) and len(value) <= MAX_QUOTE:
        parts = [int(p) if p.strip().isdigit() else p for p in value.strip().lower().split("x")]
    if not (isinstance(parts, (list, tuple)) and len(parts) == 3):
        raise error(f"{path}: {quote(value)}, must be 'TxHxW' or [t, h, w] (three integers {_range(lo, hi)}, "
                    "e.g. '3x3x3')")
    for axis, x in zip(("temporal", "height", "width"), parts):
        integer(x, f"{path}: {axis} {what}", lo, hi, error=error)
    return tuple(parts)


# ---------------------------------------------------------------------------------------------
# files and YAML


def decode(data: bytes, where: str, *, error: Error = ValueError) -> str:
    """UTF-8 text (a UTF-8 BOM is dropped); refuse other encodings and binary data by name."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise error(f"{where}: UTF-16 text, must be UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{where}: not UTF-8 text (byte {exc.start}), must be a UTF-8 YAML file") from None
    if "\x00" in text:
        raise error(f"{where}: binary data (NUL bytes), must be UTF-8 YAML text")
    return text


def read_text(path: str | Path, *, what: str = "YAML file", error: Error = ValueError) -> str:
    """The UTF-8 text of a file of at most `MAX_TEXT_BYTES`."""
    p = Path(path)
    where = one_line(str(p), 200)
    if is_dir(p):
        raise error(f"{where}: a directory, must be a {what}")
    if not is_file(p):
        raise error(f"{where}: no such file")
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as exc:
        raise error(f"{where}: cannot read ({exc.strerror or exc})") from None
    if len(data) > MAX_TEXT_BYTES:
        raise error(f"{where}: larger than {MAX_TEXT_BYTES:,} bytes, too large for a {what}")
    return decode(data, where, error=error)


def is_file(text: str | Path) -> bool:
    """Does `text` name an existing file? False (not an exception) for names the OS refuses."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def is_dir(text: str | Path) -> bool:
    """Does `text` name an existing folder? False (not an exception) for names the OS refuses."""
    try:
        return Path(text).is_dir()
    except (OSError, ValueError):
        return False


def path_or_text(source: Any, what: str, *, error: Error = ValueError) -> tuple[str, str]:
    """(text, name for messages) of a `Path`, a one-line string naming a .yaml/.yml or an existing
    file, or YAML text itself (anything else, returned as is)."""
    if isinstance(source, Path):
        return read_text(source, error=error), one_line(str(source), 200)
    if not isinstance(source, str):
        raise error(f"{what}: {quote(source)}, must be a YAML file path or YAML text")
    key = source.strip()
    if "\n" in key:
        return source, what
    if key.lower().endswith((".yaml", ".yml")) or is_file(key):
        return read_text(key, error=error), one_line(key, 200)
    return source, what


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader refusing nesting deeper than `MAX_DEPTH` (PyYAML composes recursively)."""

    depth = 0

    def compose_node(self, parent, index):  # noqa: D102
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _TooDeep
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooDeep(Exception):
    pass


def load_yaml(text: str, where: str, *, error: Error = ValueError) -> Any:
    """Parse YAML text into builtins, bounded in size, nesting and expanded node count."""
    if len(text) > MAX_TEXT_BYTES:
        raise error(f"{where}: {len(text):,} characters, too large (at most {MAX_TEXT_BYTES:,})")
    try:
        data = yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader)
    except (_TooDeep, RecursionError):
        raise error(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML ({one_line(str(exc), 200)})") from None
    check_size(data, where, error=error)
    return data


def check_size(data: Any, where: str, *, error: Error = ValueError) -> None:
    """Refuse data nested deeper than `MAX_DEPTH` or holding more than `MAX_NODES` values once
    shared references (YAML aliases) are expanded: what every later walk of it would visit."""
    stack = [(data, 0)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise error(f"{where}: more than {MAX_NODES:,} values once aliases are expanded, too large")
        if depth > MAX_DEPTH:
            raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for kv in value.items() for v in kv)
        elif isinstance(value, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in value)


__all__ = [
    "MAX_DEPTH", "MAX_NODES", "MAX_QUOTE", "MAX_TEXT_BYTES", "boolean", "check_size", "choice",
    "dataclass_fields", "decode", "integer", "is_dir", "is_file", "load_yaml", "mapping", "name", "number", "one_line",
    "path_or_text", "quote", "read_text", "sequence", "string", "triple",
]
