"""Fuzzing search configs: broken config mappings either give a config whose values are in range, or
one bounded `UsageError` line naming the field; study names never leave the results folder."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.config import config_from_dict, load_config, storage_url, study_name
from nas.constraints import parse_constraint
from nas.errors import UsageError
from tests.fuzz_cases import RAW_FILES, broken, check_message

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GOOD = {
    "study": "fuzz", "space": "small", "trials": 4, "timeout": 60, "seed": 1, "num_classes": 4,
    "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
    "constraints": ["flops <= 1G", "activation_bytes <= 200MB"],
    "dataset": {"kind": "synthetic", "frames": 8, "resolution": 32},
    "proxy": {"epochs": 1, "batch_size": 4},
    "sampler": {"name": "tpe", "options": {"n_startup_trials": 2, "multivariate": True}},
    "early_stopping": {"rule": "dominated", "margin": 0.01, "min_epoch": 1},
    "heartbeat": {"interval": 5, "grace_period": 20, "max_retry": 1},
    "storage": "sqlite:///results/fuzz/study.db",
    "max_rejected": 50,
}


def _sane(config) -> None:
    """An accepted config holds a safe study name, finite numbers and a usable storage URL."""
    assert study_name(config.study) == config.study
    assert config.timeout is None or (math.isfinite(config.timeout) and config.timeout > 0)
    assert config.trials >= 1 and config.max_rejected >= 1
    assert all(math.isfinite(c.limit) for c in config.constraints)
    assert config.storage is None or storage_url(config.storage) == config.storage
    for value in config.sampler.options.values():
        assert not (isinstance(value, float) and not math.isfinite(value))
    assert config.sampler.options.get("n_startup_trials", 0) >= 0


@FUZZ
@given(broken(GOOD, misspell=("studdy", "trial", "objective", "constraint", "sampler_name")))
def test_broken_config_is_a_config_or_one_usage_error_line(tmp_path_factory, data):
    try:
        config = config_from_dict(data, source="fuzz.yaml", base=tmp_path_factory.getbasetemp())
    except UsageError as exc:
        check_message(exc)
        assert str(exc).startswith("fuzz.yaml: ")
        return
    _sane(config)


@pytest.mark.parametrize("change, message", [
    ({"constraints": ["flops <= 1e400"]}, r"constraints\[0\]: .* must be a finite number"),
    ({"timeout": math.nan}, "timeout: nan"),
    ({"timeout": math.inf}, "timeout: inf"),
    ({"study": ".."}, "study: '..'"),
    ({"study": "../x"}, "study: '../x'"),
    ({"study": "/abs/path"}, "study: '/abs/path'"),
    ({"study": ""}, "study: ''"),
    ({"storage": "sqlite://"}, "storage: 'sqlite://'"),
    ({"storage": ""}, "storage: ''"),
    ({"sampler": {"name": "tpe", "options": {"n_startup_trials": -1}}}, "sampler.options.n_startup_trials: -1"),
    ({"sampler": {"name": "tpe", "options": {"prior_weight": math.nan}}}, "sampler.options.prior_weight: nan"),
    ({"sampler": {"name": "nsga2", "options": {"population_size": 1}}}, "sampler.options.population_size: 1"),
    ({"sampler": {"name": "nsga2", "options": {"crossover_prob": 2.0}}}, "sampler.options.crossover_prob: 2.0"),
    ({"sampler": {"name": "tpe", "options": {"gamma": 0.1}}}, "sampler.options.gamma: unknown option"),
    ({"sampler": {"name": "tpe", "options": {"multivariate": "yes"}}}, "sampler.options.multivariate: 'yes'"),
])
def test_bad_values_once_accepted_are_refused(tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        config_from_dict({**GOOD, **change}, base=tmp_path)


@pytest.mark.parametrize("name", sorted(set(RAW_FILES) - {"empty.yaml", "only_comment.yaml"}))
def test_raw_bad_config_files_give_one_usage_error_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(RAW_FILES[name])
    with pytest.raises(UsageError) as err:
        load_config(path)
    check_message(err.value)
    assert str(err.value).startswith(str(path))


def test_an_empty_config_is_every_default(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_bytes(b"")
    config = load_config(path)
    assert config.study == "empty" and config.space == "small" and config.trials == 20


@pytest.mark.parametrize("change, message", [
    ({"constraints": ""}, "constraints: ''"), ({"constraints": 0}, "constraints: 0"),
    ({"early_stopping": ""}, "early_stopping.rule: ''"), ({"dataset": {"kind": "synthetic", "frmes": 8}}, "dataset.frmes"),
])
def test_empty_or_misspelled_values_are_refused_not_read_as_defaults(tmp_path, change, message):
    with pytest.raises(UsageError, match=message):
        config_from_dict({**GOOD, **change}, base=tmp_path)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.one_of(st.text(max_size=60), st.from_regex(r"[a-z_]{1,16} ?(<=|>=|<|=) ?[0-9.eE+_-]{1,12} ?[a-zA-Z]{0,4}",
                                                        fullmatch=True)))
def test_any_constraint_text_is_a_finite_constraint_or_one_usage_error_line(text):
    try:
        c = parse_constraint(text)
    except UsageError as exc:
        check_message(exc)
        assert str(exc).startswith("constraints[0]: ")
        return
    assert math.isfinite(c.limit) and c.op in ("<=", ">=")
