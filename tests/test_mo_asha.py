"""MO-ASHA early stopping: the promotion rule on hand-made rungs, and a real search (the bench
space's table replayed epoch by epoch, SQLite) whose rung decisions survive a resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from hypothesis import HealthCheck, given, settings

from nas.cli import main
from nas.config import EarlyStopping, config_from_dict
from nas.errors import UsageError
from nas.mo_asha import crowding, promoted, ranks, rungs
from nas.pruning import Finished, should_stop
from nas.storage import default_url
from tests.fuzz_cases import broken, check_message

TABLE = Path(__file__).resolve().parents[1] / "results" / "bench" / "table.csv"
# (val_accuracy, flops) at a rung: A, B, F make the front (A and F its ends), E is behind A, C behind E
RUNG = {"A": (0.9, 100.0), "B": (0.8, 50.0), "C": (0.7, 200.0), "D": (0.5, 300.0), "E": (0.85, 120.0),
        "F": (0.6, 40.0)}


def _loss(names):
    return np.array([[-RUNG[n][0], RUNG[n][1]] for n in names])


def test_rung_order_is_non_dominated_rank_then_crowding():
    names = list(RUNG)
    assert dict(zip(names, ranks(_loss(names)))) == {"A": 0, "B": 0, "F": 0, "E": 1, "C": 2, "D": 3}
    front = ["A", "B", "F"]
    assert list(crowding(_loss(front))) == [np.inf, 2.0, np.inf]
    # eta 3: 2 of 6 go on, the front's two ends; eta 2: 3 go on, the whole front
    assert [n for i, n in enumerate(names) if promoted(_loss(names), i, 3)] == ["A", "F"]
    assert [n for i, n in enumerate(names) if promoted(_loss(names), i, 2)] == ["A", "B", "F"]
    assert rungs(1, 3, 6) == (1, 3) and rungs(2, 2, 16) == (2, 4, 8) and rungs(4, 3, 4) == ()


def _decide(rule, name, epoch=1, others=None, last_epoch=6):
    others = [n for n in RUNG if n != name] if others is None else others
    finished = [Finished(i, {epoch: RUNG[n][0]}, {"flops": RUNG[n][1]}) for i, n in enumerate(others)]
    return should_stop(rule, epoch, RUNG[name][0], {"flops": RUNG[name][1]}, {"flops": "minimize"}, True,
                       finished, last_epoch)


def test_mo_asha_stops_outside_the_top_third_only_at_rungs_and_with_enough_others():
    rule = EarlyStopping(rule="mo-asha", eta=3, min_trials=3)
    assert _decide(rule, "A") is None and _decide(rule, "F") is None
    assert _decide(rule, "B") == ("outside the top 1/3 at rung epoch 1: 2 of the 6 trials there rank ahead "
                                  "(2 go on; 0.8)")
    assert _decide(rule, "D", epoch=2) is None  # not a rung (1, 3)
    assert _decide(rule, "D", epoch=3) is not None
    assert _decide(rule, "D", epoch=6) is None  # the last epoch: a finished run is kept
    assert _decide(rule, "D", others=["A", "B"]) is None  # 2 others, min_trials 3
    assert _decide(EarlyStopping(rule="mo-asha", min_epoch=3), "D", epoch=1) is None  # before the first rung


def _rung_decisions(study, rule: EarlyStopping, last: int) -> dict[int, list[bool]]:
    """{trial: [went on past each rung it reached]} as recorded, and as the rule gives them when
    replayed from the stored curves (a trial decides against the earlier trials at its rung)."""
    counted = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               or t.user_attrs.get("outcome") == "early_stopped"]
    curves = {t.number: {e["epoch"]: e["val_accuracy"] for e in t.user_attrs["curve"]} for t in counted}
    flops = {t.number: t.user_attrs["cost"]["flops"] for t in counted}
    recorded, replayed = {}, {}
    for t in counted:
        reached = [r for r in rungs(rule.min_epoch, rule.eta, last) if r in curves[t.number]]
        recorded[t.number] = [max(curves[t.number]) > r for r in reached]
        decisions = []
        for r in reached:
            earlier = [n for n in curves if n < t.number and r in curves[n]]
            points = np.array([[-curves[n][r], flops[n]] for n in [t.number, *earlier]])
            decisions.append(len(earlier) < rule.min_trials or promoted(points, 0, rule.eta))
        replayed[t.number] = decisions
    return recorded, replayed


def test_a_search_with_mo_asha_stops_at_rungs_and_resumes_with_the_same_decisions(tmp_path):
    rule = {"rule": "mo-asha", "min_epoch": 1, "eta": 3, "min_trials": 2}
    config = {"study": "asha", "space": "bench", "seed": 5, "sampler": "random", "num_classes": 10,
              "dataset": {"kind": "graded", "clips_per_class": 2, "frames": "spec", "resolution": "spec"},
              "objectives": [{"maximize": "val_accuracy"}, {"minimize": "flops"}],
              "proxy": {"kind": "table", "path": str(TABLE)}, "early_stopping": rule}
    cfg = tmp_path / "asha.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--trials", "6"]) == 0
    storage = default_url(tmp_path, "asha")
    first = [(t.number, t.state, t.user_attrs.get("curve")) for t in optuna.load_study(study_name="asha",
                                                                                       storage=storage).trials]
    assert main(["search", str(cfg), "--results-dir", str(tmp_path), "--trials", "12"]) == 0
    study = optuna.load_study(study_name="asha", storage=storage)
    assert [(t.number, t.state, t.user_attrs.get("curve")) for t in study.trials[:len(first)]] == first

    stopped = [t for t in study.trials if t.user_attrs.get("outcome") == "early_stopped"]
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert stopped and len(complete) >= 2 and len(stopped) + len(complete) == 12
    for t in stopped:
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["curve"][-1]["epoch"] in (1, 3)
        assert t.user_attrs["reason"].startswith(f"outside the top 1/3 at rung epoch {t.user_attrs['curve'][-1]['epoch']}")
    for t in complete:  # promoted at every rung: trained to the top one
        assert [e["epoch"] for e in t.user_attrs["curve"]] == [1, 2, 3, 4, 5, 6]
    recorded, replayed = _rung_decisions(study, EarlyStopping(**rule), last=6)
    assert recorded == replayed
    assert any(False in d for d in recorded.values() if d) and any(n >= 6 and False in d for n, d in recorded.items())


@pytest.mark.parametrize("value, message", [
    ({"rule": "mo-asha", "eta": 1}, "early_stopping.eta: 1, must be an integer >= 2"),
    ({"rule": "mo-asha", "eta": 2.5}, "early_stopping.eta: 2.5, must be an integer >= 2"),
    ({"rule": "mo-asha", "min_epochs": 2}, "early_stopping.min_epochs: unknown field"),
    ({"rule": "moasha"}, "early_stopping.rule: 'moasha', must be one of off, dominated, halving, mo-asha"),
])
def test_bad_mo_asha_settings_are_one_line_and_exit_2(tmp_path, capsys, value, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({"study": "bad", "space": "small", "early_stopping": value}))
    assert main(["search", str(cfg), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(broken({"early_stopping": {"rule": "mo-asha", "min_epoch": 1, "eta": 3, "min_trials": 3}},
              misspell=("etta", "min_epochs", "rungs")))
def test_broken_mo_asha_section_is_a_sane_rule_or_one_usage_error_line(data):
    try:
        rule = config_from_dict(data, source="fuzz.yaml").early_stopping
    except UsageError as exc:
        check_message(exc)
        assert str(exc).split(": ")[1].split(".")[0] in ("early_stopping", "etta", "min_epochs", "rungs")
        return
    assert rule.rule in ("off", "dominated", "halving", "mo-asha")
    assert all(type(x) is int for x in (rule.eta, rule.min_epoch, rule.min_trials))
    assert rule.eta >= 2 and rule.min_epoch >= 1 and rule.min_trials >= 1
