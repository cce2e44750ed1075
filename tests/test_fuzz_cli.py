"""Fuzzing the command line in-process (`nas.cli.main`) and, for a few cases, as a real process: bad
files, flags, study names and storage URLs end in exit 2 and one `movinas CMD: error:` line; no
traceback, nothing written outside the results folder."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.cli import main
from tests.fuzz_cases import RAW_FILES, check_cli

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FAST = {"space": "small", "num_classes": 4, "objectives": [{"minimize": "flops"}, {"minimize": "params"}],
        "sampler": "random", "trials": 1}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

FLAG_VALUES = st.one_of(
    st.sampled_from(["0", "-1", "-5", "1e9", "nan", "inf", "-inf", "", " ", "1.5", "abc", "99999999999999999999",
                     "3x3", "\u00e9", "x" * 400, "100000", "0x10"]),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)


def run(capsys, *args) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    return code, capsys.readouterr().err


def expect_usage_error(capsys, *args) -> str:
    code, err = run(capsys, *args)
    check_cli(code, err)
    return err


@FUZZ
@given(flag=st.sampled_from(["--frames", "--resolution", "--classes"]), value=FLAG_VALUES)
def test_cost_flags_are_accepted_or_one_error_line(capsys, flag, value):
    code, err = run(capsys, "cost", "a0", flag, value)
    if code != 0:
        check_cli(code, err)


@FUZZ
@given(flag=st.sampled_from(["--seed", "--frames", "--resolution", "--samples"]), value=FLAG_VALUES)
def test_screen_flags_are_accepted_or_one_error_line(capsys, flag, value):
    args = ["screen", "small", flag, value] + (["--samples", "3"] if flag != "--samples" else [])
    try:
        big = flag == "--samples" and int(value) > 50
    except ValueError:
        big = False
    if big:  # a valid, merely long screening: not what is fuzzed here
        return
    code, err = run(capsys, *args)
    if code != 0:
        check_cli(code, err)


@pytest.mark.parametrize("name", sorted(RAW_FILES))
@pytest.mark.parametrize("command", ["cost", "screen", "search"])
def test_raw_bad_files_exit_2_with_one_line(capsys, tmp_path, name, command):
    if command == "search" and name in ("empty.yaml", "only_comment.yaml"):
        return  # an empty search config is every default: a valid (long) search
    path = tmp_path / name
    path.write_bytes(RAW_FILES[name])
    extra = {"screen": ["--samples", "3"], "search": ["--results-dir", tmp_path / "results"]}.get(command, [])
    expect_usage_error(capsys, command, path, *extra)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("command", ["cost", "screen", "search", "report"])
def test_a_directory_where_a_file_belongs_exits_2(capsys, tmp_path, command):
    (tmp_path / "empty").mkdir()
    expect_usage_error(capsys, command, tmp_path / "empty")


def test_a_very_long_name_exits_2(capsys):
    for command in ("cost", "screen"):
        err = expect_usage_error(capsys, command, "a" * 5000)
        assert len(err) < 400


@pytest.mark.parametrize("study", ["../escape", "/abs/path", "a/b/c", "", "..", ".", "x\\y", "-rf", "x\x00y"])
def test_a_study_name_is_a_name_from_the_cli(capsys, write_config, tmp_path, study):
    cfg = write_config(FAST)
    results = tmp_path / "results"
    before = set(tmp_path.parent.iterdir())
    expect_usage_error(capsys, "search", cfg, "--study", study, "--results-dir", results)
    assert set(tmp_path.parent.iterdir()) == before and not results.exists()


@pytest.mark.parametrize("study", ["..", "../up", "/abs", "a/b", "", " ", 5, None, ["x"]])
def test_a_study_name_is_a_name_from_the_config(capsys, write_config, tmp_path, study):
    cfg = write_config({**FAST, "study": study})
    expect_usage_error(capsys, "search", cfg, "--results-dir", tmp_path / "results")
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("flag, value", [
    ("--storage", ""), ("--storage", "sqlite://"), ("--storage", "sqlite:///"), ("--storage", "sqlite:///:memory:"),
    ("--storage", "not a url"), ("--storage", "redis://host/0"), ("--timeout", "nan"), ("--timeout", "inf"),
    ("--timeout", "-1"), ("--timeout", "0"), ("--trials", "-1"), ("--workers", "0"), ("--workers", "100000"),
])
def test_search_flags_that_would_fall_back_or_crash_exit_2(capsys, write_config, tmp_path, flag, value):
    cfg = write_config(FAST)
    err = expect_usage_error(capsys, "search", cfg, flag, value, "--results-dir", tmp_path / "results")
    assert flag in err or "storage" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("storage", ["sqlite://", "", "sqlite:///", "mongodb://x"])
def test_a_config_storage_must_be_a_database_url(capsys, write_config, tmp_path, storage):
    cfg = write_config({**FAST, "storage": storage})
    expect_usage_error(capsys, "search", cfg, "--results-dir", tmp_path / "results")


def test_a_failed_start_leaves_no_database(capsys, write_config, tmp_path):
    cfg = write_config({**FAST, "study": "nodata", "objectives": ["val_accuracy"],
                        "dataset": {"kind": "video_folder", "source": str(tmp_path / "missing")}})
    expect_usage_error(capsys, "search", cfg, "--results-dir", tmp_path / "results")
    assert not (tmp_path / "results" / "nodata").exists()


def test_a_failed_sampler_start_leaves_no_database(capsys, write_config, tmp_path):
    cfg = write_config({**FAST, "study": "badopt", "sampler": {"name": "tpe", "options": {"n_startup_trials": -1}}})
    err = expect_usage_error(capsys, "search", cfg, "--results-dir", tmp_path / "results")
    assert "sampler.options.n_startup_trials: -1" in err
    assert not (tmp_path / "results" / "badopt").exists()


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    import yaml

    root = tmp_path_factory.mktemp("fuzzcli")
    cfg = root / "made.yaml"
    cfg.write_text(yaml.safe_dump({**FAST, "study": "made", "trials": 2}))
    assert main(["search", str(cfg), "--results-dir", str(root / "results")]) == 0
    return root / "results" / "made"


def test_report_refuses_empty_objectives(capsys, study_dir):
    expect_usage_error(capsys, "report", study_dir, "--objectives", "")


def test_report_out_under_a_file_exits_2(capsys, study_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    expect_usage_error(capsys, "report", study_dir, "--out", tmp_path / "file" / "sub")


def test_export_out_naming_a_file_exits_2(capsys, study_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    expect_usage_error(capsys, "export", study_dir, "--trial", "0", "--format", "yaml", "--out", tmp_path / "file")


def test_predict_refuses_an_absurd_resolution_before_reading_anything(capsys, tmp_path):
    err = expect_usage_error(capsys, "predict", tmp_path / "no-model", tmp_path / "no-video.mp4",
                             "--resolution", "100000")
    assert "--resolution: 100000" in err


@pytest.mark.parametrize("args", [
    ["cost", "{path}"], ["search", "{path}"], ["screen", "small", "--seed", "-1"], ["screen", "{path}"],
])
def test_as_a_real_process_bad_input_gives_one_line_and_exit_2(tmp_path, args):
    path = tmp_path / "bad.yaml"
    path.write_bytes(RAW_FILES["utf16.yaml"])
    cmd = [sys.executable, "-m", "nas", *(a.format(path=path) for a in args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp_path)
    check_cli(done.returncode, done.stderr)
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("name", ["junk.keras", "junk.tflite", "binary.yaml", "utf16.yaml", "bomb_name.yaml",
                                  "deep_lists.yaml", "no_suffix"])
def test_bad_model_files_exit_2_with_one_line(capsys, tmp_path, name):
    model = tmp_path / name
    model.write_bytes(RAW_FILES.get(name, RAW_FILES["binary.yaml"]))
    video = tmp_path / "clip.mp4"
    video.write_bytes(RAW_FILES["binary.yaml"])
    expect_usage_error(capsys, "predict", model, video)
