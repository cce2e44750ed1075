"""MoViNet A0-A5 presets reproduce the reference parameter counts and stream-state sizes exactly
(shared/reference/movinet.md: Keras count_params, 600 classes)."""

import pytest

from search_space import PRESETS, SpecError, estimate_cost, movinet, preset_from_name

BASE = {"a0": 3_126_071, "a1": 4_717_912, "a2": 5_280_922, "a3": 7_443_289, "a4": 11_422_727,
        "a5": 18_763_355}
STREAM_NO_PE = {"a0": 3_765_983, "a1": 6_481_560, "a2": 7_366_050, "a3": 11_043_113, "a4": 18_228_279,
                "a5": 31_636_675}
STREAM_PE = {"a0": 3_765_998, "a1": 6_481_584, "a2": 7_366_076, "a3": 11_043_146, "a4": 18_228_326,
             "a5": 31_636_734}
# float elements of the stream state (2plus1d, 2plus3d, no PE, batch 1, paper resolution), tensors
STATE = {"a0": (674_192, 43), "a1": (1_220_560, 67), "a2": (2_707_088, 73), "a3": (4_568_880, 91),
         "a4": (12_350_080, 131), "a5": (18_773_392, 163)}
PAPER_INPUT = {"a0": (50, 172), "a1": (50, 172), "a2": (50, 224), "a3": (120, 256), "a4": (80, 290),
               "a5": (120, 320)}


def test_all_six_presets_exist():
    assert PRESETS == ("a0", "a1", "a2", "a3", "a4", "a5")


@pytest.mark.parametrize("name", PRESETS)
def test_base_params_match_reference(name):
    assert estimate_cost(movinet(name), num_classes=600).params == BASE[name]


@pytest.mark.parametrize("name", PRESETS)
def test_stream_params_without_positional_encoding_match_reference(name):
    spec = movinet(name, stream=True, positional_encoding=False)
    assert estimate_cost(spec).params == STREAM_NO_PE[name]


@pytest.mark.parametrize("name", PRESETS)
def test_stream_params_with_positional_encoding_match_reference(name):
    spec = movinet(name, stream=True, positional_encoding=True)
    assert estimate_cost(spec).params == STREAM_PE[name]


@pytest.mark.parametrize("name", PRESETS)
def test_stream_state_floats_and_tensors_match_reference(name):
    spec = movinet(name, stream=True, positional_encoding=False)
    cost = estimate_cost(spec)
    assert (cost.state_floats, cost.state_tensors) == STATE[name]


@pytest.mark.parametrize("name", PRESETS)
def test_presets_carry_the_paper_input(name):
    spec = movinet(name)
    assert (spec.frames, spec.resolution) == PAPER_INPUT[name]


def test_positional_encoding_defaults_on_for_a3_to_a5_stream():
    assert [movinet(n, stream=True).positional_encoding for n in PRESETS] == [False] * 3 + [True] * 3


def test_stream_presets_use_the_official_stream_options():
    spec = movinet("a2", stream=True)
    assert (spec.causal, spec.conv_type, spec.se_type) == (True, "2plus1d", "2plus3d")
    assert (spec.activation, spec.gating_activation) == ("hard_swish", "hard_sigmoid")
    assert movinet("a1", stream=True).classifier_activation == "hard_swish"
    assert movinet("a2", stream=True).classifier_activation == "swish"


def test_a0_breakdown_matches_reference():
    cost = estimate_cost(movinet("a0"), breakdown=True)
    by_name = {b.name: b.params for b in cost.blocks}
    assert by_name["stem"] == 248
    stages = [sum(b.params for b in cost.blocks if b.name.startswith(f"s{i}.")) for i in range(1, 6)]
    assert stages == [1_721, 34_443, 115_251, 183_988, 524_092]
    assert by_name["head"] == 51_840
    assert by_name["classifier"] == 985_088 + 1_229_400  # hidden dense, output dense
    assert by_name["stem"] + sum(stages) + by_name["head"] + by_name["classifier"] == 3_126_071


@pytest.mark.parametrize("text,name", [
    ("a0", "movinet-a0"),
    ("A3", "movinet-a3"),
    ("a2-stream", "movinet-a2-stream"),
    ("movinet-a3-stream", "movinet-a3-stream"),
    ("movinet-a5", "movinet-a5"),
])
def test_preset_from_name(text, name):
    assert preset_from_name(text).name == name


def test_stream_name_gives_the_stream_variant():
    assert preset_from_name("a2-stream") == movinet("a2", stream=True)


@pytest.mark.parametrize("text", ["a6", "b0", "a9-stream", ""])
def test_unknown_preset_lists_allowed(text):
    with pytest.raises(SpecError) as err:
        preset_from_name(text)
    assert "a0, a1, a2, a3, a4, a5" in str(err.value)
    assert isinstance(err.value, ValueError)
