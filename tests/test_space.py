"""SearchSpace: built-in spaces, sampling through Optuna and seeded RNGs, decode, size, validation."""

from __future__ import annotations

import copy
import itertools
import random

import numpy as np
import optuna
import pytest

from search_space import ArchSpec, SearchSpace, SpecError, estimate_cost, movinet

optuna.logging.set_verbosity(optuna.logging.WARNING)

PAPER = SearchSpace.from_yaml("paper")
SMALL = SearchSpace.from_yaml("small")

# 1 stage of depth 1-2, 2 kernels, 2 expansion ratios (16 -> 32 or 48 channels), 2 frame counts:
# per depth 1: 2*2 = 4 layers, depth 2: 4*4 = 16 sequences, so 20 per frame count, 40 in all.
TINY = """
frames: [8, 16]
resolution: 32
stem: {width: 8}
stages:
  - {width: 16, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2, 3]}
head: {filters: 32, hidden: 16}
"""


def _distinct_specs(space: SearchSpace) -> set[ArchSpec]:
    choices = space.param_choices()
    return {space.decode(dict(zip(choices, values))) for values in itertools.product(*choices.values())}


# -- built-in spaces ----------------------------------------------------------------------------


def test_builtin_spaces_load_by_name_and_the_paper_space_is_the_default():
    assert SearchSpace.from_yaml() == PAPER
    assert PAPER.name == "paper" and SMALL.name == "small"
    for space in (PAPER, SMALL):
        spec = space.sample(0)
        assert isinstance(spec, ArchSpec) and spec.name == "sampled"


def test_paper_space_is_the_papers_space():
    assert [PAPER.stem.width] + [s.width for s in PAPER.stages] == [16, 24, 48, 96, 96, 192]
    kernels = {"1x3x3", "1x5x5", "1x7x7", "5x1x1", "7x1x1", "3x3x3", "5x3x3"}
    for i, st in enumerate(PAPER.stages):
        assert st.depth == (1, 10)
        assert st.width_mult == (0.75, 1.0, 1.25)
        assert {"x".join(map(str, k)) for k in st.kernels} == kernels
        assert min(st.expand_ratios) == 1.5 and max(st.expand_ratios) == 4.0
        assert st.strides == ((1, 1, 1) if i == 3 else (1, 2, 2))
    assert PAPER.options["se_type"] == ("3d",)
    assert PAPER.size() > 10**80


def test_small_space_grid_fits_grid_sampler_and_samples_are_tiny():
    assert SMALL.grid_size() < 50_000
    for seed in range(20):
        cost = estimate_cost(SMALL.sample(seed), frames=8, resolution=48)
        assert cost.macs < 30e6


