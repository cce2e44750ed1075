"""notebooks/analyze_study.ipynb runs top to bottom on the committed reference run (so it never goes
stale) and shows the frame, the front, the plots and an export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "analyze_study.ipynb"
KERNEL = "movinas-test-python"


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A kernel spec running this very interpreter, whatever `python` means on PATH."""
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "movinas tests", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    return KERNEL


def test_notebook_runs_top_to_bottom_on_the_reference_run(kernel):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html_tables = [o for o in outputs if "text/html" in o.get("data", {}) and "<table" in o["data"]["text/html"]]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(html_tables) >= 3  # the trials, the front, the activation front
    assert len(images) >= 5  # two trade-offs, hypervolume, importances, an architecture
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "hypervolume:" in text and "chosen:" in text and "Model card" in text and "logits:" in text
