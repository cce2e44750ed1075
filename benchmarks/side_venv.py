"""A side virtual environment with the official MoViNet code (`tf-models-official`), outside the repo.

movinas never depends on the official code; scripts that must compare against it (the fixture generator
tests/fixtures/official/generate.py, benchmarks converting the official stream model) run it in this
environment as a subprocess:

    from benchmarks.side_venv import official_python
    subprocess.run([str(official_python()), "script.py"], check=True)

The first call creates the environment (a large install, minutes); later calls return at once. When the
package registry cannot be reached, `official_python` raises `SideVenvError` whose message is one line;
`python benchmarks/side_venv.py` prints that line and exits 2.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

OFFICIAL_PACKAGE = "tf-models-official==2.20.0"
"""The official code pinned: its tensorflow~=2.20 and tf-keras pins install on Python 3.10–3.12."""

DEFAULT_ROOT = Path.home() / ".cache" / "movinas" / "official-venv"
_READY = "movinas-ready.txt"  # written last: a half-finished install is never taken as ready


class SideVenvError(RuntimeError):
    """The side environment could not be made; the message is one line saying why."""


def _python(root: Path) -> Path:
    return root / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def is_ready(root: Path = DEFAULT_ROOT) -> bool:
    """True when `root` holds a finished side environment."""
    return (root / _READY).read_text().strip() == OFFICIAL_PACKAGE if (root / _READY).exists() else False


def _install(python: Path, log: Path) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", OFFICIAL_PACKAGE]
    with log.open("w") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode == 0:
        return
    text = log.read_text(errors="replace")
    unreachable = any(s in text for s in ("NewConnectionError", "Temporary failure in name resolution",
                                          "Max retries exceeded", "No matching distribution found"))
    why = "the package registry could not be reached or has no such version" if unreachable else "pip failed"
    raise SideVenvError(f"cannot install {OFFICIAL_PACKAGE} into {python.parent.parent}: {why} "
                        f"(pip's output: {log})")


def official_python(root: Path = DEFAULT_ROOT) -> Path:
    """Path of the side environment's python with `official.projects.movinet` importable; made on demand."""
    root = Path(root).expanduser()
    python = _python(root)
    if is_ready(root):
        return python
    print(f"making the side environment {root} with {OFFICIAL_PACKAGE} (minutes, once)", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(root)
    _install(python, root / "pip-install.log")
    check = subprocess.run([str(python), "-c", "import official.projects.movinet.modeling.movinet"],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["no output"])[-1]
        raise SideVenvError(f"{OFFICIAL_PACKAGE} installed into {root} but does not import: {last}")
    (root / _READY).write_text(OFFICIAL_PACKAGE + "\n")
    return python


def main() -> int:
    try:
        print(official_python())
    except SideVenvError as err:
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
