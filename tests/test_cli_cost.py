"""`movinas cost`: the table, the JSON, and one clear line with exit status 2 for every bad input."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from nas.cli import main
from search_space import movinet

BAD_FIELD = """\
stem: {filters: 8}
stages:
  - filters: 8
    blocks:
      - {expand: 24, kernal: [1, 5, 5], strides: [1, 2, 2]}
head: {filters: 480}
"""


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(capsys, *argv) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_json_reports_reference_params_of_a0(capsys):
    code, out, _ = run_cli(capsys, "cost", "a0", "--frames", "50", "--resolution", "172", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["params"] == 3_126_071
    assert data["macs"] == 2_630_733_808 and data["flops"] == 2 * data["macs"]
    assert (data["spec"], data["frames"], data["resolution"], data["classes"]) == ("movinet-a0", 50, 172, 600)
    for key in ("activation_bytes", "state_bytes", "state_floats", "state_tensors", "elementwise"):
        assert isinstance(data[key], int)
    assert sum(b["params"] for b in data["blocks"]) == data["params"]
    assert data["blocks"][1]["out_shape"] == [50, 43, 43, 8]


def test_defaults_are_the_presets_paper_input(capsys):
    _, out, _ = run_cli(capsys, "cost", "a2", "--json")
    data = json.loads(out)
    assert (data["frames"], data["resolution"]) == (50, 224)


def test_stream_preset_reports_its_state(capsys):
    _, out, _ = run_cli(capsys, "cost", "a0-stream", "--frames", "1", "--json")
    data = json.loads(out)
    assert data["spec"] == "movinet-a0-stream" and data["params"] == 3_765_983
    assert data["state_floats"] == 674_192 and data["state_tensors"] == 43


def test_classes_option_changes_the_classifier(capsys):
    _, out, _ = run_cli(capsys, "cost", "a0", "--classes", "10", "--json")
    assert json.loads(out)["params"] == 3_126_071 - 2049 * 590


def test_table_lists_every_block_and_the_totals(capsys):
    code, out, _ = run_cli(capsys, "cost", "a0")
    assert code == 0
    names = ["stem", "head", "classifier"] + [
        f"s{i}.b{j}" for i, stage in enumerate(movinet("a0").stages, 1) for j in range(1, len(stage.blocks) + 1)]
    rows = {line.split()[0] for line in out.splitlines() if line.strip()}
    assert set(names) <= rows
    assert "3,126,071" in out
    assert "2.631 G" in out  # MACs
    assert "50×43×43×8" in out  # output shape of s1.b1
    for label in ("params", "MACs", "FLOPs", "peak activations", "stream state", "element-wise"):
        assert label in out


def test_spec_yaml_file_costs_like_the_preset(tmp_path, capsys):
    path = tmp_path / "a1.yaml"
    path.write_text(movinet("a1").to_yaml())
    _, out, _ = run_cli(capsys, "cost", str(path), "--json")
    assert json.loads(out)["params"] == 4_717_912


def test_unknown_preset_lists_allowed(capsys):
    line = error_line(capsys, "cost", "a9")
    assert "'a9'" in line and "a0, a1, a2, a3, a4, a5" in line and "a2-stream" in line


def test_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    line = error_line(capsys, "cost", str(missing))
    assert str(missing) in line and "no such file" in line


def test_misspelled_field_names_path_and_allowed(tmp_path, capsys):
    path = tmp_path / "typo.yaml"
    path.write_text(BAD_FIELD)
    line = error_line(capsys, "cost", str(path))
    assert "typo.yaml" in line
    assert "stages[0].blocks[0].kernal: unknown field, allowed: expand, kernel, strides" in line


def test_negative_width(tmp_path, capsys):
    path = tmp_path / "neg.yaml"
    path.write_text(BAD_FIELD.replace("kernal", "kernel").replace("filters: 8}", "filters: -8}"))
    assert "stem.filters: -8, must be an integer in [1, 100000]" in error_line(capsys, "cost", str(path))


def test_empty_stage(tmp_path, capsys):
    d = movinet("a0").to_dict()
    d["stages"][2]["blocks"] = []
    path = tmp_path / "empty.yaml"
    path.write_text(yaml.safe_dump(d))
    assert "stages[2].blocks: empty stage" in error_line(capsys, "cost", str(path))


def test_invalid_yaml_is_one_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("stem: {filters: 8\nstages: [\n")
    assert "not valid YAML" in error_line(capsys, "cost", str(path))


@pytest.mark.parametrize("flag", ["--frames", "--resolution", "--classes"])
def test_non_positive_sizes(flag, capsys):
    assert f"{flag}: 0, must be an integer in [1, " in error_line(capsys, "cost", "a0", flag, "0")


def test_console_script_exit_status_and_no_tensorflow():
    code = ("import sys; from nas.cli import main; rc = main(['cost', 'a0', '--json']); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow imported'; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["params"] == 3_126_071
    bad = subprocess.run([sys.executable, "-m", "nas", "cost", "a9"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


# -- movinas screen / demo: the cost model over a whole search space ------------------------------


def test_screen_json_gives_spread_and_preset_ranks(capsys):
    code, out, _ = run_cli(capsys, "screen", "small", "--samples", "300", "--seed", "1", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["space"], data["samples"], data["seed"]) == ("small", 300, 1)
    assert data["size"] > 1
    for metric in ("params", "macs", "activation_bytes", "state_bytes"):
        pts = list(data["spread"][metric].values())
        assert list(data["spread"][metric]) == ["min", "p5", "p25", "median", "p75", "p95", "max"]
        assert pts == sorted(pts)
    assert data["spread"]["params"]["min"] > 0
    assert [p["name"] for p in data["presets"]] == [f"movinet-a{i}" for i in range(6)]
    for p in data["presets"]:
        assert 0 <= p["params_pct"] <= 100 and 0 <= p["macs_pct_same_input"] <= 100
    # the small space's networks are far smaller than any preset
    assert all(p["params_pct"] == 100 for p in data["presets"])
    assert data["specs_per_second"] > 0


def test_screen_is_reproducible_with_a_seed(capsys):
    _, out, _ = run_cli(capsys, "screen", "small", "--samples", "50", "--seed", "7", "--json")
    first = json.loads(out)
    _, out, _ = run_cli(capsys, "screen", "small", "--samples", "50", "--seed", "7", "--json")
    again = json.loads(out)
    assert again["spread"] == first["spread"] and again["presets"] == first["presets"]
    _, out, _ = run_cli(capsys, "screen", "small", "--samples", "50", "--seed", "8", "--json")
    assert json.loads(out)["spread"] != first["spread"]


def test_screen_input_overrides_fix_frames_and_resolution(capsys):
    _, out, _ = run_cli(capsys, "screen", "small", "--samples", "100", "--frames", "4", "--resolution", "40",
                        "--json")
    spread = json.loads(out)["spread"]
    assert "frames" not in spread and "resolution" not in spread  # constant inputs are not spread


def test_screen_report_explains_the_preset_ranks(capsys):
    code, out, _ = run_cli(capsys, "screen", "small", "--samples", "200")
    assert code == 0
    assert "median" in out and "specs/s" in out
    assert "movinet-a0" in out and "paper input" in out and "same input" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert re.search(r"^params(\s+[\d.]+K){7}$", rows["params"])  # the report's units: 93.8K, 1.54M, 0.229 MB
    assert re.search(r"^MACs(\s+[\d.]+M){7}$", rows["MACs"])
    assert re.search(r"^movinet-a0\s+3.13M\s+\d+\s+50×172²\s+2.63G", rows["movinet-a0"])


def test_screen_bad_input_is_one_line(tmp_path, capsys):
    assert "--samples: 0, must be an integer in [1, 10000000]" in error_line(capsys, "screen", "--samples", "0")
    line = error_line(capsys, "screen", "tiny")
    assert "'tiny'" in line and "paper, small" in line
    assert "no such file" in error_line(capsys, "screen", str(tmp_path / "space.yaml"))


def test_demo_runs_a_real_search_and_writes_the_report(tmp_path, capsys):
    code, out, err = run_cli(capsys, "demo", "--trials", "1", "--results-dir", str(tmp_path))
    assert code == 0, err
    assert "Pareto front" in out and "val_accuracy" in out
    folder = tmp_path / "demo"
    assert (folder / "study.db").is_file()
    assert (folder / "report.html").is_file() and (folder / "report.md").is_file()
    assert any((folder / "trials").glob("*/metrics.json"))


def test_screen_space_yaml_with_a_misspelled_field(tmp_path, capsys):
    path = tmp_path / "space.yaml"
    path.write_text("frames: [8]\nstages:\n  - {width: 16, depth: [1, 2], kernals: [3x3x3], expand_ratios: [2.0]}\n")
    line = error_line(capsys, "screen", str(path))
    assert "space.yaml" in line and "kernals: unknown field" in line
