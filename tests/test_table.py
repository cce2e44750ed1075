"""The benchmark table: the committed table's schema, and the `table` proxy kind that looks
accuracy up in a table instead of training (rejecting what the table does not hold, and bad
tables with one line)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from evaluation import load_results
from evaluation.proxies.table import (
    PROTOCOL,
    arch_means,
    check_table_file,
    curve_columns,
    load_table,
    required_columns,
    space_axes,
)
from nas.bench import bench_archs, made_up_table
from nas.cli import main
from nas.trial import spec_id
from search_space import SearchSpace, estimate_cost

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "bench" / "table.csv"
SPACE = SearchSpace.from_yaml("bench")


@pytest.fixture(scope="module")
def archs():
    return bench_archs()


def _config(tmp_path: Path, table: str, trials: int = 12) -> Path:
    config = {"study": "tab", "space": "bench", "trials": trials, "seed": 3, "sampler": "tpe",
              "dataset": {"kind": "graded", "clips_per_class": 2, "frames": "spec", "resolution": "spec"},
              "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
              "num_classes": 10, "proxy": {"kind": "table", "path": table},
              "early_stopping": "off"}  # the table's curves are replayed: a rule would stop some trials
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_the_bench_space_is_tabulated_in_full_smallest_and_largest_first(archs):
    assert len(archs) == SPACE.size() == 96
    macs = [estimate_cost(SPACE.decode(p)).macs for p in archs]
    assert macs[0] == min(macs) and macs[1] == max(macs)
    assert len({spec_id(SPACE.decode(p)) for p in archs}) == 96


def test_a_table_search_reports_the_seed_averaged_accuracy_of_the_table(tmp_path, archs):
    table = made_up_table(archs)
    table.to_csv(tmp_path / "table.csv", index=False)
    assert main(["search", str(_config(tmp_path, "table.csv")), "--results-dir", str(tmp_path / "r")]) == 0
    df = load_results(tmp_path / "r" / "tab")
    done = df[df["state"] == "COMPLETE"]
    assert len(done) == 12
    means = arch_means(table).set_index("spec_id")["val_accuracy"]
    for _, row in done.iterrows():
        spec = SPACE.decode({k: row[k] for k in SPACE.param_choices()})
        assert row["val_accuracy"] == pytest.approx(means[spec_id(spec)])


def test_an_architecture_missing_from_the_table_is_rejected_with_the_reason(tmp_path, archs):
    made_up_table(archs[::4]).to_csv(tmp_path / "table.csv", index=False)  # a quarter of the space
    assert main(["search", str(_config(tmp_path, "table.csv", trials=8)), "--results-dir", str(tmp_path / "r")]) == 0
    df = load_results(tmp_path / "r" / "tab")
    assert (df["state"] == "COMPLETE").sum() == 8  # rejected trials do not count
    rejected = df[df["reason"].fillna("").str.contains("is not in the table")]
    assert len(rejected) >= 1 and (rejected["state"] == "PRUNED").all()


@pytest.mark.parametrize("problem, message", [
    ("missing", "no such table file"),
    ("corrupt", "not a benchmark table"),
    ("binary", "not a readable CSV table"),
    ("other space", "a table of space 'small', expected space 'bench'"),
    ("foreign rows", "a row outside space 'bench'"),
])
def test_a_bad_table_ends_the_search_with_one_line_and_status_2(tmp_path, capsys, archs, problem, message):
    path = tmp_path / "table.csv"
    table = made_up_table(archs[:3])
    if problem == "corrupt":
        path.write_text("just,some\n1,2\n")
    elif problem == "binary":
        path.write_bytes(b"\xff\xfe\x00\x81" * 100)
    elif problem == "other space":
        table.assign(space="small").to_csv(path, index=False)
    elif problem == "foreign rows":
        table.assign(resolution=48).to_csv(path, index=False)
    assert main(["search", str(_config(tmp_path, "table.csv")), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "proxy.path" in err and message in err, err
    assert not (tmp_path / "r" / "tab").exists()  # nothing started


def test_unknown_table_proxy_fields_are_named(tmp_path, capsys):
    config = yaml.safe_load(_config(tmp_path, "t.csv").read_text())
    config["proxy"]["epochs"] = 3
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(config))
    assert main(["search", str(tmp_path / "search.yaml")]) == 2
    assert "proxy.epochs: unknown field for kind table" in capsys.readouterr().err


# -- the committed table -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def committed():
    return load_table(COMMITTED)


def test_the_committed_table_has_the_schema(committed):
    assert list(committed.columns) == required_columns(space_axes(SPACE), PROTOCOL["proxy"]["epochs"])
    assert len(committed) >= 2 and committed["seed"].isin(PROTOCOL["seeds"]).all()
    assert committed["val_accuracy"].between(0, 1).all() and (committed["val_loss"] > 0).all()
    assert (committed["seconds"] > 0).all() and committed["machine"].str.len().gt(0).all()
    assert COMMITTED.stat().st_size < 5_000_000
    check_table_file(COMMITTED, "bench")


def test_committed_rows_match_their_architecture_and_curve(committed):
    for _, row in committed.head(5).iterrows():
        spec = SPACE.decode({k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in SPACE.param_choices()})
        assert spec_id(spec) == row["spec_id"]
        cost = estimate_cost(spec, num_classes=PROTOCOL["num_classes"])
        assert (row["params"], row["macs"]) == (cost.params, cost.macs)
        last = PROTOCOL["proxy"]["epochs"]
        assert row[f"val_accuracy_e{last}"] == pytest.approx(row["val_accuracy"])
        assert np.isfinite([row[c] for c in curve_columns(last)]).all()


def test_the_bootstrap_interval_brackets_tau_and_narrows_with_more_architectures():
    from evaluation.proxies.fidelity import bootstrap_ci, kendall_tau

    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200):
        a = rng.normal(size=n)
        tau, low, high = bootstrap_ci(kendall_tau, a, a + rng.normal(size=n), n_boot=300)
        assert low <= tau <= high
        widths.append(high - low)
    assert widths[1] < widths[0] / 2
    assert bootstrap_ci(kendall_tau, [1, 2, 3, 4], [2, 3, 4, 5], n_boot=50) == (1.0, 1.0, 1.0)


def test_generation_continues_where_it_stopped(tmp_path, monkeypatch, capsys, archs):
    """The generating command on a tiny protocol (one step per run): each call with a time limit
    trains the next (architecture, seed) pair in the interleaved order, never one twice."""
    import evaluation.proxies.table as table_module

    monkeypatch.setitem(table_module.PROTOCOL, "proxy", {"epochs": 1, "steps": 1, "batch_size": 2})
    monkeypatch.setitem(table_module.PROTOCOL, "dataset", dict(PROTOCOL["dataset"], clips_per_class=2))
    out = tmp_path / "bench"
    for _ in range(3):
        assert main(["bench", "generate", "--out", str(out), "--minutes", "0.001", "--seeds", "0,1"]) == 0
    table = pd.read_csv(out / "table.csv").sort_values("finished", kind="stable")
    first, second = (spec_id(SPACE.decode(a)) for a in archs[:2])
    # every seed of an architecture before the next one: a partial table holds whole architectures
    assert list(zip(table["spec_id"], table["seed"])) == [(first, 0), (first, 1), (second, 0)]
    assert (out / "seed0.yaml").is_file() and not (out / ".generate.lock").exists()
    assert main(["bench", "status", "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith("3 rows, 2 architectures of 96")
