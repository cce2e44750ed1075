"""Latency profiles and the latency model (pure Python): estimate_latency is the sum of the profile's
fits over the ops of the shared walk; bad profiles are one line, exit 2; latency_ms prunes before
training."""

from __future__ import annotations

import dataclasses
import json
import random

import optuna
import pytest

from evaluation.results.record import read_trial
from nas.cli import main
from nas.storage import default_url
from search_space import SearchSpace, movinet
from search_space.latency import (
    LatencyProfile,
    ProfileError,
    estimate_latency,
    latency_breakdown,
    op_latency,
    ops,
    read_profile,
    size_coverage,
    space_kinds,
)


def hand_made(kinds, mode: str = "stream") -> LatencyProfile:
    """Three points per kind: per-unit times that rise and fall with size."""
    rng = random.Random(1)
    table = {k: tuple((x, x * rng.uniform(1e-7, 1e-6)) for x in (1e3, 1e5, 1e7)) for k in sorted(kinds)}
    return LatencyProfile(runtime="tflite", mode=mode, threads=1, machine="test", kinds=table, overhead_ms=0.05)


@pytest.fixture(scope="module")
def small_profile() -> LatencyProfile:
    space = SearchSpace.from_yaml("small")
    kinds = space_kinds(space) | space_kinds(space, "clip")
    kinds |= {k for s in range(20) for k, _ in ops(space.sample(s).replace(causal=True, conv_type="2plus1d"))}
    return hand_made(kinds - {"overhead"})


def test_estimate_latency_is_the_sum_of_the_profile_fits_over_the_ops(small_profile):
    space = SearchSpace.from_yaml("small")
    for seed in range(12):
        spec = space.sample(seed)
        spec = spec.replace(causal=bool(seed % 2), conv_type=("3d", "2plus1d")[seed % 3 == 0])
        for mode in ("stream", "clip"):
            profile = dataclasses.replace(small_profile, mode=mode)
            by_op = profile.overhead_ms + sum(op_latency(profile, k, shape) for k, shape in ops(spec, mode)
                                              if k != "overhead")
            assert estimate_latency(spec, profile) == pytest.approx(by_op, rel=1e-12)
            assert sum(latency_breakdown(spec, profile)) == pytest.approx(by_op, rel=1e-12)
    spec = space.sample(0)
    stream = estimate_latency(spec, small_profile)
    clip = estimate_latency(spec, dataclasses.replace(small_profile, mode="clip"), frames=8)
    assert clip > 4 * stream  # a clip of 8 frames costs about 8 frames


def test_an_op_time_is_interpolated_between_the_nearest_sizes_and_proportional_beyond():
    profile = LatencyProfile("tflite", "stream", 1, "test", {"k": ((100.0, 1.0), (10000.0, 300.0))}, 0.0)
    assert profile.at("k", 100) == pytest.approx(1.0) and profile.at("k", 10000) == pytest.approx(300.0)
    assert profile.at("k", 1000) == pytest.approx(1.0 + 299.0 * 900 / 9900)
    assert profile.at("k", 10) == pytest.approx(0.1) and profile.at("k", 1e5) == pytest.approx(3000.0)


