"""Every sampler a config may name runs a constrained search on the small space (cost objectives, so
no training), keeps within the space and leaves only feasible trials on the front."""

from __future__ import annotations

import importlib.util

import optuna
import pytest

from nas.cli import main
from nas.storage import default_url
from search_space import SearchSpace

CONFIG = {"space": "small", "num_classes": 4, "trials": 8, "constraints": ["flops <= 10M"],
          "objectives": [{"minimize": "flops"}, {"minimize": "activation_bytes"}]}
OPTIONS = {"nsga2": {"population_size": 4}, "nsga3": {"population_size": 4}, "tpe": {"n_startup_trials": 4},
           "gp": {"n_startup_trials": 4}}


@pytest.mark.parametrize("name", ["tpe", "nsga2", "nsga3", "random", "grid"])
def test_sampler_runs_a_constrained_search(name, write_config, tmp_path):
    cfg = write_config({**CONFIG, "study": name, "sampler": {"name": name, "options": OPTIONS.get(name, {})}})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    study = optuna.load_study(study_name=name, storage=default_url(tmp_path, name))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 8
    choices = SearchSpace.from_yaml("small").param_choices()
    for t in study.trials:
        assert set(t.params) == set(choices) and all(v in choices[k] for k, v in t.params.items())
    assert study.best_trials and all(t.user_attrs["cost"]["flops"] <= 10e6 for t in study.best_trials)


def test_grid_sampler_refuses_a_huge_grid(write_config, tmp_path, capsys):
    cfg = write_config({**CONFIG, "space": "paper", "constraints": [], "sampler": "grid",
                        "objectives": [{"minimize": "flops"}, {"minimize": "params"}]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    assert "sampler.name: 'grid' on a space of" in capsys.readouterr().err


def test_sampler_options_are_checked_by_name(write_config, tmp_path, capsys):
    cfg = write_config({**CONFIG, "sampler": {"name": "nsga2", "options": {"popsize": 4}}})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    assert "sampler.options.popsize: unknown option of NSGAIISampler, allowed: population_size" in \
        capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed (the gp extra)")
def test_gp_sampler_runs_when_pytorch_is_installed(write_config, tmp_path):
    cfg = write_config({**CONFIG, "objectives": [{"minimize": "flops"}, {"minimize": "params"}], "study": "gp",
                        "sampler": {"name": "gp", "options": OPTIONS["gp"]}})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None, reason="PyTorch is installed")
def test_gp_sampler_without_pytorch_says_how_to_install_it(write_config, tmp_path, capsys):
    cfg = write_config({**CONFIG, "sampler": "gp"}, name="gp.yaml")
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"movinas search: error: {cfg}: sampler gp needs PyTorch: pip install 'movinas[gp]'"
