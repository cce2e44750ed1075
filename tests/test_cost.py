"""estimate_cost: MACs against the paper's GFLOPs, internal consistency, no TensorFlow import."""

import dataclasses
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search_space import PRESETS, estimate_cost, make_divisible, movinet, walk
from search_space.spec import CONV_TYPES, SE_TYPES

# paper GFLOPs at 50 × 172² (they count some element-wise work; conv + dense MACs alone land 2-3% lower)
PAPER_GFLOPS = {"a0": 2.71, "a1": 6.02}


@pytest.mark.parametrize("name", sorted(PAPER_GFLOPS))
def test_macs_within_4_percent_under_paper_gflops(name):
    macs = estimate_cost(movinet(name), frames=50, resolution=172).macs
    paper = PAPER_GFLOPS[name] * 1e9
    assert 0.96 * paper <= macs <= paper


def test_a0_macs_value():
    assert estimate_cost(movinet("a0"), 50, 172).macs == 2_630_733_808


@pytest.mark.parametrize("name,stream", [(n, s) for n in PRESETS for s in (False, True)])
def test_flops_are_twice_macs(name, stream):
    cost = estimate_cost(movinet(name, stream=stream))
    assert cost.flops == 2 * cost.macs


@pytest.mark.parametrize("name", PRESETS)
def test_base_models_carry_no_stream_state(name):
    cost = estimate_cost(movinet(name))
    assert (cost.state_bytes, cost.state_floats, cost.state_tensors) == (0, 0, 0)


def test_stream_state_bytes_count_floats_and_frame_counters():
    cost = estimate_cost(movinet("a0", stream=True))
    # one counter per cumulative pool: 15 SE pools + the head pool
    assert cost.state_bytes == 4 * (cost.state_floats + 16)


def test_stream_state_does_not_grow_with_clip_length():
    spec = movinet("a1", stream=True)
    assert estimate_cost(spec, frames=1).state_bytes == estimate_cost(spec, frames=200).state_bytes


@pytest.mark.parametrize("name,stream", [("a0", False), ("a2", True), ("a3", True), ("a5", False)])
def test_breakdown_sums_to_totals(name, stream):
    spec = movinet(name, stream=stream)
    cost = estimate_cost(spec, frames=16, resolution=96, num_classes=10, breakdown=True)
    blocks = cost.blocks
    assert [b.name for b in blocks][:2] == ["stem", "s1.b1"] and [b.name for b in blocks][-2:] == [
        "head", "classifier"]
    assert len(blocks) == spec.num_layers + 3
    assert sum(b.params for b in blocks) == cost.params
    assert sum(b.macs for b in blocks) == cost.macs
    assert sum(b.elementwise for b in blocks) == cost.elementwise
    assert sum(b.state_bytes for b in blocks) == cost.state_bytes
    assert max(b.activation_bytes for b in blocks) == cost.activation_bytes


def test_breakdown_does_not_change_totals():
    spec = movinet("a2", stream=True)
    plain = estimate_cost(spec, 8, 64)
    full = estimate_cost(spec, 8, 64, breakdown=True)
    assert plain == full._replace(blocks=())


def test_block_output_shapes_follow_the_strides():
    cost = estimate_cost(movinet("a0"), frames=50, resolution=172, breakdown=True)
    shapes = {b.name: b.out_shape for b in cost.blocks}
    assert shapes["stem"] == (50, 86, 86, 8)
    assert shapes["s1.b1"] == (50, 43, 43, 8)
    assert shapes["s5.b4"] == (50, 6, 6, 104)
    assert shapes["classifier"] == (1, 1, 1, 600)


def test_params_do_not_depend_on_input_size():
    spec = movinet("a1")
    assert estimate_cost(spec, 8, 64).params == estimate_cost(spec, 50, 172).params


def test_num_classes_changes_only_the_output_layer():
    spec = movinet("a0")
    assert estimate_cost(spec, num_classes=10).params == 3_126_071 - (2048 + 1) * 590


def test_defaults_are_the_spec_input():
    spec = movinet("a3")
    assert estimate_cost(spec) == estimate_cost(spec, frames=120, resolution=256)


def test_costs_grow_with_frames_and_resolution():
    spec = movinet("a0")
    small, longer, wider = (estimate_cost(spec, 8, 64), estimate_cost(spec, 16, 64),
                            estimate_cost(spec, 8, 128))
    for big in (longer, wider):
        assert big.macs > small.macs
        assert big.activation_bytes > small.activation_bytes


def test_as_dict_is_json_ready():
    import json

    d = estimate_cost(movinet("a0"), 8, 64, breakdown=True).as_dict()
    again = json.loads(json.dumps(d))
    assert again["params"] == 3_126_071 and again["blocks"][0]["name"] == "stem"