def test_size_coverage_counts_ops_outside_the_timed_sizes_and_show_says_so(small_profile, tmp_path, capsys):
    """A profile whose tables start above every op of the space extrapolates all of them; `latency show
    --space` says so and names the command that fixes it."""
    space = SearchSpace.from_yaml("small")
    wide = dataclasses.replace(small_profile, kinds={k: ((1.0, 1e-6), (1e12, 1.0)) for k in small_profile.kinds})
    below, above, total = size_coverage(wide, space, samples=20)
    assert below == above == 0 and total > 0
    shifted = dataclasses.replace(small_profile, kinds={k: tuple((x * 1e9, m) for x, m in v)
                                                        for k, v in small_profile.kinds.items()})
    below, above, total = size_coverage(shifted, space, samples=20)
    assert below == total > 0 and above == 0
    path = tmp_path / "shifted.json"
    path.write_text(shifted.to_json())
    assert main(["latency", "show", str(path), "--space", "small"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "100% are smaller and 0% larger" in last and "movinas latency profile --space small" in last


def test_a_profile_missing_an_op_kind_names_it(small_profile):
    with pytest.raises(ProfileError, match="act_hard_swish"):  # A0 uses hard-swish, the small space swish only
        estimate_latency(movinet("a0", stream=True), small_profile)


def test_profile_files_round_trip_and_bad_ones_are_refused(small_profile, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(small_profile.to_json())
    assert read_profile(path) == small_profile
    with pytest.raises(ProfileError, match="runtime 'tflite', not 'keras'"):
        read_profile(path, runtime="keras")
    for change, message in (({"format": 99}, "format 99"), ({"runtime": "tpu"}, "runtime 'tpu'"),
                            ({"kinds": {"pointwise": [[2, 1], [1, 1]]}}, "kinds.pointwise")):
        path.write_text(json.dumps({**small_profile.to_dict(), **change}))
        with pytest.raises(ProfileError, match=message):
            read_profile(path)


def test_bad_profiles_on_the_command_line_are_one_line_exit_2(small_profile, tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(small_profile.to_json())
    cases = [(["latency", "show", str(path), "--runtime", "keras"], "measured for runtime 'tflite'"),
             (["cost", "a0", "--profile", str(path)], "no fit for op kind"),
             (["screen", "paper", "--samples", "5", "--profile", str(path)], "depthwise_"),
             (["screen", "small", "--samples", "5", "--constraint", "latency_ms <= 3"], "needs a latency profile"),
             (["latency", "profile", "--runtime", "tflite", "--mode", "video", "--out", "x.json"], "--mode")]
    for argv, message in cases:
        with pytest.raises(SystemExit) if argv[1] == "profile" else _no_raise():
            assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cost_and_screen_predict_latency_ms(small_profile, tmp_path, capsys):
    path = tmp_path / "p.json"
    path.write_text(small_profile.to_json())
    spec = SearchSpace.from_yaml("small").sample(3)
    (tmp_path / "s.yaml").write_text(spec.to_yaml())
    assert main(["cost", str(tmp_path / "s.yaml"), "--profile", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["latency_ms"] == pytest.approx(estimate_latency(spec, small_profile))
    assert sum(b["latency_ms"] for b in out["blocks"]) == pytest.approx(out["latency_ms"])
    limit = estimate_latency(spec, small_profile)
    assert main(["screen", "small", "--samples", "50", "--profile", str(path), "--json",
                 "--constraint", f"latency_ms <= {limit}"]) == 0
    screened = json.loads(capsys.readouterr().out)
    assert 0 < screened["feasible"][f"latency_ms <= {limit}"] < 1 and "latency_ms" in screened["spread"]


@pytest.mark.slow  # a study in SQLite, no training: about 20 s on a loaded 2-core machine
def test_a_latency_budget_prunes_before_training(small_profile, tmp_path, write_config):
    (tmp_path / "p.json").write_text(small_profile.to_json())
    space = SearchSpace.from_yaml("small")
    budget = sorted(estimate_latency(space.sample(s), small_profile, num_classes=4) for s in range(40))[20]
    cfg = write_config({"space": "small", "num_classes": 4, "study": "budget", "sampler": "random", "trials": 4,
                        "profile": "p.json", "constraints": [f"latency_ms <= {budget}"],
                        "objectives": [{"minimize": "latency_ms"}, {"minimize": "flops"}]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path / "r")]) == 0
    study = optuna.load_study(study_name="budget", storage=default_url(tmp_path / "r", "budget"))
    records = [read_trial(t) for t in study.trials]
    assert any(not r.feasible for r in records) and any(r.feasible for r in records)
    for t, r in zip(study.trials, records):
        predicted = estimate_latency(space.decode(t.params), small_profile, num_classes=4)
        assert r.cost["latency_ms"] == pytest.approx(predicted)
        assert r.violations[f"latency_ms <= {budget}"] == pytest.approx(predicted - budget)
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values[0] == pytest.approx(predicted) and predicted <= budget
        else:
            assert t.user_attrs["reason"].startswith("infeasible: latency_ms") and not r.metrics


def test_a_latency_constraint_without_a_profile_is_refused(tmp_path, write_config, capsys):
    cfg = write_config({"space": "small", "constraints": ["latency_ms <= 8"], "objectives": ["flops"]})
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    assert "needs a latency profile" in capsys.readouterr().err


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