def test_from_yaml_reads_a_file_and_text(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(TINY)
    assert SearchSpace.from_yaml(path) == SearchSpace.from_yaml(str(path)) == SearchSpace.from_yaml(TINY)


def test_unknown_space_name_and_missing_file_name_the_allowed_values():
    with pytest.raises(SpecError, match=r"'papr': not a built-in space \(paper, small"):
        SearchSpace.from_yaml("papr")
    with pytest.raises(SpecError, match="nope.yaml: no such file"):
        SearchSpace.from_yaml("nope.yaml")


# -- sampling -----------------------------------------------------------------------------------


def test_sample_is_deterministic_for_a_seed():
    assert PAPER.sample(7) == PAPER.sample(7)
    assert PAPER.sample(random.Random(7)) == PAPER.sample(random.Random(7))
    assert PAPER.sample(np.random.default_rng(7)) == PAPER.sample(np.random.default_rng(7))
    assert len({PAPER.sample(seed) for seed in range(20)}) == 20


def test_sample_rejects_an_unknown_source():
    with pytest.raises(SpecError, match="Optuna trial, a numpy Generator, a random.Random or an int seed"):
        PAPER.sample("seed")


def _objective(space: SearchSpace, n_objectives: int):
    def objective(trial: optuna.Trial):
        spec = space.sample(trial)
        trial.set_user_attr("spec", spec.to_yaml())
        cost = estimate_cost(spec)
        return (cost.macs, cost.params) if n_objectives == 2 else cost.macs

    return objective


@pytest.mark.parametrize("sampler_name", ["random", "tpe", "nsga2", "grid"])
def test_optuna_trials_suggest_the_same_parameter_names_and_decode_to_the_sampled_spec(
        sampler_name, tmp_path):
    space = SMALL if sampler_name == "grid" else PAPER
    sampler = {
        "random": lambda: optuna.samplers.RandomSampler(seed=0),
        "tpe": lambda: optuna.samplers.TPESampler(seed=0, n_startup_trials=5),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=0, population_size=6),
        "grid": lambda: optuna.samplers.GridSampler(space.param_choices(), seed=0),
    }[sampler_name]()
    n_objectives = 2 if sampler_name == "nsga2" else 1
    # through SQLite for two samplers: stored parameters must decode to the same spec
    storage = f"sqlite:///{tmp_path / 'study.db'}" if sampler_name in ("tpe", "grid") else None
    study = optuna.create_study(storage=storage, sampler=sampler, directions=["minimize"] * n_objectives)
    study.optimize(_objective(space, n_objectives), n_trials=16)

    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 16
    depths = set()
    for t in trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert list(t.params) == list(space.param_choices())  # static: masked slots suggested too
        spec = ArchSpec.from_yaml(t.user_attrs["spec"])
        assert space.decode(t.params) == spec
        assert space.sample(t) == spec  # a FrozenTrial replays its parameters
        depths.add(spec.num_layers)
    assert len(depths) > 1  # the depths did vary while the names stayed the same


def test_searched_options_become_parameters_named_after_the_field():
    data = SMALL.to_dict()
    data["conv_type"] = ["3d", "2plus1d"]
    space = SearchSpace.from_dict(data)
    assert space.param_choices()["conv_type"] == ["3d", "2plus1d"]
    assert {space.sample(seed).conv_type for seed in range(30)} == {"3d", "2plus1d"}
    assert "conv_type" not in SMALL.param_choices()  # fixed axes are not parameters


# -- decode -------------------------------------------------------------------------------------


def test_masked_slots_do_not_change_the_architecture():
    params = PAPER.nearest(PAPER.sample(3))
    params["s2_depth"] = 2
    base = PAPER.decode(params)
    for kernel, ratio in [("7x1x1", 1.5), ("1x3x3", 4.0)]:
        changed = dict(params, s2_b3_kernel=kernel, s2_b3_expand=ratio, s2_b10_kernel=kernel)
        assert PAPER.decode(changed) == base
    unused = [k for k in params if k.startswith("s2_b") and int(k.split("_")[1][1:]) > 2]
    assert PAPER.decode({k: v for k, v in params.items() if k not in unused}) == base
    assert PAPER.decode(dict(params, s2_b2_kernel="7x1x1")) != base  # a used slot does


def test_decode_names_a_missing_or_foreign_parameter():
    params = PAPER.nearest(PAPER.sample(0))
    with pytest.raises(SpecError, match=r"params.s3_depth: missing, must be one of \[1, 2"):
        PAPER.decode({k: v for k, v in params.items() if k != "s3_depth"})
    with pytest.raises(SpecError, match=r"params.s1_b1_kernel: '9x9x9', must be one of \['1x3x3'"):
        PAPER.decode(dict(params, s1_b1_kernel="9x9x9"))
    assert PAPER.decode(dict(params, learning_rate=0.1)) == PAPER.decode(params)  # extras ignored


def test_decode_scales_widths_and_expansions_to_multiples_of_8():
    params = PAPER.nearest(PAPER.sample(0))
    params.update(width_mult=0.75, stem_width_mult=0.75, s3_width_mult=1.25, s3_depth=1, s3_b1_expand=2.5,
                  s5_width_mult=1.0)
    spec = PAPER.decode(params)
    assert spec.stem.filters == 16  # 16 * 0.75 * 0.75 = 9 -> 8 is more than 10% below, so 16
    assert spec.stages[2].filters == 88  # 96 * 0.75 * 1.25 = 90 -> 88
    assert spec.stages[2].blocks[0].expand == 224  # 2.5 * 88 = 220 -> 224
    assert spec.stages[2].blocks[0].strides == (1, 2, 2)
    assert spec.stages[4].filters == 144 and spec.head.filters == 640  # 4.45 * 144 = 640.8 -> 640
    assert spec.head.hidden == 2048


