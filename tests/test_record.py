"""The trial record (evaluation.results.record): one writer, one reader, the Optuna state as the truth,
constraints, learning curves and kept weights where Optuna, optuna-dashboard and `movinas export`
look for them."""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
import pytest

from evaluation.compat import trial_id
from evaluation.results.frames import load_results, load_study, objectives_of
from evaluation.results.pareto import pareto_front
from evaluation.results.record import (
    CONSTRAINTS_KEY,
    Outcome,
    outcome_of,
    read_trial,
    write_outcome,
    write_results,
    write_start,
)
from nas.cli import main
from nas.storage import default_url
from nas.study import counted

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"
DATA = {"kind": "synthetic", "num_classes": 3, "clips_per_class": 4, "frames": 4, "resolution": 16, "seed": 0}
TRAINED = {"space": "small", "dataset": DATA, "proxy": {"epochs": 2, "batch_size": 4}, "sampler": "random",
           "seed": 3, "early_stopping": "off"}


def test_reference_run_reads_through_the_record_with_the_same_front():
    records = [read_trial(t) for t in load_study(REFERENCE).study.get_trials()]
    assert Counter(r.outcome for r in records) == {Outcome.COMPLETE: 7, Outcome.EARLY_STOPPED: 5,
                                                   Outcome.INFEASIBLE: 3}
    assert all(r.schema == 2 and r.arch_spec() is not None for r in records)
    assert sum(r.counted for r in records) == 12
    df = load_results(REFERENCE)
    front = pareto_front(df, objectives_of(df))
    assert front["number"].tolist() == [8, 5, 7]
    assert front["val_accuracy"].round(6).tolist() == [0.53125, 0.4125, 0.2875]
    assert front["flops"].tolist() == [8655872, 4885952, 4388288]


@pytest.mark.parametrize("state, stored, outcome", [
    ("COMPLETE", None, Outcome.COMPLETE), ("COMPLETE", "interrupted", Outcome.COMPLETE),
    ("PRUNED", "early_stopped", Outcome.EARLY_STOPPED), ("PRUNED", "duplicate", Outcome.DUPLICATE),
    ("FAIL", "interrupted", Outcome.INTERRUPTED), ("FAIL", "complete", Outcome.FAILED),
    ("FAIL", "early_stopped", Outcome.FAILED), ("FAIL", None, None), ("RUNNING", "complete", None),
    ("WAITING", "interrupted", None),
])
def test_the_state_decides_the_outcome(state, stored, outcome):
    assert outcome_of(state, stored) is outcome


