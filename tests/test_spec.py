"""ArchSpec: equality-preserving dict / YAML round trips, validation naming the field path, immutability."""

import dataclasses

import pytest

from search_space import PRESETS, ArchSpec, Block, SpecError, Stage, movinet

ALL_PRESETS = [(name, stream) for name in PRESETS for stream in (False, True)]


def a0_dict() -> dict:
    return movinet("a0").to_dict()


@pytest.mark.parametrize("name,stream", ALL_PRESETS)
def test_dict_round_trip_preserves_equality(name, stream):
    spec = movinet(name, stream=stream)
    assert ArchSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("name,stream", ALL_PRESETS)
def test_yaml_text_round_trip_preserves_equality(name, stream):
    spec = movinet(name, stream=stream)
    again = ArchSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert hash(again) == hash(spec)


def test_yaml_file_round_trip(tmp_path):
    spec = movinet("a2", stream=True)
    path = tmp_path / "a2s.yaml"
    path.write_text(spec.to_yaml())
    assert ArchSpec.from_yaml(path) == spec
    assert ArchSpec.from_yaml(str(path)) == spec


def test_to_dict_is_plain_yaml_layout():
    d = movinet("a0").to_dict()
    assert d["stages"][0]["blocks"][0] == {"expand": 24, "kernel": [1, 5, 5], "strides": [1, 2, 2]}
    assert d["stem"]["filters"] == 8 and d["head"] == {"filters": 480, "hidden": 2048}


def test_kernel_shorthands_parse_to_the_same_spec():
    d = a0_dict()
    d["stages"][1]["blocks"][1]["kernel"] = "3x3x3"
    d["stages"][1]["blocks"][2]["kernel"] = 3
    assert ArchSpec.from_dict(d) == movinet("a0")


def test_temporal_kernel_zero_names_path_and_bound():
    d = a0_dict()
    d["stages"][2]["blocks"][1]["kernel"] = [0, 3, 3]
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(d)
    assert str(err.value) == "stages[2].blocks[1].kernel: temporal size: 0, must be an integer in [1, 64]"


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


def test_unknown_field_names_path_and_allowed_fields():
    d = a0_dict()
    d["stages"][1]["blocks"][0]["kernal"] = d["stages"][1]["blocks"][0].pop("kernel")
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(d)
    msg = str(err.value)
    assert msg.startswith("stages[1].blocks[0].kernal: unknown field")
    assert "expand, kernel, strides" in msg


def test_unknown_top_level_field_lists_allowed_fields():
    d = a0_dict()
    d["se_typ"] = "3d"
    with pytest.raises(SpecError, match=r"^se_typ: unknown field, allowed: .*se_type"):
        ArchSpec.from_dict(d)


def test_yaml_error_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(movinet("a0").to_yaml().replace("hidden", "hiden"))
    with pytest.raises(SpecError, match=r"bad\.yaml: head\.hiden: unknown field, allowed: filters, hidden"):
        ArchSpec.from_yaml(path)


def test_empty_stage_is_rejected():
    d = a0_dict()
    d["stages"][3]["blocks"] = []
    with pytest.raises(SpecError, match=r"^stages\[3\]\.blocks: empty stage"):
        ArchSpec.from_dict(d)


def test_no_stages_is_rejected():
    d = a0_dict()
    d["stages"] = []
    with pytest.raises(SpecError, match=r"^stages: empty"):
        ArchSpec.from_dict(d)


@pytest.mark.parametrize("path,setter", [
    ("stem.filters", lambda d: d["stem"].__setitem__("filters", -8)),
    ("stages[1].filters", lambda d: d["stages"][1].__setitem__("filters", -32)),
    ("stages[4].blocks[2].expand", lambda d: d["stages"][4]["blocks"][2].__setitem__("expand", -280)),
    ("head.filters", lambda d: d["head"].__setitem__("filters", -480)),
])
def test_negative_width_names_field_and_bound(path, setter):
    d = a0_dict()
    setter(d)
    with pytest.raises(SpecError) as err:
        ArchSpec.from_dict(d)
    assert str(err.value).startswith(f"{path}: -")
    assert str(err.value).endswith("must be an integer in [1, 100000]")


def test_bad_choice_lists_allowed_values():
    with pytest.raises(SpecError, match=r"^conv_type: '4d', must be one of 3d, 2plus1d, 3d_2plus1d$"):
        movinet("a0").replace(conv_type="4d")


def test_causal_spec_rejects_temporal_stride():
    d = movinet("a0", stream=True).to_dict()
    d["stages"][0]["blocks"][0]["strides"] = [2, 2, 2]
    with pytest.raises(SpecError, match=r"^stages\[0\]\.blocks\[0\]\.strides: temporal stride 2, must be 1"):
        ArchSpec.from_dict(d)


def test_spec_is_frozen_and_hashable():
    spec = movinet("a1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stages[0].blocks[0].expand = 1
    assert len({spec, movinet("a1"), movinet("a1", stream=True)}) == 2


def test_lists_are_stored_as_tuples():
    stage = Stage(filters=8, blocks=[Block(expand=16, kernel=[3, 3, 3])])
    assert stage.blocks[0].kernel == (3, 3, 3)
    assert isinstance(stage.blocks, tuple)
    hash(stage)


def test_replace_validates():
    with pytest.raises(SpecError, match=r"^frames: 0, must be an integer in \[1, 10000\]"):
        movinet("a0").replace(frames=0)
