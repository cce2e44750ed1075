"""`load_results`: one row per trial of a real study (made by `movinas search`), from a results
folder, a SQLite file or URL, PostgreSQL, while a search is still writing, and the committed
reference run."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from evaluation.results.frames import COSTS, ResultsError, load_results, load_study
from evaluation.results.report import write_report
from nas.cli import main
from search_space import ArchSpec

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "reference"
DATA = {"kind": "synthetic", "num_classes": 2, "clips_per_class": 4, "frames": 8, "resolution": 32}
BASE = {"study": "mixed", "space": "small", "dataset": DATA, "sampler": "random", "trials": 1,
        "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}], "constraints": ["flops <= 9M"]}
# a learning rate of 1e30 makes the validation loss NaN: a real failed trial
DIVERGES = {"epochs": 2, "batch_size": 4, "learning_rate": 1.0e30, "grad_clip": None, "warmup_fraction": 0.0}
TRAINS = {"epochs": 1, "batch_size": 8}
COST_ONLY = {"space": "small", "num_classes": 3, "sampler": "random", "constraints": ["flops <= 9M"],
             "objectives": [{"minimize": "flops"}, {"minimize": "params"}]}


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A trained study with failed, infeasible, complete (and maybe early-stopped) trials: a first run
    whose training diverges (stopped by --timeout after one trial), resumed with a sane proxy."""
    tmp = tmp_path_factory.mktemp("mixed")
    results = tmp / "results"
    bad = write(tmp / "bad.yaml", {**BASE, "proxy": DIVERGES})
    good = write(tmp / "good.yaml", {**BASE, "proxy": TRAINS})
    assert main(["search", str(bad), "--timeout", "1", "--results-dir", str(results)]) == 0
    assert main(["search", str(good), "--results-dir", str(results)]) == 0
    return results / "mixed"


def test_one_row_per_trial_with_state_costs_metrics_and_violations(mixed):
    df = load_results(mixed)
    study = load_study(mixed).study
    assert df["number"].tolist() == [t.number for t in study.trials]
    assert set(df["state"]) >= {"COMPLETE", "PRUNED", "FAIL"}
    for col in ("duration", *COSTS, "val_accuracy", "val_loss", "violation_flops_le", "feasible", "reason"):
        assert col in df, col
    complete = df[df["state"] == "COMPLETE"]
    assert len(complete) == 1 and complete["val_accuracy"].between(0, 1).all()
    assert (complete["duration"] > 0).all()
    for t in study.trials:
        row = df[df["number"] == t.number].iloc[0]
        assert row["flops"] == t.user_attrs["cost"]["flops"]
        if t.values is not None:
            assert [row["val_accuracy"], row["flops"]] == pytest.approx(t.values)


def test_failed_and_infeasible_trials_say_why(mixed):
    df = load_results(mixed)
    failed = df[df["state"] == "FAIL"]
    assert len(failed) == 1 and failed["outcome"].item() == "failed"
    assert "NaN" in failed["reason"].item()
    infeasible = df[df["outcome"] == "infeasible"]
    assert len(infeasible) and (infeasible["state"] == "PRUNED").all()
    assert (infeasible["violation_flops_le"] > 0).all() and not infeasible["feasible"].any()
    assert infeasible["reason"].str.startswith("infeasible: flops").all()
    assert infeasible["val_accuracy"].isna().all()  # never trained
    assert df.loc[df["outcome"] != "infeasible", "feasible"].all()
    assert (df.loc[df["feasible"] == True, "violation_flops_le"] <= 0).all()  # noqa: E712


def test_spec_axes_are_flat_columns_and_the_spec_round_trips(mixed):
    df = load_results(mixed)
    for col in ("frames", "resolution", "width_mult", "layers", "s1_depth", "s2_depth", "s2_filters",
                "s2_b1_kernel", "s2_b1_expand", "conv_type", "se_type", "causal"):
        assert col in df, col
    for _, row in df[df["state"] == "COMPLETE"].iterrows():
        spec = row["spec"]
        assert spec == ArchSpec.from_yaml(mixed / "trials" / str(row["number"]) / "spec.yaml")
        assert row["layers"] == spec.num_layers == sum(row[f"s{i}_depth"] for i in (1, 2, 3))
        assert row["resolution"] == spec.resolution and row["s2_filters"] == spec.stages[1].filters
        # slots beyond a stage's depth were drawn by Optuna but are not part of the architecture
        assert pd.isna(row["s2_b2_kernel"]) == (row["s2_depth"] == 1)


