"""Fuzzing the spec and the cost model: broken spec dicts, YAML text and `estimate_cost` arguments
either give a valid spec or one bounded `SpecError` line; nothing else escapes, nothing hangs."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search_space import ArchSpec, SpecError, estimate_cost, movinet
from tests.fuzz_cases import BAD_SCALARS, RAW_FILES, broken, check_message

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
GOOD = movinet("a0").to_dict()
GOOD_STREAM = movinet("a1", stream=True).to_dict()


def _accepted_is_sane(spec: ArchSpec) -> None:
    """A spec that was accepted has finite, in-range values and costs at its own input."""
    for name in ("se_ratio", "bn_momentum", "bn_epsilon", "dropout", "stochastic_depth"):
        assert math.isfinite(getattr(spec, name))
    cost = estimate_cost(spec)
    assert cost.params > 0 and cost.macs > 0


@FUZZ
@given(broken(GOOD))
def test_broken_spec_dict_is_a_spec_or_one_spec_error_line(data):
    try:
        spec = ArchSpec.from_dict(data)
    except SpecError as exc:
        check_message(exc)
        return
    _accepted_is_sane(spec)


@FUZZ
@given(broken(GOOD_STREAM))
def test_broken_stream_spec_yaml_is_a_spec_or_one_spec_error_line(data):
    import yaml

    try:
        text = yaml.safe_dump(data)
    except yaml.YAMLError:
        return
    try:
        spec = ArchSpec.from_yaml(text if "\n" in text.strip() else text + "\n# end\n")
    except SpecError as exc:
        check_message(exc)
        return
    _accepted_is_sane(spec)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(frames=st.one_of(st.none(), BAD_SCALARS), resolution=st.one_of(st.none(), BAD_SCALARS),
       num_classes=BAD_SCALARS)
def test_estimate_cost_checks_its_arguments(frames, resolution, num_classes):
    spec = movinet("a0")
    try:
        cost = estimate_cost(spec, frames, resolution, num_classes=num_classes)
    except SpecError as exc:
        check_message(exc)
        assert str(exc).split(":")[0] in ("frames", "resolution", "num_classes")
        return
    assert cost.macs > 0 and cost.params > 0


@pytest.mark.parametrize("value", [0, -1, 1.5, math.nan, math.inf, True, "8", None])
def test_estimate_cost_refuses_a_bad_size_instead_of_falling_back(value):
    if value is None:
        return
    for arg in ("frames", "resolution"):
        with pytest.raises(SpecError, match=rf"^{arg}: "):
            estimate_cost(movinet("a0"), **{arg: value})


@pytest.mark.parametrize("not_a_spec", ["a0", None, 3, {"stem": {}}])
def test_estimate_cost_refuses_what_is_not_a_spec(not_a_spec):
    with pytest.raises(SpecError, match="^spec: .*must be an ArchSpec"):
        estimate_cost(not_a_spec)


@pytest.mark.parametrize("field", ["se_ratio", "bn_momentum", "bn_epsilon", "dropout", "stochastic_depth"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_spec_numbers_are_refused_from_yaml_and_dicts(field, value):
    with pytest.raises(SpecError, match=rf"^{field}: "):
        ArchSpec.from_dict({**GOOD, field: value})
    text = movinet("a0").to_yaml().replace(f"{field}:", f"{field}: {'.nan' if math.isnan(value) else '.inf'} #")
    with pytest.raises(SpecError, match=rf"^spec: {field}: "):
        ArchSpec.from_yaml(text)


@pytest.mark.parametrize("name", sorted(RAW_FILES))
def test_raw_bad_files_give_one_spec_error_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(RAW_FILES[name])
    with pytest.raises(SpecError) as err:
        ArchSpec.from_yaml(path)
    check_message(err.value)
    assert str(err.value).startswith(str(path))


def test_a_directory_is_named_as_one(tmp_path):
    with pytest.raises(SpecError, match="a directory"):
        ArchSpec.from_yaml(tmp_path)


def test_a_quoted_huge_value_is_cut_short():
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict({**GOOD, "conv_type": "x" * 100_000})
    assert len(str(err.value)) < 300 and "..." in str(err.value)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(part=st.sampled_from(["stem", "head", "stages"]), value=BAD_SCALARS)
def test_constructing_a_spec_from_wrong_objects_is_one_spec_error(part, value):
    spec = movinet("a0")
    with pytest.raises(SpecError) as err:
        spec.replace(**{part: value})
    check_message(err.value)
    assert str(err.value).startswith(part)
