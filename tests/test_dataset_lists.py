"""Datasets from split files over a folder of videos: UCF101 lists with a class index, HMDB51's 0/1/2
split files, Kinetics CSVs with a path template. Every video and list is written by the test; missing and
corrupt files are skipped and counted; malformed lines are refused naming file and line (fuzzed)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.datasets import DatasetWarning, load_dataset, write_video
from evaluation.datasets.config import dataset_fields
from evaluation.datasets.lists import (
    hmdb51,
    kinetics_csv,
    parse_classes,
    parse_hmdb_split,
    parse_kinetics_csv,
    parse_split_list,
    split_list,
)

SMALL = {"frames": 2, "resolution": 8}
FUZZ = settings(max_examples=80, deadline=None, derandomize=True)


def video(path: Path, level: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, np.full((3, 16, 16, 3), level, np.uint8))


def quietly(fn, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]


@pytest.fixture(scope="module")
def ucf(tmp_path_factory) -> Path:
    """UCF-101/<class>/v_<class>_gNN.avi for three classes, ucfTrainTestlist/ with classInd and split 1."""
    root = tmp_path_factory.mktemp("ucf")
    classes = ["Jump", "Run", "Swim"]
    for c, name in enumerate(classes):
        for g in range(3):
            video(root / "UCF-101" / name / f"v_{name}_g{g:02d}.avi", 40 + 60 * c)
    (root / "UCF-101" / "Swim" / "v_Swim_g01.avi").write_bytes(b"not a video" * 50)  # corrupt
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\r\n" for i, n in enumerate(classes)))
    train = [f"{n}/v_{n}_g{g:02d}.avi {i + 1}" for i, n in enumerate(classes) for g in (0, 1)]
    (lists / "trainlist01.txt").write_text("\r\n".join([*train, "Run/v_Run_g09.avi 2"]) + "\r\n")  # g09: missing
    (lists / "testlist01.txt").write_text("".join(f"{n}/v_{n}_g02.avi\n" for n in classes))
    return root


def test_ucf101_lists_read_with_the_class_index_skipping_missing_and_corrupt_files(ucf):
    lists = ucf / "ucfTrainTestlist"
    ds, messages = quietly(split_list, lists / "trainlist01.txt", lists / "testlist01.txt", root=ucf / "UCF-101",
                           classes=lists / "classInd.txt", **SMALL)
    assert ds.class_names == ("Jump", "Run", "Swim") and ds.name == "trainlist01"
    assert sorted(ds.train.y.tolist()) == [0, 0, 1, 1, 2] and sorted(ds.val.y.tolist()) == [0, 1, 2]
    assert ds.train.x.shape == (5, 2, 8, 8, 3) and ds.frames == 2
    assert sorted(Path(p).name for p in ds.skipped) == ["v_Run_g09.avi", "v_Swim_g01.avi"]
    assert any("v_Run_g09.avi" in m for m in messages) and any("v_Swim_g01.avi" in m for m in messages)
    swim = ds.val.x[ds.val.y == 2]
    assert abs(float(swim.mean()) * 255 - 160) < 8  # the Swim video's grey level: labels follow the class index


def test_a_split_list_is_a_dataset_kind_with_paths_relative_to_the_config(ucf):
    assert {"train", "val", "root", "classes", "frames", "cache_dir", "val_fraction"} <= set(dataset_fields("split_list"))
    config = {"kind": "split_list", "train": "ucfTrainTestlist/trainlist01.txt", "root": "UCF-101",
              "classes": "ucfTrainTestlist/classInd.txt", "val_fraction": 0.5, **SMALL}
    ds, _ = quietly(load_dataset, config, base_dir=ucf)
    assert ds.num_classes == 3 and len(ds.train.y) + len(ds.val.y) == 5  # no val list: split per class
    with pytest.raises(ValueError, match=r"^dataset\.train: .*nothing\.txt: no such list"):
        load_dataset({**config, "train": "nothing.txt"}, base_dir=ucf)
    with pytest.raises(ValueError, match=r"^dataset\.train: missing"):
        load_dataset({"kind": "split_list"})


def test_a_list_whose_videos_are_all_missing_is_an_error_naming_the_first(ucf, tmp_path):
    lists = ucf / "ucfTrainTestlist"
    with pytest.raises(ValueError, match=r"no readable videos \(7 found, 7 unreadable; first: .*v_Jump_g00\.avi: "
                                         r"no such video file"):
        quietly(split_list, lists / "trainlist01.txt", root=tmp_path, classes=lists / "classInd.txt", **SMALL)


def test_hmdb51_split_files_train_on_flag_1_and_validate_on_flag_2(tmp_path):
    for c, name in enumerate(["brush_hair", "cartwheel"]):
        for i in range(4):
            video(tmp_path / "videos" / name / f"{name}_{i}.avi", 50 + 100 * c)
        flags = {0: 1, 1: 1, 2: 2, 3: 0}
        (tmp_path / "splits").mkdir(exist_ok=True)
        (tmp_path / "splits" / f"{name}_test_split1.txt").write_text(
            "".join(f"{name}_{i}.avi {f} \n" for i, f in flags.items()))
    ds, _ = quietly(hmdb51, tmp_path / "splits", tmp_path / "videos", **SMALL)
    assert ds.class_names == ("brush_hair", "cartwheel") and ds.name == "hmdb51-split1"
    assert sorted(ds.train.y.tolist()) == [0, 0, 1, 1] and sorted(ds.val.y.tolist()) == [0, 1]
    with pytest.raises(ValueError, match=r"no \*_test_split2\.txt files"):
        hmdb51(tmp_path / "splits", tmp_path / "videos", split=2)


def test_kinetics_csv_finds_clips_through_the_template(tmp_path):
    rows = ["label,youtube_id,time_start,time_end,split,is_cc"]
    for c, label in enumerate(["air drumming", "zumba"]):
        for i, split in enumerate(["train", "train", "validate"]):
            video(tmp_path / split / label / f"yt{c}{i}_{i * 10:06d}_{i * 10 + 10:06d}.mp4", 60 + 90 * c)
            rows.append(f"{label},yt{c}{i},{i * 10},{i * 10 + 10},{split},0")
    rows += ["zumba,missing1,5,15,train,0", ",test1,0,10,test,0"]
    (tmp_path / "k.csv").write_text("\n".join(rows) + "\n")
    ds, messages = quietly(kinetics_csv, tmp_path / "k.csv", **SMALL)
    assert ds.class_names == ("air drumming", "zumba")
    assert sorted(ds.train.y.tolist()) == [0, 0, 1, 1] and sorted(ds.val.y.tolist()) == [0, 1]
    assert [Path(p).name for p in ds.skipped] == ["missing1_000005_000015.mp4"] and len(messages) == 1
    flat = quietly(load_dataset, {"kind": "kinetics_csv", "source": "k.csv", "template": "{split}/{label}/"
                                  "{youtube_id}_{time_start:06d}_{time_end:06d}.mp4", **SMALL}, base_dir=tmp_path)[0]
    assert flat.class_names == ds.class_names
    with pytest.raises(ValueError, match=r"^template: '\{nope\}/x\.mp4' is not a path template"):
        kinetics_csv(tmp_path / "k.csv", template="{nope}/x.mp4")


# -- malformed input: one line naming file and line, never another exception ----------------------


def test_class_folders_match_the_class_index_whatever_their_case():
    classes = parse_classes("1 HandStandPushups\n2 Jump\n", "c.txt")  # UCF101's folder is HandstandPushups
    items = parse_split_list("HandstandPushups/v_1.avi\nJump/v_2.avi 2\n", "l.txt", Path("r"), classes)
    assert [label for _, label in items] == ["HandStandPushups", "Jump"]
    assert items[0][0] == Path("r/HandstandPushups/v_1.avi")


def test_malformed_lines_are_named_by_file_and_line():
    with pytest.raises(ValueError, match=r"^l\.txt:2: expected 'path label' or 'path'"):
        parse_split_list("a/b.avi 1\na/c.avi 1 extra\n", "l.txt", Path("."), None)
    with pytest.raises(ValueError, match=r"^l\.txt:1: class '7' is not in the class-index file"):
        parse_split_list("a/b.avi 7\n", "l.txt", Path("."), parse_classes("1 a\n2 b\n", "c.txt"))
    with pytest.raises(ValueError, match=r"^l\.txt:1: 'b\.avi' has no label and no class folder"):
        parse_split_list("b.avi\n", "l.txt", Path("."), None)
    with pytest.raises(ValueError, match=r"^s\.txt:1: expected 'VIDEO FLAG' with FLAG 0, 1 or 2"):
        parse_hmdb_split("x.avi 3\n", "s.txt")
    with pytest.raises(ValueError, match=r"^k\.csv:2: time_end 5 is not after time_start 10"):
        parse_kinetics_csv("label,youtube_id,time_start,time_end,split\na,b,10,5,train\n", "k.csv")
    with pytest.raises(ValueError, match=r"^k\.csv:1: header lacks split"):
        parse_kinetics_csv("label,youtube_id,time_start,time_end\n", "k.csv")


LINE = st.text(st.sampled_from("ab/._ 0123\t#-,\"é\x00"), max_size=24)


def one_line_or_parsed(parse, *args) -> None:
    try:
        parse(*args)
    except ValueError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(args[1])


@FUZZ
@given(st.lists(LINE, max_size=6), st.lists(LINE, max_size=4))
def test_fuzzed_split_lists_and_class_files_parse_or_name_the_line(lines, class_lines):
    classes = None
    try:
        classes = parse_classes("\n".join(class_lines), "c.txt")
    except ValueError as exc:
        assert str(exc).startswith("c.txt") and "\n" not in str(exc)
    one_line_or_parsed(parse_split_list, "\n".join(lines), "l.txt", Path("root"), classes)
    one_line_or_parsed(parse_hmdb_split, "\n".join(lines), "s.txt")


@FUZZ
@given(st.lists(st.lists(LINE, min_size=4, max_size=6), max_size=5))
def test_fuzzed_kinetics_rows_parse_or_name_the_line(rows):
    text = "label,youtube_id,time_start,time_end,split\n" + "\n".join(",".join(r) for r in rows)
    one_line_or_parsed(parse_kinetics_csv, text, "k.csv")