def test_study_attrs_travel_with_the_frame(mixed):
    df = load_results(mixed)
    assert df.attrs["study"] == "mixed"
    assert df.attrs["objectives"] == [{"name": "val_accuracy", "direction": "maximize"},
                                      {"name": "flops", "direction": "minimize"}]
    assert df.attrs["violation_columns"] == {"violation_flops_le": "flops <= 9M"}
    assert df.attrs["num_classes"] == 2 and df.attrs["config"]["dataset"] == DATA
    assert Path(df.attrs["folder"]) == mixed.resolve()


def test_folder_file_and_urls_give_the_same_frame(mixed):
    db = mixed / "study.db"
    frames = [load_results(s) for s in (mixed, db, str(db), f"sqlite:///{db.resolve()}")]
    for df in frames[1:]:
        assert df.drop(columns=["spec", "curve"]).equals(frames[0].drop(columns=["spec", "curve"]))


def test_postgresql_storage(mixed, postgres_url):
    from nas.storage import normalize_url

    target = optuna.storages.RDBStorage(normalize_url(postgres_url))
    source = f"sqlite:///{(mixed / 'study.db').resolve()}"
    optuna.copy_study(from_study_name="mixed", from_storage=source, to_storage=target, to_study_name="mixed")
    df, local = load_results(postgres_url, study="mixed"), load_results(mixed)
    assert df["number"].tolist() == local["number"].tolist()
    assert df["val_accuracy"].equals(local["val_accuracy"]) and df["reason"].equals(local["reason"])
    assert df.attrs["folder"] is None and "postgres" in df.attrs["storage"]


def test_several_studies_need_a_name(mixed, tmp_path):
    url = f"sqlite:///{tmp_path / 'two.db'}"
    for name in ("alpha", "beta"):
        optuna.copy_study(from_study_name="mixed", from_storage=f"sqlite:///{(mixed / 'study.db').resolve()}",
                          to_storage=url, to_study_name=name)
    with pytest.raises(ResultsError, match="holds 2 studies \\(alpha, beta\\)"):
        load_results(tmp_path / "two.db")
    assert load_results(url, study="beta").attrs["study"] == "beta"
    with pytest.raises(ResultsError, match="no study 'gamma'; studies: alpha, beta"):
        load_results(url, study="gamma")


def test_what_is_not_a_study_is_a_clear_error_and_stays_untouched(mixed, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE t (x)").connection.close()
    before = (tmp_path / "empty.db").read_bytes()
    cases = {tmp_path / "missing": "no such results folder",
             tmp_path: "not a study folder \\(no study.db\\)",
             tmp_path / "notes.txt": "not a SQLite database",
             tmp_path / "empty.db": "without Optuna's tables",
             mixed.parent: "studies inside: mixed"}
    for source, message in cases.items():
        with pytest.raises(ResultsError, match=message):
            load_results(source)
    assert (tmp_path / "empty.db").read_bytes() == before


def test_cli_maps_a_bad_source_to_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a study folder" in err


def test_reads_a_study_while_a_search_writes_it(tmp_path):
    """A `movinas search` in another process writes trials while we keep reading: every read
    succeeds, sees a consistent prefix of the trials, and the search is not disturbed."""
    config = write(tmp_path / "live.yaml", {**COST_ONLY, "study": "live", "trials": 20})
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "nas", "search", str(config), "--results-dir",
                             str(tmp_path / "results")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    folder = tmp_path / "results" / "live"
    counts, states = [], set()
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if (folder / "study.db").exists():
                try:
                    df = load_results(folder)
                except ResultsError as exc:  # only before Optuna has created its tables
                    assert "holds no study" in str(exc) or "without Optuna's tables" in str(exc), exc
                    continue
                counts.append(len(df))
                states |= set(df["state"])
                assert df["number"].tolist() == list(range(len(df)))
                if len(df) >= 5 and not (tmp_path / "report" / "report.html").exists():
                    write_report(folder, tmp_path / "report")  # a report of the study so far
            time.sleep(0.05)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    final = load_results(folder)
    assert (final["state"] == "COMPLETE").sum() == 20
    assert counts == sorted(counts) and len(set(counts)) > 2  # we saw the study grow
    assert counts[0] < len(final)
    assert states <= {"COMPLETE", "PRUNED", "RUNNING"}
    assert "## Pareto front" in (tmp_path / "report" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------
# the committed reference run


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_reference_run_loads_and_reading_it_writes_nothing():
    assert (REFERENCE / "study.db").is_file(), "the committed reference run is missing"
    before = _digest(REFERENCE)
    df = load_results(REFERENCE)
    assert _digest(REFERENCE) == before  # no journal, lock or shared-memory files either
    assert df.attrs["study"] == "reference"
    complete = df[df["state"] == "COMPLETE"]
    assert len(complete) >= 5 and complete["spec"].notna().all()
    for o in df.attrs["objectives"]:
        assert complete[o["name"]].notna().all()
