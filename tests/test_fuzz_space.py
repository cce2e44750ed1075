"""Fuzzing search spaces: broken space dicts and YAML either give a space whose size, sampling and
costing finish at once, or one bounded `SpecError` line naming the field."""

from __future__ import annotations

import math
import time

import pytest
from hypothesis import HealthCheck, given, settings

from search_space import SearchSpace, SpecError, estimate_cost
from search_space.space_schema import MAX_CHOICES, MAX_STAGE_DEPTH
from tests.fuzz_cases import RAW_FILES, broken, check_message

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = SearchSpace.from_yaml("small").to_dict()
PAPER = SearchSpace.from_yaml("paper").to_dict()


def _usable(space: SearchSpace) -> None:
    """An accepted space counts, samples and costs in well under a second."""
    start = time.perf_counter()
    assert space.size() >= 1
    for seed in range(3):
        spec = space.sample(seed)
        assert estimate_cost(spec).macs > 0
        assert all(math.isfinite(getattr(spec, k)) for k in ("se_ratio", "dropout", "bn_momentum"))
    assert time.perf_counter() - start < 10  # generous: a hang is minutes


@FUZZ
@given(broken(SMALL, misspell=("kernal", "depths", "widht", "ratio", "expand")))
def test_broken_space_dict_is_a_space_or_one_spec_error_line(data):
    try:
        space = SearchSpace.from_dict(data)
    except SpecError as exc:
        check_message(exc)
        return
    _usable(space)


@FUZZ
@given(broken(PAPER))
def test_broken_paper_space_yaml_is_a_space_or_one_spec_error_line(data):
    import yaml

    try:
        space = SearchSpace.from_yaml(yaml.safe_dump(data) + "# fuzz\n")
    except SpecError as exc:
        check_message(exc)
        return
    _usable(space)


def test_size_is_closed_form_for_many_width_choices():
    many = {**PAPER, "width_mult": [round(0.5 + i / 100, 2) for i in range(MAX_CHOICES)]}
    start = time.perf_counter()
    assert SearchSpace.from_dict(many).size() > SearchSpace.from_dict(PAPER).size()
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("change, field", [
    ({"width_mult": [1 + i / 1000 for i in range(1000)]}, "width_mult"),
    ({"stages": [{**SMALL["stages"][0], "depth": [1, 100_000]}]}, r"stages\[0\].depth\[1\]"),
    ({"stages": [{**SMALL["stages"][0], "expand_ratios": [math.inf]}]}, r"stages\[0\].expand_ratios\[0\]"),
    ({"stages": [{**SMALL["stages"][0], "expand_ratios": [1e300]}]}, r"stages\[0\].expand_ratios\[0\]"),
    ({"width_mult": [math.inf]}, r"width_mult\[0\]"),
    ({"head": {"ratio": math.inf, "hidden": 128}}, "head.ratio"),
    ({"se_ratio": [math.nan]}, "se_ratio"),
    ({"dropout": [math.nan]}, "dropout"),
    ({"stages": [{**SMALL["stages"][0], "width": 10**9}]}, r"stages\[0\].width"),
])
def test_what_a_space_may_ask_for_is_bounded(change, field):
    with pytest.raises(SpecError, match=rf"^{field}"):
        SearchSpace.from_dict({**SMALL, **change})


def test_widest_architecture_must_be_buildable():
    wide = {**SMALL, "width_mult": [100.0], "stages": [{**SMALL["stages"][0], "width": 90_000}]}
    with pytest.raises(SpecError, match="widest architecture"):
        SearchSpace.from_dict(wide)


def test_depth_range_is_bounded_so_sampling_stays_fast():
    deep = {**SMALL, "stages": [{**SMALL["stages"][0], "depth": [1, MAX_STAGE_DEPTH]}]}
    space = SearchSpace.from_dict(deep)
    start = time.perf_counter()
    for seed in range(20):
        space.sample(seed)
    assert time.perf_counter() - start < 5


def test_long_one_line_yaml_text_is_text_not_a_path():
    text = "{name: " + "x" * 150 + ", resolution: [" + ", ".join(map(str, range(32, 96))) + "], stages: [{width: 8, depth: 1, kernels: 1x3x3, expand_ratios: 2}]}"
    assert len(text) > 255 and SearchSpace.from_yaml(text).name == "x" * 150


@pytest.mark.parametrize("source", ["x", 1.5, None, [1, 2], object()])
def test_sample_refuses_a_bad_source_with_a_spec_error(source):
    with pytest.raises(SpecError, match="^sample: "):
        SearchSpace.from_dict(SMALL).sample(source)


@pytest.mark.parametrize("name", sorted(RAW_FILES))
def test_raw_bad_space_files_give_one_spec_error_line(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(RAW_FILES[name])
    with pytest.raises(SpecError) as err:
        SearchSpace.from_yaml(path)
    check_message(err.value)


@pytest.mark.parametrize("params", [{"s1_b1_kernel": "9x9x9"}, {"frames": math.nan}, {"width_mult": "1"},
                                    {"s1_depth": True}, {}])
def test_decode_refuses_params_outside_the_space(params):
    space = SearchSpace.from_yaml("paper")
    with pytest.raises(SpecError, match=r"^params\."):
        space.decode(params)


@pytest.mark.parametrize("spec", ["a0", None, {"stem": {}}, 3])
def test_nearest_refuses_what_is_not_a_spec(spec):
    with pytest.raises(SpecError, match="^nearest: "):
        SearchSpace.from_yaml("small").nearest(spec)