# -- size ---------------------------------------------------------------------------------------


def test_size_counts_the_distinct_architectures_of_a_hand_countable_space():
    space = SearchSpace.from_yaml(TINY)
    assert space.size() == 40
    assert space.grid_size() == 2 * 2 * (2 * 2) ** 2  # frames, depth, two slots of kernel x ratio
    assert len(_distinct_specs(space)) == 40


def test_size_counts_choices_that_round_to_the_same_width_once():
    # 16 * 1.1 = 17.6 and 16 * 2.2 = 35.2 round to 16 and 32, the same as multiplier 1 and ratio 2
    data = SearchSpace.from_yaml(TINY).to_dict()
    data["width_mult"] = [1.0, 1.1]
    data["stages"][0]["expand_ratios"] = [2.0, 2.2, 3.0]
    space = SearchSpace.from_dict(data)
    assert space.size() == 40
    assert len(_distinct_specs(space)) == 40
    assert space.grid_size() == 2 * 2 * 2 * (2 * 3) ** 2


def test_small_space_size_equals_its_enumerated_distinct_specs():
    assert SMALL.size() == len(_distinct_specs(SMALL)) == 6400


def test_grid_sampler_enumerates_every_architecture_of_the_space():
    space = SearchSpace.from_yaml(TINY)
    study = optuna.create_study(sampler=optuna.samplers.GridSampler(space.param_choices(), seed=1))
    study.optimize(lambda t: estimate_cost(space.sample(t)).macs, n_trials=space.grid_size())
    assert len({space.decode(t.params) for t in study.trials}) == space.size()


# -- presets ------------------------------------------------------------------------------------


def test_nearest_point_of_a_preset_reproduces_a2_widths_and_a0_to_a2_costs_within_10_percent():
    a2 = PAPER.decode(PAPER.nearest(movinet("a2")))
    ref = movinet("a2")
    assert a2.stem.filters == ref.stem.filters
    assert [s.filters for s in a2.stages] == [s.filters for s in ref.stages]
    assert [len(s.blocks) for s in a2.stages] == [len(s.blocks) for s in ref.stages]
    assert a2.head == ref.head and (a2.frames, a2.resolution) == (50, 224)
    for name in ("a0", "a1", "a2"):
        preset = movinet(name)
        near = estimate_cost(PAPER.decode(PAPER.nearest(preset)))
        cost = estimate_cost(preset)
        assert abs(near.params / cost.params - 1) < 0.10
        assert abs(near.macs / cost.macs - 1) < 0.10


def test_presets_a0_to_a2_lie_inside_the_paper_space_cost_spread():
    costs = [estimate_cost(PAPER.sample(seed)) for seed in range(300)]
    for name in ("a0", "a1", "a2"):
        cost = estimate_cost(movinet(name))
        for field in ("params", "macs", "activation_bytes"):
            values = [getattr(c, field) for c in costs]
            assert min(values) < getattr(cost, field) < max(values), (name, field)


# -- validation, equality, diff -----------------------------------------------------------------


