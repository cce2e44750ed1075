"""The search driver: config validation, constraints, the early-stopping rule, and real searches
(Optuna on SQLite, proxy training on tiny synthetic clips)."""

from __future__ import annotations

import json

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.results.record import Outcome, read_trial
from nas.cli import main
from nas.config import EarlyStopping, config_from_dict
from nas.constraints import parse_constraint
from nas.errors import UsageError
from nas.pruning import finished_from_trials, should_stop
from nas.storage import default_url

COST_ONLY = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "flops"}, {"minimize": "activation_bytes"}],
             "sampler": "random", "trials": 6}


def load(results, study):
    return optuna.load_study(study_name=study, storage=default_url(results, study))


# ---------------------------------------------------------------------------------------------
# config and constraints


def test_objective_shorthands_and_defaults():
    config = config_from_dict({"objectives": ["val_accuracy", {"minimize": "params"},
                                             {"name": "synflow", "direction": "maximize"}]})
    assert [(o.name, o.direction) for o in config.objectives] == [
        ("val_accuracy", "maximize"), ("params", "minimize"), ("synflow", "maximize")]
    assert config.trains and config.zero_cost_names == ("synflow",)
    assert config.sampler.name == "tpe" and config.early_stopping.rule == "dominated"


@pytest.mark.parametrize("text, limit", [
    ("flops <= 1.5e9", 1.5e9), ("flops <= 1.5G", 1.5e9), ("params<=3M", 3e6),
    ("activation_bytes <= 200MB", 200e6), ("state_bytes <= 4MiB", 4 * 2**20), ("macs <= 600k", 6e5),
])
def test_constraint_units(text, limit):
    assert parse_constraint(text).limit == pytest.approx(limit)


def test_violation_is_positive_when_broken_for_both_operators():
    upper, lower = parse_constraint("flops <= 100"), parse_constraint("params >= 10")
    assert upper.violation(150) == 50 and upper.violation(80) == -20
    assert lower.violation(4) == 6 and lower.violation(12) == -2


@pytest.mark.parametrize("data, message", [
    ({"sampler": "tpee"}, "sampler.name: 'tpee', must be one of tpe, nsga2, nsga3, random, grid, gp"),
    ({"objectives": [{"maximize": "accuracy"}]}, "objectives[0].name: 'accuracy', must be one of val_accuracy"),
    ({"constraints": ["flops <= 3 parsecs"]}, "constraints[0]"),
    ({"constraints": ["flops <= 3MB"]}, "constraints[0]: byte unit 'MB' on 'flops'"),
    ({"constraints": ["latency <= 3"]}, "constraints[0]: 'latency' in 'latency <= 3', must be one of params"),
    ({"constraints": ["latency_ms <= 3"]}, "constraints: 'latency_ms <= 3' needs a latency profile"),
    ({"early_stopping": {"rule": "median"}}, "early_stopping.rule: 'median', must be one of off, dominated, halving"),
    ({"heartbeat": {"interval": 10, "grace_period": 5}}, "heartbeat.grace_period: 5, must be greater than"),
    ({"proxy": {"epochs": 0}}, "proxy.epochs: 0"),
    ({"trials": 0}, "trials: 0, must be an integer >= 1"),
    ({"sampler": {"name": "nsga2", "opts": {}}}, "sampler.opts: unknown field, allowed: name, options"),
    ({"trails": 5}, "trails: unknown field, allowed: study, space"),
    ({"space": "nowhere.yaml"}, "space: 'nowhere.yaml': no such file"),
    ({"dataset": {"kind": "synthetic", "resolution": "auto"}},
     "dataset.resolution: 'auto', must be an integer or spec (each trial's own resolution)"),
])
def test_bad_field_names_its_path(data, message):
    with pytest.raises(UsageError) as err:
        config_from_dict(data, source="demo.yaml")
    assert str(err.value).startswith("demo.yaml: ") and message in str(err.value)


