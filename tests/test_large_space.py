"""The `bench-large` space (issue 27, point 3): far more architectures than a search can train, at about
a bench architecture's cost, and holding every bench architecture (so the table's rows are its points)."""

from __future__ import annotations

import itertools

import numpy as np

from evaluation.results.record import spec_id
from search_space import SearchSpace, estimate_cost

LARGE, BENCH = SearchSpace.from_yaml("bench-large"), SearchSpace.from_yaml("bench")


def _grid(space):
    choices = space.param_choices()
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def test_the_large_space_holds_over_a_million_architectures_at_about_bench_cost():
    assert LARGE.size() == 1_820_448
    bench = np.array([estimate_cost(BENCH.decode(p), num_classes=10).flops for p in _grid(BENCH)])
    large = np.array([estimate_cost(LARGE.sample(seed), num_classes=10).flops for seed in range(300)])
    assert bench.min() * 0.8 <= large.min() and large.max() <= 2.1 * bench.max()
    assert 1.0 <= np.median(large) / np.median(bench) <= 1.5


def test_every_bench_architecture_is_a_point_of_the_large_space():
    defaults = {k: c[0] for k, c in LARGE.param_choices().items()}
    fixed = {"s1_depth": 1, "s1_b1_expand": 3.0, "s2_depth": 1, "s3_b1_kernel": "1x3x3", "s3_b2_kernel": "1x3x3",
             "s3_b1_expand": 3.0, "s3_b2_expand": 3.0}
    for params in _grid(BENCH):
        point = {**defaults, **fixed, **params}
        assert spec_id(LARGE.decode(point)) == spec_id(BENCH.decode(params))