def test_a_trial_killed_after_writing_its_results_counts_as_failed(tmp_path):
    """The writer leaves no `complete` behind a trial whose state never became COMPLETE, and a
    FAIL trial stored by older versions with outcome `complete` reads as failed everywhere."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="killed", directions=["minimize"])
    study.set_user_attr("objectives", [{"name": "flops", "direction": "minimize"}])
    trial = study.ask()
    write_start(trial, spec={}, spec_id="0" * 16, cost={"flops": 5.0}, costed_at={}, violations={}, worker="w")
    write_results(trial, metrics={"val_accuracy": 0.5}, curve=[], timing={})
    write_outcome(trial, Outcome.COMPLETE, None)
    # SIGKILL here; a later worker finds the heartbeat stale and fails the trial
    trial.storage.set_trial_state_values(trial_id(trial), optuna.trial.TrialState.FAIL)
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL,
                                        user_attrs={"outcome": "complete", "metrics": {"val_accuracy": 0.7}}))
    study.add_trial(optuna.create_trial(value=3.0, user_attrs={"metrics": {"val_accuracy": 0.6}}))
    trials = study.get_trials()
    assert trials[0].user_attrs.get("outcome") is None  # no "complete" left behind
    assert [counted(t) for t in trials] == [False, False, True]
    df = load_results(tmp_path / "study.db")
    assert df["outcome"].fillna("none").tolist() == ["none", "failed", "complete"]
    assert df["state"].tolist() == ["FAIL", "FAIL", "COMPLETE"]


def test_constraints_are_where_optunas_own_helpers_read_them(write_config, tmp_path):
    """Optuna reads them under CONSTRAINTS_KEY (tests/test_compat.py checks the key is Optuna's)."""
    cfg = write_config({"space": "small", "num_classes": 4, "sampler": "random", "trials": 4, "study": "limits",
                        "objectives": [{"minimize": "flops"}, {"minimize": "params"}],
                        "constraints": ["flops <= 6M", "params >= 20K"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    study = optuna.load_study(study_name="limits", storage=default_url(tmp_path, "limits"))
    records = {t.number: read_trial(t) for t in study.trials}
    assert any(r.outcome is Outcome.INFEASIBLE for r in records.values())
    for t in study.trials:
        named = records[t.number].violations
        assert list(named) == ["flops <= 6M", "params >= 20K"]  # the named values stay
        assert t.system_attrs[CONSTRAINTS_KEY] == list(named.values())  # as a constraints_func stores them
        assert named["flops <= 6M"] == pytest.approx(records[t.number].cost["flops"] - 6e6)
        assert named["params >= 20K"] == pytest.approx(20e3 - records[t.number].cost["params"])
    feasible = {t.number for t in study.trials if all(v <= 0 for v in t.system_attrs[CONSTRAINTS_KEY])}
    assert feasible == {n for n, r in records.items() if r.feasible}
    assert feasible >= {t.number for t in study.best_trials} and study.best_trials


@pytest.fixture(scope="module")
def pruned_study(tmp_path_factory):
    """A single-objective study with Optuna's MedianPruner, whose one stored trial leads at every
    epoch (accuracy 1.01): the next trial is pruned after its first epoch."""
    import yaml

    from search_space import SearchSpace

    root = tmp_path_factory.mktemp("pruned")
    cfg = root / "median.yaml"
    cfg.write_text(yaml.safe_dump({**TRAINED, "study": "median", "trials": 2, "objectives": ["val_accuracy"],
                                   "pruner": {"name": "median", "options": {"n_startup_trials": 1}}}))
    (root / "median").mkdir()
    study = optuna.create_study(study_name="median", storage=default_url(root, "median"), direction="maximize")
    choices = SearchSpace.from_yaml("small").param_choices()
    study.add_trial(optuna.create_trial(
        params={k: c[0] for k, c in choices.items()},
        distributions={k: optuna.distributions.CategoricalDistribution(c) for k, c in choices.items()},
        value=1.01, intermediate_values={1: 1.01, 2: 1.01}))
    assert main(["search", str(cfg), "--results-dir", str(root)]) == 0
    return optuna.load_study(study_name="median", storage=default_url(root, "median"))


def test_optunas_pruner_stops_a_single_objective_trial_from_its_reported_curve(pruned_study):
    t = pruned_study.trials[1]
    record = read_trial(t)
    assert t.state == optuna.trial.TrialState.PRUNED and record.outcome is Outcome.EARLY_STOPPED
    assert record.reason.startswith("pruned by MedianPruner at epoch 1")
    assert t.intermediate_values == {1: record.curve[0]["val_accuracy"]}
    assert counted(t)  # it was trained


def test_learning_curves_show_in_optunas_intermediate_values_plot(pruned_study, trained_multi):
    from optuna.visualization.matplotlib import plot_intermediate_values

    _, multi = trained_multi
    for study, curves in ((pruned_study, 2), (multi, 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = plot_intermediate_values(study)
        assert len(ax.get_lines()) == curves
    t = multi.get_trials(states=(optuna.trial.TrialState.COMPLETE,))[0]
    assert t.intermediate_values == {e["epoch"]: e["val_accuracy"] for e in read_trial(t).curve}


@pytest.fixture(scope="module")
def trained_multi(tmp_path_factory):
    """A multi-objective trained study of one COMPLETE trial (weights kept: a small proxy)."""
    import yaml

    root = tmp_path_factory.mktemp("kept")
    cfg = root / "kept.yaml"
    cfg.write_text(yaml.safe_dump({**TRAINED, "study": "kept", "trials": 1,
                                   "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}]}))
    assert main(["search", str(cfg), "--results-dir", str(root)]) == 0
    return root, optuna.load_study(study_name="kept", storage=default_url(root, "kept"))


def test_export_carries_the_weights_the_search_trained(trained_multi, tmp_path, capsys):
    import keras

    import search_space  # noqa: F401  registers the custom layers

    root, study = trained_multi
    t = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))[0]
    record = read_trial(t)
    assert record.weights == f"trials/{t.number}/weights.npz"
    out = tmp_path / "kept"
    assert main(["export", str(root / "kept"), "--trial", str(t.number), "--format", "yaml,keras",
                 "--out", str(out)]) == 0
    assert "RANDOMLY" not in capsys.readouterr().err
    model = keras.saving.load_model(out / "model.keras")
    with np.load(root / "kept" / record.weights) as saved:
        for v in model.weights:
            np.testing.assert_array_equal(np.asarray(v.numpy()), saved[v.path])
    card = (out / "model_card.md").read_text()
    assert f"trained during the search, by trial {t.number}'s own proxy run" in card and "RANDOMLY" not in card
    assert (out / "labels.txt").read_text().splitlines() == study.user_attrs["class_names"]


def test_keep_weights_off_keeps_none_and_export_says_the_weights_are_random(write_config, tmp_path, capsys):
    cfg = write_config({**TRAINED, "study": "nokeep", "trials": 1, "keep_weights": False,
                        "proxy": {"epochs": 1, "batch_size": 4}, "objectives": ["val_accuracy"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    t = optuna.load_study(study_name="nokeep", storage=default_url(tmp_path, "nokeep")).trials[0]
    assert read_trial(t).weights is None and not (tmp_path / "nokeep" / "trials" / "0" / "weights.npz").exists()
    out = tmp_path / "plain"
    assert main(["export", str(tmp_path / "nokeep"), "--trial", "0", "--format", "yaml", "--out", str(out)]) == 0
    assert "RANDOMLY INITIALIZED" in capsys.readouterr().err
    assert (out / "labels.txt").read_text().splitlines() == ["right", "left", "clockwise"]  # the study's classes


def test_the_set_based_reader_reads_what_optuna_reads(tmp_path):
    """`read_records` (SQL over one snapshot) gives the same records as Optuna's `get_trials`:
    the reference run and a study with infinite values, a running, a failed and a waiting trial."""
    from evaluation.results.storage import read_records

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", directions=["minimize", "maximize"])
    dist = {"k": optuna.distributions.CategoricalDistribution(["1x3x3", "3x3x3"]),
            "w": optuna.distributions.FloatDistribution(0.5, 2.0)}
    study.add_trial(optuna.create_trial(params={"k": "3x3x3", "w": 0.75}, distributions=dist,
                                        values=[float("inf"), float("-inf")], user_attrs={"cost": {"flops": 1}},
                                        system_attrs={"constraints": [0.5, -1.0]}))
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"outcome": "failed"}))
    study.enqueue_trial({"k": "1x3x3"})
    running = study.ask()
    running.suggest_categorical("k", ["1x3x3", "3x3x3"])
    study.enqueue_trial({"k": "3x3x3"})
    for source in (REFERENCE, tmp_path / "study.db"):
        opened = load_study(source)
        assert read_records(opened) == [read_trial(t) for t in opened.study.get_trials()]


def test_a_multi_objective_tpe_search_goes_on_after_an_early_stopped_trial(tmp_path):
    """A trial stopped early (PRUNED) in a multi-objective study carries no intermediate values:
    Optuna's TPE reads those through `study.direction`, which such a study lacks (the demo crashed)."""
    import yaml

    from search_space import SearchSpace

    cfg = tmp_path / "multi.yaml"
    cfg.write_text(yaml.safe_dump({**TRAINED, "study": "multi", "trials": 3,
                                   "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
                                   "sampler": {"name": "tpe", "options": {"n_startup_trials": 1}},
                                   "early_stopping": {"rule": "dominated", "min_epoch": 1}}))
    (tmp_path / "multi").mkdir()
    study = optuna.create_study(study_name="multi", storage=default_url(tmp_path, "multi"),
                                directions=["maximize", "minimize"])
    choices = SearchSpace.from_yaml("small").param_choices()
    study.add_trial(optuna.create_trial(  # beats every trial at every epoch at no more FLOPs
        params={k: c[0] for k, c in choices.items()},
        distributions={k: optuna.distributions.CategoricalDistribution(c) for k, c in choices.items()},
        values=[1.01, 1.0], user_attrs={"curve": [{"epoch": 1, "val_accuracy": 1.01}, {"epoch": 2, "val_accuracy": 1.01}]}))
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    trials = optuna.load_study(study_name="multi", storage=default_url(tmp_path, "multi")).trials
    stopped = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED and read_trial(t).curve]
    assert stopped and all(not t.intermediate_values for t in stopped)
    assert len(trials) == 3 and len(stopped) >= 1  # the seeded trial counts; trial 2 was sampled by TPE after trial 1 stopped
