"""Properties over hundreds of specs sampled from the paper space: they validate, round-trip through
YAML, and cost more when wider, deeper, longer or larger; and `size()` counts what `decode` makes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from search_space import ArchSpec, Block, SearchSpace, Stage, estimate_cost, walk
from search_space.spec import validate

PAPER = SearchSpace.from_yaml("paper")
SPECS = [PAPER.sample(seed) for seed in range(300)]
# every third spec also as a causal stream-style network (2+1D convs, 2plus3d SE)
SPECS += [s.replace(causal=True, conv_type="2plus1d", se_type="2plus3d", name="sampled-causal")
          for s in SPECS[::3]]


def wider(spec: ArchSpec) -> ArchSpec:
    """Every stage 8 filters wider and every expansion 8 wider (keeps equal widths equal)."""
    return spec.replace(stages=tuple(
        Stage(s.filters + 8, tuple(Block(b.expand + 8, b.kernel, b.strides) for b in s.blocks))
        for s in spec.stages))


def deeper(spec: ArchSpec, i: int) -> ArchSpec:
    """Stage `i` with one more layer, a copy of its last non-striding layer."""
    stage = spec.stages[i]
    last = next((b for b in reversed(stage.blocks) if b.strides == (1, 1, 1)), stage.blocks[-1])
    grown = Stage(stage.filters, (*stage.blocks, Block(last.expand, last.kernel, (1, 1, 1))))
    return spec.replace(stages=(*spec.stages[:i], grown, *spec.stages[i + 1:]))


def assert_grows(small, large, strict_macs: bool = True) -> None:
    assert large.params > small.params
    assert large.macs > small.macs if strict_macs else large.macs >= small.macs
    assert large.activation_bytes >= small.activation_bytes


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.name}-{s.num_layers}layers")
def test_sampled_spec_validates_round_trips_and_costs_grow_monotonically(spec):
    validate(spec)
    plan = walk(spec)
    assert len(plan.layers) == spec.num_layers and all(min(lp.out_shape) >= 1 for lp in plan.layers)
    assert ArchSpec.from_yaml(spec.to_yaml()) == spec
    assert ArchSpec.from_dict(spec.to_dict()) == spec

    f, r = spec.frames, spec.resolution
    base = estimate_cost(spec, f, r)
    assert_grows(base, estimate_cost(wider(spec), f, r))
    for i in range(len(spec.stages)):
        assert_grows(base, estimate_cost(deeper(spec, i), f, r))

    # frames and resolution change the work and memory, never the weights
    for bigger in (estimate_cost(spec, f + 1, r), estimate_cost(spec, f + 8, r),
                   estimate_cost(spec, f, r + 32)):  # +32: every level of the 5 spatial halvings grows
        assert bigger.params == base.params
        assert bigger.macs > base.macs
        assert bigger.activation_bytes >= base.activation_bytes
    odd_step = estimate_cost(spec, f, r + 1)  # may round to the same sizes after the first stride
    assert odd_step.params == base.params
    assert odd_step.macs >= base.macs and odd_step.activation_bytes >= base.activation_bytes


def test_frames_and_resolution_choices_of_the_space_give_increasing_macs():
    spec = SPECS[0]
    for axis in ("frames", "resolution"):
        choices = sorted(PAPER.param_choices()[axis])
        macs = [estimate_cost(spec, **{"frames": spec.frames, "resolution": spec.resolution, axis: v}).macs
                for v in choices]
        assert macs == sorted(set(macs)), axis


def test_nearest_point_of_a_space_point_is_that_point():
    for spec in SPECS[:100]:
        assert PAPER.decode(PAPER.nearest(spec)) == spec


# -- size() against enumeration over random tiny spaces -------------------------------------------

_KERNELS = ["1x3x3", "3x3x3", "5x1x1"]
# ratios and multipliers chosen so that different choices often round to the same filters
_RATIOS = [1.0, 1.1, 1.5, 2.0, 2.2]
_MULTS = [0.5, 0.6, 0.75, 1.0, 1.1, 1.25]


def _sub(items, max_size):
    return st.lists(st.sampled_from(items), min_size=1, max_size=max_size, unique=True)


@st.composite
def tiny_spaces(draw):
    stages = []
    for _ in range(draw(st.integers(1, 2))):
        lo = draw(st.integers(1, 2))
        stages.append({
            "width": draw(st.sampled_from([8, 12, 16, 24, 40])),
            "width_mult": draw(_sub(_MULTS, 3)),
            "depth": [lo, draw(st.integers(lo, 2))],
            "strides": draw(st.sampled_from(["1x1x1", "1x2x2"])),
            "kernels": draw(_sub(_KERNELS, 2)),
            "expand_ratios": draw(_sub(_RATIOS, 3)),
        })
    return SearchSpace.from_dict({
        "frames": draw(_sub([4, 8], 2)),
        "resolution": 32,
        "width_mult": draw(_sub(_MULTS, 3)),
        "stem": {"width": draw(st.sampled_from([8, 16])), "width_mult": draw(_sub(_MULTS, 2))},
        "stages": stages,
        "head": {"ratio": 2.0, "hidden": 16},
    })


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tiny_spaces())
def test_size_equals_the_number_of_distinct_decoded_specs(space):
    assume(space.grid_size() <= 3000)
    choices = space.param_choices()
    specs = {space.decode(dict(zip(choices, v))) for v in itertools.product(*choices.values())}
    assert space.size() == len(specs)
    assert space.size() <= space.grid_size()