def test_dataset_sized_spec_gives_each_architecture_data_at_its_own_size(tmp_path):
    from nas.study import load_space
    from nas.trial import Runner

    config = config_from_dict({"space": "small", "dataset": {"kind": "synthetic", "num_classes": 2,
                               "clips_per_class": 4, "frames": "spec", "resolution": "spec"}})
    runner = Runner(config, load_space(config), 2, tmp_path)
    specs = {}
    for seed in range(50):  # the small space searches 32 and 48 px
        spec = runner.space.sample(seed)
        specs.setdefault(spec.resolution, spec)
    assert set(specs) == {32, 48}
    for resolution, spec in specs.items():
        data = runner.dataset(spec)
        assert (data.frames, data.resolution) == (spec.frames, resolution)
        assert data.train.x.shape[1:] == (spec.frames, resolution, resolution, 3)
    assert runner.dataset(specs[32]) is runner.dataset(specs[32])  # loaded once per size


# ---------------------------------------------------------------------------------------------
# the early-stopping rule, read from trials stored in a real study


def _study_with_finished(tmp_path, finished):
    """A stored study of COMPLETE trials [(curve values by epoch, val_accuracy, flops)]."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'rule.db'}", directions=["maximize", "minimize"])
    for curve, acc, flops in finished:
        study.add_trial(optuna.create_trial(
            values=[acc, flops], user_attrs={"curve": [{"epoch": e, "val_accuracy": v} for e, v in curve.items()]}))
    return finished_from_trials(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)), "val_accuracy",
                                ["flops"], ["val_accuracy", "flops"])


def _stop(rule, finished, epoch, value, flops, last_epoch=5):
    return should_stop(rule, epoch, value, {"flops": flops}, {"flops": "minimize"}, True, finished, last_epoch)


def test_dominated_curve_is_stopped_by_a_cheaper_better_trial(tmp_path):
    finished = _study_with_finished(tmp_path, [({1: 0.5, 2: 0.7}, 0.8, 100.0)])
    rule = EarlyStopping(rule="dominated")
    assert _stop(rule, finished, 1, 0.3, 200.0) == "dominated at epoch 1 by trial 0 (0.5 vs 0.3)"
    assert _stop(rule, finished, 1, 0.3, 50.0) is None  # cheaper: may still make the front
    assert _stop(rule, finished, 2, 0.75, 200.0) is None  # better at that epoch
    assert _stop(rule, finished, 3, 0.1, 200.0) is None  # nobody has data at epoch 3


def test_dominated_rule_respects_margin_min_epoch_and_last_epoch(tmp_path):
    finished = _study_with_finished(tmp_path, [({1: 0.5, 2: 0.6}, 0.6, 100.0)])
    assert _stop(EarlyStopping(margin=0.25), finished, 1, 0.3, 200.0) is None
    assert _stop(EarlyStopping(margin=0.1), finished, 1, 0.3, 200.0) is not None
    assert _stop(EarlyStopping(min_epoch=2), finished, 1, 0.3, 200.0) is None
    assert _stop(EarlyStopping(), finished, 2, 0.3, 200.0, last_epoch=2) is None
    assert _stop(EarlyStopping(rule="off"), finished, 1, 0.0, 1e9) is None


def test_equal_curve_is_dominated_only_by_a_strictly_cheaper_trial(tmp_path):
    finished = _study_with_finished(tmp_path, [({1: 0.5}, 0.5, 100.0)])
    assert _stop(EarlyStopping(), finished, 1, 0.5, 100.0) is None
    assert _stop(EarlyStopping(), finished, 1, 0.5, 101.0) is not None


def test_halving_keeps_the_best_fraction_regardless_of_cost(tmp_path):
    finished = _study_with_finished(tmp_path, [({1: v}, v, 1e9) for v in (0.2, 0.4, 0.6, 0.8)])
    rule = EarlyStopping(rule="halving", keep=0.5, min_trials=3)
    assert _stop(rule, finished, 1, 0.3, 1.0) is not None
    assert _stop(rule, finished, 1, 0.7, 1.0) is None
    assert _stop(EarlyStopping(rule="halving", min_trials=5), finished, 1, 0.1, 1.0) is None


# ---------------------------------------------------------------------------------------------
# searches


def test_cost_only_search_completes_the_requested_trials_and_stores_every_constraint(write_config, tmp_path):
    cfg = write_config({**COST_ONLY, "study": "costs", "constraints": ["flops <= 8M"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    study = load(tmp_path, "costs")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 6
    for t in study.trials:
        record = read_trial(t)
        assert list(record.violations) == ["flops <= 8M"]  # feasible trials carry their (<= 0) violation too
        assert record.violations["flops <= 8M"] == pytest.approx(record.cost["flops"] - 8e6)
        assert t.system_attrs["constraints"] == [record.violations["flops <= 8M"]]  # as constraints_func stores
        assert record.feasible == (t.state == optuna.trial.TrialState.COMPLETE)
    assert all(t.user_attrs["cost"]["flops"] <= 8e6 for t in study.best_trials)
    assert study.user_attrs["objectives"] == [{"name": "flops", "direction": "minimize"},
                                              {"name": "activation_bytes", "direction": "minimize"}]


def test_rerun_with_more_trials_continues_the_study(write_config, tmp_path):
    cfg = write_config({**COST_ONLY, "study": "more"})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--trials", "3"]) == 0
    first = [(t.number, t.params) for t in load(tmp_path, "more").trials]
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--trials", "5"]) == 0
    trials = load(tmp_path, "more").trials
    assert len(trials) == 5 and [(t.number, t.params) for t in trials[:3]] == first


TRAINED = {"space": "small", "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
           "dataset": {"kind": "synthetic", "num_classes": 3, "clips_per_class": 4, "frames": 4,
                       "resolution": 16, "seed": 0},
           "proxy": {"epochs": 2, "batch_size": 4}, "sampler": "random", "seed": 3}


@pytest.fixture(scope="module")
def trained_search(tmp_path_factory):
    """One real search with training: flops <= 8M rejects about half the samples untrained."""
    import yaml

    root = tmp_path_factory.mktemp("trained")
    cfg = root / "trained.yaml"
    cfg.write_text(yaml.safe_dump({**TRAINED, "study": "trained", "trials": 2, "constraints": ["flops <= 8M"],
                                   "early_stopping": "off"}))
    assert main(["search", str(cfg), "--results-dir", str(root)]) == 0
    return root, load(root, "trained")


def test_trained_search_records_metrics_curve_and_files(trained_search):
    root, study = trained_search
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2
    for t in complete:
        folder = root / "trained" / "trials" / str(t.number)
        record = json.loads((folder / "metrics.json").read_text())
        assert record["outcome"] == "complete" and record["values"]["flops"] == t.values[1]
        assert t.values[0] == t.user_attrs["metrics"]["val_accuracy"]
        assert [e["epoch"] for e in t.user_attrs["curve"]] == [1, 2]
        assert (folder / "spec.yaml").is_file() and (folder / "curve.csv").read_text().startswith("epoch,")


def test_infeasible_specs_are_never_trained_and_carry_their_violation(trained_search):
    root, study = trained_search
    rejected = [t for t in study.trials if t.user_attrs.get("outcome") == "infeasible"]
    assert rejected, "the seed was chosen so that some samples break the constraint"
    for t in rejected:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert read_trial(t).violations["flops <= 8M"] > 0 and t.user_attrs["reason"].startswith("infeasible: flops")
        assert list(t.constraints.values()) == list(read_trial(t).violations.values())
        assert "metrics" not in t.user_attrs and t.user_attrs["curve"] == []
        assert not (root / "trained" / "trials" / str(t.number)).exists()


def test_dominated_trial_is_stopped_early_with_its_curve(write_config, tmp_path):
    """A stored trial that is better at epoch 1 and cheaper than anything stops every new trial."""
    from search_space import SearchSpace

    cfg = write_config({**TRAINED, "study": "early", "trials": 2, "early_stopping": {"rule": "dominated"}})
    (tmp_path / "early").mkdir()
    study = optuna.create_study(study_name="early", storage=default_url(tmp_path, "early"),
                                directions=["maximize", "minimize"])
    choices = SearchSpace.from_yaml("small").param_choices()
    study.add_trial(optuna.create_trial(
        params={k: c[0] for k, c in choices.items()},
        distributions={k: optuna.distributions.CategoricalDistribution(c) for k, c in choices.items()},
        values=[1.01, 0.0], user_attrs={"outcome": "complete", "curve": [{"epoch": 1, "val_accuracy": 1.01}]}))
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    stopped = [t for t in load(tmp_path, "early").trials if t.number > 0]
    assert len(stopped) == 1  # the stored trial and the stopped one make the budget of 2
    t = stopped[0]
    assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["outcome"] == "early_stopped"
    assert t.user_attrs["reason"].startswith("dominated at epoch 1 by trial 0")
    assert [e["epoch"] for e in t.user_attrs["curve"]] == [1]
    assert (tmp_path / "early" / "trials" / str(t.number) / "curve.csv").is_file()


TWO_ARCHITECTURES = {"name": "two", "frames": 8, "resolution": 32, "width_mult": 1.0,
                     "stem": {"width": 8, "kernel": "1x3x3", "strides": "1x2x2"},
                     "stages": [{"width": 16, "depth": 1, "strides": "1x2x2", "kernels": ["1x3x3", "3x3x3"],
                                 "expand_ratios": [2.0]}],
                     "head": {"ratio": 4.0, "hidden": 32}}


def test_an_architecture_is_trained_once(write_config, tmp_path, capsys):
    cfg = write_config({**COST_ONLY, "study": "twice", "space": TWO_ARCHITECTURES, "trials": 2, "max_rejected": 10})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 0
    trials = load(tmp_path, "twice").trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2 and complete[0].user_attrs["spec_id"] != complete[1].user_attrs["spec_id"]
    for t in trials:
        if read_trial(t).outcome is Outcome.DUPLICATE:
            twin = int(t.user_attrs["reason"].rsplit(" ", 1)[1])
            assert t.state == optuna.trial.TrialState.PRUNED and trials[twin].user_attrs["spec_id"] == t.user_attrs["spec_id"]
    # a third architecture does not exist: the worker gives up instead of sampling forever
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--trials", "3"]) == 2
    assert "10 samples in a row were rejected untrained (last: duplicate: same architecture as trial" in \
        capsys.readouterr().err


def test_front_table_lists_the_best_first(trained_search):
    from nas.summary import front_table

    _, study = trained_search
    config = config_from_dict({**TRAINED, "study": "trained"})
    rows = front_table(study, config).splitlines()
    assert rows[1].split()[:2] == ["trial", config.objectives[0].name]
    firsts = [float(r.split()[1]) for r in rows[2:]]
    assert len(firsts) == len(study.best_trials)
    best_first = sorted(firsts, reverse=config.objectives[0].direction == "maximize")
    assert firsts == best_first


_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                       max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(pruner=_values | st.fixed_dictionaries({"name": st.sampled_from(["median", "halving", "hyperband", "nope"])},
                                              optional={"options": _values}),
       keep=_values, single=st.booleans())
def test_pruner_and_keep_weights_fields_are_accepted_or_named_in_one_line(pruner, keep, single):
    objectives = ["val_accuracy"] if single else ["val_accuracy", "flops"]
    try:
        config = config_from_dict({"objectives": objectives, "pruner": pruner, "keep_weights": keep})
    except UsageError as exc:
        message = str(exc)
        assert "\n" not in message and ("pruner" in message or "keep_weights" in message)
        return
    assert config.keep_weights in (True, False, "auto")
    assert config.pruner.name == "none" or single


def test_a_pruner_needs_a_single_trained_objective():
    with pytest.raises(UsageError, match="pruner.name: 'median' needs a single-objective study"):
        config_from_dict({"pruner": "median"})
    with pytest.raises(UsageError, match="the objective 'flops' is not trained"):
        config_from_dict({"objectives": ["flops"], "pruner": "median"})
    with pytest.raises(UsageError, match="pruner.options.warmup: unknown option of MedianPruner"):
        config_from_dict({"objectives": ["val_accuracy"], "pruner": {"name": "median", "options": {"warmup": 1}}})
    assert config_from_dict({"objectives": ["val_loss"], "pruner": "hyperband"}).pruner.name == "hyperband"