BAD = [
    (lambda d: d["stages"][1].update(kernals=["3x3x3"]),
     r"stages\[1\].kernals: unknown field, allowed: width, width_mult, depth, strides, kernels"),
    (lambda d: d.update(frame=[8]), r"^frame: unknown field, allowed: name, frames, resolution"),
    (lambda d: d["stem"].update(widht=8), r"stem.widht: unknown field"),
    (lambda d: d["stages"][0].update(kernels=[]), r"stages\[0\].kernels: empty, must list at least one"),
    (lambda d: d["stages"][1].update(depth=[3, 2]), r"stages\[1\].depth: \[3, 2\], min must be <= max"),
    (lambda d: d["stages"][1].update(depth=[0, 2]), r"stages\[1\].depth\[0\]: 0, must be an integer in \[1, 32\]"),
    (lambda d: d["stages"][2].update(width=-8), r"stages\[2\].width: -8, must be an integer in \[1, 100000\]"),
    (lambda d: d["stages"][0].update(kernels=["3x3x3", "3x3"]),
     r"stages\[0\].kernels\[1\]: '3x3', must be 'TxHxW' or \[t, h, w\] \(three integers in \[1, 64\]"),
    (lambda d: d["stages"][0].update(kernels=["3x3x3", "3x3x3"]), r"stages\[0\].kernels\[1\]: '3x3x3' listed twice"),
    (lambda d: d["stages"][0].update(expand_ratios=[2, -1]), r"stages\[0\].expand_ratios\[1\]: -1, must be a number in \(0, 100.0\]"),
    (lambda d: d.update(width_mult=0), r"^width_mult: 0, must be a number in \(0, 100.0\]"),
    (lambda d: d.update(frames=[8, 8.5]), r"frames\[1\]: 8.5, must be an integer in \[1, 10000\]"),
    (lambda d: d.update(stages=[]), r"stages: \[\], must be a non-empty list"),
    (lambda d: d["stages"][0].pop("depth"), r"stages\[0\].depth: missing"),
    (lambda d: d.update(activation=["swish", "gelu"]),
     r"activation\[1\]: 'gelu', must be one of swish, hard_swish, relu"),
    (lambda d: d.update(dropout=1.5), r"^dropout: 1.5, must be a number in \[0.0, 1.0\)"),
    (lambda d: d.update(causal=[False, True], positional_encoding=True),
     r"positional_encoding: true needs causal: true \(in the combination causal: False\)"),
    (lambda d: d.update(causal=True) or d["stages"][0].update(strides="2x2x2"), r"stages\[0\].strides: temporal stride 2, must be 1 when causal"),
    (lambda d: d["head"].update(filters=64), r"head: give filters or ratio, not both"),
]


@pytest.mark.parametrize("mutate,message", BAD, ids=[m for _, m in BAD])
def test_bad_space_gives_spec_error_naming_the_field_path(mutate, message):
    data = copy.deepcopy(SMALL.to_dict())
    mutate(data)
    with pytest.raises(SpecError, match=message):
        SearchSpace.from_dict(data)


def test_bad_yaml_file_error_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(TINY.replace("kernels:", "kernals:"))
    with pytest.raises(SpecError, match=r"space.yaml: stages\[0\].kernals: unknown field"):
        SearchSpace.from_yaml(path)
    path.write_text("stages: [\n")
    with pytest.raises(SpecError, match="space.yaml: not valid YAML"):
        SearchSpace.from_yaml(path)


def test_to_dict_and_yaml_round_trip_to_an_equal_space():
    for space in (PAPER, SMALL):
        assert SearchSpace.from_dict(space.to_dict()) == space
        assert SearchSpace.from_yaml(space.to_yaml()) == space
        assert space.diff(SearchSpace.from_yaml(space.to_yaml())) == []


def test_defaults_fill_the_canonical_dict():
    space = SearchSpace.from_yaml(TINY)
    d = space.to_dict()
    assert d["stem"] == {"width": 8, "width_mult": [1.0], "kernel": "1x3x3", "strides": "1x2x2"}
    assert d["stages"][0]["width_mult"] == [1.0] and d["width_mult"] == [1.0]
    assert d["conv_type"] == ["3d"] and d["causal"] == [False] and d["se_ratio"] == [0.25]
    assert SearchSpace.from_dict(d) == space


def test_diff_names_each_changed_field():
    data = SMALL.to_dict()
    data["stages"][1]["depth"] = [1, 3]
    data["frames"] = [8, 16]
    other = SearchSpace.from_dict(data)
    assert other != SMALL
    assert SMALL.diff(other) == ["frames: [8] vs [8, 16]", "stages[1].depth: [1, 2] vs [1, 3]"]
    data["stages"] = data["stages"][:2]
    assert "stages: 3 entries vs 2 entries" in SMALL.diff(SearchSpace.from_dict(data))
