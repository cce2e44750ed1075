"""Lazy public faces: a package names what it offers, and a name's module is imported on first use,
so importing a package stays light (TensorFlow, pandas and matplotlib load only when needed)."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def exports(package: str, names: dict[str, str]) -> tuple[Callable, Callable]:
    """`(__getattr__, __dir__)` for `package`, resolving each public name from its module (relative)."""

    def getattr_(name: str):
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{module}", package), name)

    def dir_() -> list[str]:
        return sorted(names)

    return getattr_, dir_
