"""Zero-cost proxies: baselines always present, deterministic, the blocks are visible to them."""

from __future__ import annotations

import math

import pytest

from evaluation.datasets import synthetic
from evaluation.proxies.zero_cost import ZERO_COST, zero_cost_scores
from search_space import estimate_cost
from search_space.spec import ArchSpec, Block, Head, Stage, Stem


def spec_with(kernel=(3, 3, 3), expand=16) -> ArchSpec:
    return ArchSpec(stem=Stem(filters=4), stages=(Stage(8, (Block(expand, kernel, (1, 2, 2)), Block(expand, kernel))),),
                    head=Head(filters=16, hidden=16), frames=16, resolution=172)


@pytest.fixture(scope="module")
def data():
    return synthetic(num_classes=3, clips_per_class=4, frames=4, resolution=16, seed=2)


@pytest.fixture(scope="module")
def scores(data):
    return zero_cost_scores(spec_with(), data, names=tuple(ZERO_COST), batch_size=6, seed=1)


def test_every_score_is_finite_and_params_macs_are_at_the_data_input_size(data, scores):
    assert set(scores) == {*ZERO_COST, "params", "macs"}
    assert all(math.isfinite(v) for v in scores.values())
    cost = estimate_cost(spec_with(), frames=4, resolution=16, num_classes=3)
    assert scores["params"] == cost.params and scores["macs"] == cost.macs


def test_scores_are_deterministic_for_a_seed(data, scores):
    assert zero_cost_scores(spec_with(), data, names=tuple(ZERO_COST), batch_size=6, seed=1) == scores


def test_baselines_come_without_building_a_model(data):
    assert set(zero_cost_scores(spec_with(), data, names=())) == {"params", "macs"}


def test_block_weights_are_seen_although_block_scales_start_at_zero(data, scores):
    # MoViNet zero-initializes each block's scale; scored as built, a block's kernel would not matter.
    other = zero_cost_scores(spec_with(kernel=(1, 3, 3)), data, names=tuple(ZERO_COST), batch_size=6, seed=1)
    for name in ("grad_norm", "snip", "synflow", "naswot"):
        assert other[name] != pytest.approx(scores[name], rel=1e-6), name


def test_synflow_grows_with_width(data):
    narrow = zero_cost_scores(spec_with(expand=8), data, names=("synflow",), seed=1)["synflow"]
    wide = zero_cost_scores(spec_with(expand=32), data, names=("synflow",), seed=1)["synflow"]
    assert wide > narrow


def test_unknown_score_names_list_the_allowed(data):
    with pytest.raises(ValueError, match=r"names: 'jacob', allowed: grad_norm, snip, synflow, naswot, params, macs"):
        zero_cost_scores(spec_with(), data, names=("jacob",))
