"""`load_results` reads a SQLite study in a few set-based queries (`evaluation.results.storage.read_records`);
any other storage through Optuna's `get_trials`. Both give exactly the same DataFrame (values, dtypes,
column order, specs, attrs): on the committed reference run, on a study read again and again while
its trials start and finish, on a storage of two studies, and with a parameter drawn from two
distributions."""

from __future__ import annotations

import copy
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from evaluation.compat import trial_id
from evaluation.results.frames import load_study, to_frame
from evaluation.results.storage import read_only_file
from nas.cli import main

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
COST_ONLY = {"study": "source", "space": "small", "num_classes": 3, "sampler": "random", "trials": 6,
             "constraints": ["flops <= 9M"], "objectives": [{"minimize": "flops"}, {"minimize": "params"}]}


def frames(source, study: str | None = None):
    """(set-based frame, Optuna frame) of one study: the same opened study, read both ways."""
    opened = load_study(source, study)
    through_optuna = copy.copy(opened)
    through_optuna.url = f"sqlite:///{read_only_file(opened.url)[0]}"  # not read-only: Optuna's path
    return to_frame(opened), to_frame(through_optuna)


def assert_same(source, study: str | None = None):
    fast, plain = frames(source, study)
    pd.testing.assert_frame_equal(fast, plain, check_exact=True)
    assert fast.attrs == plain.attrs
    return fast


@pytest.mark.skipif(not (REFERENCE / "study.db").is_file(), reason="the committed reference run is missing")
def test_the_reference_run_reads_the_same_both_ways():
    df = assert_same(REFERENCE)
    assert {"COMPLETE", "PRUNED"} <= set(df["state"]) and df["curve"].map(len).max() > 0


def test_a_growing_study_reads_the_same_both_ways_after_every_change(tmp_path):
    """The trials of a real cost-only search replayed into a second study one step at a time
    (waiting, running with its record written, finished): after each step both readers agree, and
    the rows of trials finished earlier read the same as when they had just finished."""
    cfg = tmp_path / "source.yaml"
    cfg.write_text(yaml.safe_dump(COST_ONLY))
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    source = optuna.load_study(study_name="source", storage=f"sqlite:///{tmp_path / 'source' / 'study.db'}")
    assert {t.state.name for t in source.trials} >= {"COMPLETE"}
    (tmp_path / "live").mkdir()
    live = optuna.create_study(study_name="live", storage=f"sqlite:///{tmp_path / 'live' / 'study.db'}",
                               directions=source.directions)
    for key, value in source.user_attrs.items():
        live.set_user_attr(key, value)
    assert_same(tmp_path / "live")  # no trial yet
    finished: dict[int, pd.Series] = {}
    for t in source.trials:
        live.enqueue_trial(t.params)
        assert_same(tmp_path / "live")  # waiting
        trial = live.ask(t.distributions)
        for key, value in t.user_attrs.items():
            trial.set_user_attr(key, value)
        for key, value in t.system_attrs.items():
            trial.storage.set_trial_system_attr(trial_id(trial), key, value)
        assert_same(tmp_path / "live")  # running, its record written
        live.tell(trial, t.values if t.state.name == "COMPLETE" else None, state=t.state)
        df = assert_same(tmp_path / "live")
        rows = df.set_index("number").astype(object)
        rows = rows.where(rows.notna(), None)  # a column's dtype follows the trials read: None or NaN
        for number, row in finished.items():
            pd.testing.assert_series_equal(rows.loc[number, row.index], row)  # columns come with later trials
        finished[trial.number] = rows.loc[trial.number]
    assert len(df) == len(source.trials) and df["spec"].notna().all()
    same = ["number", "state", "outcome", "feasible", "flops", "params", "violation_flops_le", "spec_id", "spec"]
    assert df[same].equals(to_frame(load_study(tmp_path / "source"))[same])  # the replay is the search


def test_two_studies_and_a_parameter_of_two_distributions_read_the_same_both_ways(tmp_path):
    """A storage holding two studies (the reader joins on the study) and a float parameter whose
    range changed between trials (each row's own distribution), with infinite values."""
    url = f"sqlite:///{tmp_path / 'two.db'}"
    for name in ("alpha", "beta"):
        study = optuna.create_study(study_name=name, storage=url, directions=["minimize", "maximize"])
        for i, (low, high) in enumerate([(0.5, 2.0), (0.1, 5.0), (0.5, 2.0)]):
            dist = {"k": optuna.distributions.CategoricalDistribution(["1x3x3", "3x3x3", None]),
                    "w": optuna.distributions.FloatDistribution(low, high, log=True),
                    "n": optuna.distributions.IntDistribution(1, 9, step=2)}
            study.add_trial(optuna.trial.create_trial(
                params={"k": [None, "3x3x3", "1x3x3"][i], "w": 0.1 * (i + 6) + (name == "beta"), "n": 2 * i + 1},
                distributions=dist, values=[float("inf") if i == 1 else i / 3, float("-inf") if i == 2 else 1.0],
                user_attrs={"cost": {"flops": 1e6 * (i + 1)}, "metrics": {"val_accuracy": 0.1 * i}}))
    for name in ("alpha", "beta"):
        df = assert_same(tmp_path / "two.db", name)
        assert df["w"].tolist() == [0.1 * (i + 6) + (name == "beta") for i in range(3)]
        assert df["k"].tolist()[1:] == ["3x3x3", "1x3x3"] and df["k"].isna()[0] and df["n"].tolist() == [1, 3, 5]
