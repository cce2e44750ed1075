"""evaluation/'s rooms import one way (README "Project layout"): a newcomer can tell where a change belongs
and no room reaches back up into one that uses it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "evaluation"
# room -> the rooms it may import (besides itself and the shared top-level helpers compat and lazy)
ALLOWED = {
    "datasets": set(),
    "results": set(),
    "proxies": {"datasets", "results"},
    "deploy": {"datasets", "results", "proxies"},
    "oneshot": {"datasets", "results", "proxies", "deploy"},
    "evaluator": {"datasets", "results", "proxies", "deploy", "oneshot"},
}


def _rooms_imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "evaluation" and len(parts) > 1 and parts[1] not in {"compat", "lazy"}:
                found.add(parts[1])
    return found


def test_rooms_import_one_way():
    wrong = []
    for room, allowed in ALLOWED.items():
        files = [ROOT / f"{room}.py"] if (ROOT / f"{room}.py").exists() else sorted((ROOT / room).glob("*.py"))
        assert files, room
        for f in files:
            extra = _rooms_imported(f) - allowed - {room}
            wrong += [f"{f.relative_to(ROOT.parent)} imports evaluation.{r}" for r in sorted(extra)]
    assert not wrong, "imports against the one-way order:\n" + "\n".join(wrong)


def test_every_module_sits_in_a_room():
    loose = {p.stem for p in ROOT.glob("*.py")} - {"__init__", "compat", "lazy", "evaluator"}
    assert not loose, f"modules outside a room: {sorted(loose)}"
