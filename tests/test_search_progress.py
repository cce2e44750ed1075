"""What a search shows while it runs and prints when it ends: the trial bar's per-epoch progress,
the best trial by name, rejected trials by kind, costs in the report's units; and the bounded
re-sampling of proposals that repeat a trained architecture (real searches, Optuna on SQLite)."""

from __future__ import annotations

import re

import optuna
import pytest

import nas.trial
from evaluation.results.record import Outcome, read_trial
from nas.cli import main
from nas.storage import default_url

# four architectures: flops 3.94M, 4.53M, 5.81M and 6.99M at 4 classes
FOUR = {"name": "four", "frames": 8, "resolution": 32, "width_mult": 1.0,
        "stem": {"width": 8, "kernel": "1x3x3", "strides": "1x2x2"},
        "stages": [{"width": 16, "depth": 1, "strides": "1x2x2", "kernels": ["1x3x3", "3x3x3"],
                    "expand_ratios": [2.0, 4.0]}],
        "head": {"ratio": 4.0, "hidden": 32}}
COST_ONLY = {"space": FOUR, "num_classes": 4, "objectives": [{"minimize": "flops"}], "max_rejected": 50}


def outcomes(results, study) -> list[Outcome]:
    trials = optuna.load_study(study_name=study, storage=default_url(results, study)).trials
    return [read_trial(t).outcome for t in trials]


def last_postfix(err: str) -> str:
    """The bar's last state: tqdm redraws it after a carriage return."""
    return [part for part in re.split(r"[\r\n]", err) if "trial/s" in part or "s/trial" in part][-1]


def test_trial_bar_shows_each_epoch_and_the_best_trial_by_name(write_config, tmp_path, capsys):
    cfg = write_config({"space": "small", "study": "bar", "trials": 1, "sampler": "random", "seed": 3,
                        "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
                        "dataset": {"kind": "synthetic", "num_classes": 3, "clips_per_class": 4, "frames": 4,
                                    "resolution": 16, "seed": 0},
                        "proxy": {"epochs": 2, "batch_size": 4}, "early_stopping": "off"})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"trial 0 epoch 1/2 val_accuracy=[\d.]+", err)
    assert re.search(r"trial 0 epoch 2/2 val_accuracy=[\d.]+", err)
    assert re.search(r"best trial 0: val_accuracy=[\d.]+ flops=[\d.]+[KMG]", last_postfix(err))
    head, row = out.splitlines()[1:3]
    assert head.split() == ["trial", "val_accuracy", "flops", "params", "activation_bytes"]
    assert re.fullmatch(r"0 [\d.]+ [\d.]+[KMG] [\d.]+[KM] [\d.]+ MB", " ".join(row.split()))


def test_a_proposal_repeating_a_trained_architecture_is_resampled(write_config, tmp_path, monkeypatch):
    """TPE proposes the argmax of its density ratio, so in a small space it proposes its favourite
    again and again; re-sampling turns those proposals into the architectures not tried yet."""
    tpe = {"name": "tpe", "options": {"n_startup_trials": 1}}
    cfg = write_config({**COST_ONLY, "study": "resampled", "sampler": tpe, "seed": 0, "trials": 4})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    assert outcomes(tmp_path, "resampled") == [Outcome.COMPLETE] * 4  # every architecture, no duplicate trial
    monkeypatch.setattr(nas.trial, "DUPLICATE_RESAMPLES", 0)
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--study", "asked-once"]) == 0
    assert Outcome.DUPLICATE in outcomes(tmp_path, "asked-once")  # the same search without re-sampling


def test_duplicates_are_counted_apart_from_infeasible_trials(write_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nas.trial, "DUPLICATE_RESAMPLES", 0)  # the seed gives both kinds without re-sampling
    cfg = write_config({**COST_ONLY, "study": "kinds", "sampler": "random", "seed": 1, "trials": 3,
                        "constraints": ["flops <= 6M"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    found = outcomes(tmp_path, "kinds")
    infeasible, duplicate = found.count(Outcome.INFEASIBLE), found.count(Outcome.DUPLICATE)
    assert infeasible and duplicate
    err = capsys.readouterr().err
    assert f"infeasible={infeasible} duplicate={duplicate}" in last_postfix(err)
    assert main(["report", str(tmp_path / "kinds")]) == 0
    summary = (tmp_path / "kinds" / "report.md").read_text()
    assert f"3 complete, {infeasible} infeasible, {duplicate} duplicate." in summary


@pytest.mark.parametrize("values, best", [([0.5, 0.5, 0.25], 1), ([0.25, 0.5, 0.5], 2)])
def test_best_trial_on_the_bar_breaks_ties_by_the_lower_cost(tmp_path, values, best):
    from nas.config import config_from_dict
    from nas.summary import best_record

    config = config_from_dict({"space": "small", "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}]})
    flops = [2e6, 1e6, 5e5]
    study = optuna.create_study(directions=["maximize", "minimize"])
    for v, f in zip(values, flops):
        study.add_trial(optuna.create_trial(values=[v, f], user_attrs={"cost": {"flops": f, "params": 1e3}}))
    assert best_record([read_trial(t) for t in study.trials], config).number == best