def test_costing_does_not_import_tensorflow():
    code = ("import search_space, sys; search_space.estimate_cost(search_space.movinet('a0')); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_walk_se_widths_follow_make_divisible():
    for se_type, m in (("3d", 1), ("2plus3d", 2)):
        for ratio in (0.25, 0.3, 0.125):
            spec = movinet("a5").replace(se_type=se_type, se_ratio=ratio)
            for lp in walk(spec).layers:
                assert lp.se_in == m * lp.expand
                assert lp.se_hidden == make_divisible(ratio * lp.expand * m, 8)


def test_no_se_has_no_se_params():
    spec = movinet("a0")
    without = spec.replace(se_type="none")
    assert all(lp.se_in == 0 and lp.se_hidden == 0 for lp in walk(without).layers)
    assert estimate_cost(without).params < estimate_cost(spec).params


# -- properties over sampled specs ----------------------------------------------------------------


def sampled_specs(n: int = 150):
    """Specs of the paper space, half of them made causal (stream-style convs and SE)."""
    import numpy as np

    from search_space import SearchSpace

    space = SearchSpace.from_yaml("paper")
    rng = np.random.default_rng(2026)
    specs = []
    for i in range(n):
        spec = space.sample(rng)
        if i % 2:
            spec = spec.replace(causal=True, conv_type="2plus1d", se_type="2plus3d")
        specs.append(spec)
    return specs


SAMPLED = sampled_specs()


def _wider(spec, rng):
    """One stage 8 channels wider, or one block's expansion 8 wider."""
    stages = list(spec.stages)
    i = int(rng.integers(len(stages)))
    stage = stages[i]
    if rng.random() < 0.5:
        stages[i] = dataclasses.replace(stage, filters=stage.filters + 8)
    else:
        blocks = list(stage.blocks)
        j = int(rng.integers(len(blocks)))
        blocks[j] = dataclasses.replace(blocks[j], expand=blocks[j].expand + 8)
        stages[i] = dataclasses.replace(stage, blocks=tuple(blocks))
    return spec.replace(stages=tuple(stages))


def _deeper(spec, rng):
    """One more layer (a copy of a stage's last layer, stride 1) at the end of one stage."""
    stages = list(spec.stages)
    i = int(rng.integers(len(stages)))
    last = stages[i].blocks[-1]
    extra = dataclasses.replace(last, strides=(1, 1, 1))
    stages[i] = dataclasses.replace(stages[i], blocks=(*stages[i].blocks, extra))
    return spec.replace(stages=tuple(stages))


def test_costs_grow_with_width_and_depth():
    import numpy as np

    rng = np.random.default_rng(0)
    for spec in SAMPLED:
        base = estimate_cost(spec, 8, 64)
        for bigger in (_wider(spec, rng), _deeper(spec, rng)):
            big = estimate_cost(bigger, 8, 64)
            assert big.params > base.params
            assert big.macs > base.macs
            assert big.activation_bytes >= base.activation_bytes
            assert big.state_bytes >= base.state_bytes


def test_costs_grow_with_frames_and_resolution_for_sampled_specs():
    for spec in SAMPLED:
        base = estimate_cost(spec, 8, 64)
        for big in (estimate_cost(spec, 9, 64), estimate_cost(spec, 8, 80)):
            assert big.params == base.params
            assert big.macs > base.macs
            assert big.activation_bytes > base.activation_bytes
        # stream buffers hold a fixed number of frames: they grow with resolution, never with frames
        assert estimate_cost(spec, 9, 64).state_bytes == base.state_bytes
        assert estimate_cost(spec, 8, 80).state_bytes >= base.state_bytes


# -- the stream states the cost counts are the plan's -----------------------------------------------


def _elements(states) -> tuple[int, int]:
    """(float32, int32) elements of stream states, from their shapes."""
    import math

    floats = sum(math.prod(s.shape) for s in states if s.dtype == "float32")
    return floats, sum(math.prod(s.shape) for s in states) - floats


@settings(max_examples=80, deadline=None)
@given(i=st.integers(0, len(SAMPLED) + 2 * len(PRESETS) - 1), conv=st.sampled_from(CONV_TYPES),
       se=st.sampled_from(SE_TYPES), causal=st.booleans(), pe=st.booleans(), frames=st.integers(1, 64),
       resolution=st.integers(8, 320))
def test_costs_of_random_specs_count_the_states_of_the_full_walk(i, conv, se, causal, pe, frames, resolution):
    """Costing never builds the stream states; what it counts is what the walk's states hold, per layer
    and in total, for base and causal specs of every conv and SE type."""
    presets = [movinet(n, stream=s) for n in PRESETS for s in (False, True)]
    spec = (SAMPLED + presets)[i].replace(causal=causal, conv_type=conv, se_type=se,
                                          positional_encoding=causal and pe and se != "none")
    cost = estimate_cost(spec, frames, resolution, breakdown=True)
    plan = walk(spec, frames, resolution)
    floats, ints = _elements(plan.states)
    assert (cost.state_floats, cost.state_bytes, cost.state_tensors) == (floats, 4 * (floats + ints),
                                                                         len(plan.states))
    per_block = [4 * sum(_elements(lp.states)) for lp in plan.layers] + [4 * sum(_elements(plan.head_states))]
    assert [b.state_bytes for b in cost.blocks[1:-1]] == per_block
    assert bool(plan.states) == causal
    assert cost._replace(blocks=()) == estimate_cost(spec, frames, resolution)
