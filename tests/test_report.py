"""Plots and the study report: report.md, a self-contained report.html that renders in headless
Chromium with every image loaded, and `movinas report`."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from evaluation.results.frames import load_results, load_study
from evaluation.results.pareto import pareto_front
from evaluation.results.plots import plot_architecture, plot_param_importances, plot_tradeoff
from evaluation.results.report import write_report
from nas.cli import main
from search_space import movinet

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
COST_ONLY = {"study": "costs", "space": "small", "num_classes": 3, "sampler": "random", "trials": 6,
             "constraints": ["flops <= 9M"], "objectives": [{"minimize": "flops"}, {"minimize": "params"}]}


@pytest.fixture(scope="module")
def costs(tmp_path_factory):
    """A study made by `movinas search` whose objectives are analytic costs (no training)."""
    tmp = tmp_path_factory.mktemp("costs")
    (tmp / "costs.yaml").write_text(yaml.safe_dump(COST_ONLY))
    assert main(["search", str(tmp / "costs.yaml"), "--results-dir", str(tmp / "results")]) == 0
    return tmp / "results" / "costs"


@pytest.fixture
def reference(tmp_path):
    """A copy of the committed reference run (the report writes into its folder)."""
    return Path(shutil.copytree(REFERENCE, tmp_path / "reference"))


def _texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [
        t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_report_files_link_specs_and_embed_every_image(costs):
    paths = write_report(costs)
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    for heading in ("# Study costs", "## Best values", "## Pareto front", "## Plots", "## Top architectures",
                    "## Search config"):
        assert heading in md
    df = load_results(costs)
    front = pareto_front(df, {"flops": "minimize", "params": "minimize"})
    for number in front["number"]:
        link = f"trials/{number}/spec.yaml"
        assert f"[{number}]({link})" in md and f"href='{link}'" in page
        assert (costs / link).is_file()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == len(paths["images"]) >= 4
    assert all((costs / p).is_file() for p in images)
    embedded = re.findall(r"<img src='data:image/png;base64,([^']+)'", page)
    assert [base64.b64decode(e) for e in embedded] == [p.read_bytes() for p in paths["images"]]
    assert not re.search(r"(src|href)=['\"]https?:", page)  # nothing fetched from the network
    assert "infeasible" in md  # the summary counts the rejected trials


def test_report_html_renders_in_chromium_with_every_image_loaded(reference, tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium); .ci/run installs it")
    page = write_report(reference)["html"]
    n_images = page.read_text().count("<img ")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    widths = [int(w) for w in re.findall(r'data-loaded="(\d+)"', dom.stdout)]
    assert len(widths) == n_images >= 5, dom.stderr[-2000:]
    assert all(w > 100 for w in widths)  # decoded, at their pixel widths
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1200,3000", page.as_uri()],
                   capture_output=True, timeout=120)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1200)
    ink = (pixels.min(axis=2) < 0.9).mean()
    assert 0.02 < ink < 0.6  # text, tables and plots on a white page


def test_cli_report_and_its_bad_input(costs, tmp_path, capsys):
    assert main(["report", str(costs), "--objectives", "flops:min,activation_bytes", "--top", "1"]) == 0
    md = (costs / "report.md").read_text()
    assert "| trial | flops | activation_bytes |" in md and md.count("### Trial ") == 1
    assert main(["report", str(costs), "--objectives", "flops,accuracy"]) == 2
    assert "--objectives: unknown column 'accuracy'; numeric columns: " in capsys.readouterr().err
    assert main(["report", str(costs), "--objectives", "flops:best"]) == 2
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no such results folder" in capsys.readouterr().err
    out = tmp_path / "elsewhere"
    assert main(["report", str(costs / "study.db"), "--out", str(out)]) == 0
    assert (out / "report.html").is_file() and (out / "report" / "tradeoff_activation_bytes.png").is_file()


def test_tradeoff_plot_draws_each_kind_of_trial_and_places_the_presets(reference):
    df = load_results(reference)
    fig = plot_tradeoff(df, x="flops", y="val_accuracy", path=reference / "t.png")
    texts = _texts(fig)
    assert {"Pareto-optimal", "feasible", "infeasible (not trained: on the x axis)"} <= set(texts)
    assert all(f"MoViNet-A{i} (cost only) " in texts for i in range(3))  # accuracy unknown: a line
    front = pareto_front(df, {"val_accuracy": "maximize", "flops": "minimize"})
    pareto = next(c for c in fig.axes[0].collections if c.get_label() == "Pareto-optimal")
    assert sorted(map(tuple, pareto.get_offsets())) == sorted(zip(front["flops"], front["val_accuracy"]))
    assert (reference / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # both axes costs: the presets are points
    assert "MoViNet-A1" in _texts(plot_tradeoff(df, x="flops", y="params"))


def test_importances_need_completed_trials_and_say_so(costs):
    fig = plot_param_importances(load_study(costs), "flops")
    bars = fig.axes[0].patches
    assert len(bars) >= 3 and abs(sum(b.get_width() for b in bars) - 1) < 1e-6
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(params={"w": 1.0}, distributions={
        "w": optuna.distributions.CategoricalDistribution([1.0, 2.0])}, values=[0.5, 1.0]))
    fig = plot_param_importances(study)
    assert any("at least 3 completed trials, the study has 1" in t for t in _texts(fig))


def test_report_importances_come_from_the_trials_read_and_sample_a_large_study(costs, monkeypatch):
    """The report's importances: Optuna's evaluator on the completed trials the report has read (the
    same numbers as on the study read through Optuna's storage); above IMPORTANCE_TRIALS completed
    trials, a seeded sample of that many, which the caption says."""
    from evaluation.results import report
    from evaluation.results.plots import param_importances
    from evaluation.results.storage import read_records

    opened = load_study(costs)
    records = read_records(opened)
    study, note = report.importance_study(opened, records)
    assert isinstance(study, optuna.Study) and note == ""
    assert param_importances(study, "flops") == param_importances(opened, "flops")
    complete = sum(r.state == "COMPLETE" for r in records)
    assert complete > 3
    monkeypatch.setattr(report, "IMPORTANCE_TRIALS", 3)
    sample, note = report.importance_study(opened, records)
    assert len(sample.trials) == 3 and note == f" (a sample of 3 of the {complete} completed trials)"
    assert sample.trials == report.importance_study(opened, records)[0].trials  # seeded
    assert note in write_report(costs)["markdown"].read_text()


def test_architecture_diagram_has_a_box_per_block_with_kernel_and_width():
    from matplotlib.patches import FancyBboxPatch

    spec = movinet("a0")
    fig = plot_architecture(spec, num_classes=600)
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == spec.num_layers + 2  # and the stem and the head
    texts = _texts(fig)
    assert "5×3×3\ne 184\n↓ 1×2×2" in texts and "1×5×5\ne 280" in texts
    assert any(t.startswith("stage 5: 4 blocks\n104 ch") for t in texts)
