"""`movinas latency profile` end to end on a one-layer space, timed through a command template whose
stand-in prints what TFLite's benchmark_model prints; resumed after the device fails mid-way; bad
templates are one line, exit 2."""

from __future__ import annotations

import sys

import pytest

from nas.cli import main
from search_space import SearchSpace
from search_space.latency import estimate_latency, read_profile, space_kinds

TINY = """name: tiny
frames: 4
resolution: 16
se_type: none
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 8, depth: 1, strides: 1x1x1, kernels: [1x3x3], expand_ratios: [2.0]}
head: {ratio: 2.0, hidden: 16}
"""

STAND_IN = """import os, pathlib, sys
model, calls, limit = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
n = int(calls.read_text()) + 1 if calls.exists() else 1
calls.write_text(str(n))
if limit.exists() and n > int(limit.read_text()):
    sys.exit("device unplugged")
size = os.path.getsize(model)
print(f"Inference timings in us: Init: 9, First inference: 8, Warmup (avg): 7, Inference (avg): {size / 10}")
"""


@pytest.mark.slow  # converts one TFLite op model per op kind (seven)
def test_profile_through_a_command_template_resumes_after_a_failure(tmp_path, capsys):
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "stand_in.py").write_text(STAND_IN)
    calls, limit = tmp_path / "calls", tmp_path / "limit"
    limit.write_text("3")  # the fourth call fails
    template = f"{sys.executable} {tmp_path / 'stand_in.py'} {{model}} {calls} {limit}"
    out = tmp_path / "phone.json"
    argv = ["latency", "profile", "--runtime", "tflite", "--threads", "4", "--out", str(out), "--space",
            str(tmp_path / "tiny.yaml"), "--per-kind", "1", "--samples", "3", "--networks", "0", "--no-progress",
            "--command", template]
    assert main(argv) == 2  # the fourth model: the device is gone
    err = capsys.readouterr().err
    assert "exited with status 1 (device unplugged)" in err and err.count("\n") == 1
    assert not out.exists()
    limit.unlink()
    assert main(argv) == 0
    space = SearchSpace.from_yaml(tmp_path / "tiny.yaml")
    profile = read_profile(out, runtime="tflite")
    kinds = space_kinds(space)
    assert not profile.missing(kinds) and profile.command == template and profile.threads == 4
    assert int(calls.read_text()) == len(profile.kinds) + 2  # the overhead model, each kind once, the failed call
    assert 0 < profile.overhead_ms < 1  # a one-op file of a few KB: its size / 10 in us
    assert estimate_latency(space.sample(0), profile) > profile.overhead_ms

    bad = [("true {model} && echo no time here", "printed no time"), ("sleep 5; true {model}", "did not finish within 0.5 s")]
    for command, message in bad:
        argv[-1] = command
        assert main([*argv, "--timeout", "0.5"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_random_model_has_the_asked_classes_and_no_constant_weights():
    """A measured model of a 10-class task carries a 10-class head (a 600-class one is a third of a
    bench model's frame time), its constant-initialized weights drawn."""
    import numpy as np
    import yaml

    from evaluation.deploy.profile import random_model

    spec = SearchSpace.from_dict(yaml.safe_load(TINY)).sample(0)
    model = random_model(spec, 16, num_classes=10)
    assert model.output_shape[-1] == 10
    assert not any(w.size > 1 and np.all(w == w.flat[0]) for w in model.get_weights())
