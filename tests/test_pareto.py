"""Pareto fronts, hypervolume and `--best` rules over result frames (Optuna's own non-dominated
filter and hypervolume, checked against brute force), and on the committed reference run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.results.pareto import (
    best_trial,
    default_reference_point,
    hypervolume,
    hypervolume_history,
    pareto_front,
    pareto_mask,
    parse_rule,
)

REFERENCE = Path(__file__).resolve().parents[1] / "results" / "reference"


def frame(rows) -> pd.DataFrame:
    """Trials as load_results gives them: number, state, feasible, val_accuracy, flops, params."""
    df = pd.DataFrame(rows, columns=["state", "feasible", "val_accuracy", "flops", "params"])
    df.insert(0, "number", range(len(df)))
    df["feasible"] = df["feasible"].astype("boolean")
    return df


def brute_front(df, objectives) -> set[int]:
    sign = {c: (-1 if d == "maximize" else 1) for c, d in objectives.items()}
    pool = df[(df["state"] == "COMPLETE") & df["feasible"].fillna(False)].dropna(subset=list(objectives))
    front = set()
    for i, a in pool.iterrows():
        dominated = any(all(sign[c] * b[c] <= sign[c] * a[c] for c in objectives)
                        and any(sign[c] * b[c] < sign[c] * a[c] for c in objectives)
                        for j, b in pool.iterrows() if j != i)
        if not dominated:
            front.add(int(a["number"]))
    return front


@pytest.fixture
def random_trials():
    rng = np.random.default_rng(0)
    n = 60
    states = rng.choice(["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"], n)
    feasible = rng.random(n) > 0.2
    acc = np.round(rng.random(n), 1)  # coarse values: ties and duplicates on purpose
    flops = rng.integers(1, 8, n) * 1e8
    params = rng.integers(1, 5, n) * 1e5
    acc[states == "FAIL"] = np.nan
    return frame(zip(states, feasible, acc, flops, params))


@pytest.mark.parametrize("objectives", [
    {"val_accuracy": "maximize", "flops": "minimize"},
    {"flops": "minimize", "params": "minimize"},
    {"val_accuracy": "maximize", "flops": "minimize", "params": "minimize"},
])
def test_front_equals_brute_force_non_dominated_set(random_trials, objectives):
    front = pareto_front(random_trials, objectives)
    assert set(front["number"]) == brute_front(random_trials, objectives)
    assert pareto_mask(random_trials, objectives).sum() == len(front)


def test_front_holds_only_complete_feasible_trials_sorted_best_first(random_trials):
    objectives = {"val_accuracy": "maximize", "flops": "minimize"}
    front = pareto_front(random_trials, objectives)
    assert (front["state"] == "COMPLETE").all() and front["feasible"].all()
    assert front["val_accuracy"].is_monotonic_decreasing
    best = frame([("COMPLETE", False, 1.0, 1e7, 1e5)]).assign(number=999)  # infeasible, dominates all
    more = pd.concat([random_trials, best], ignore_index=True)
    assert set(pareto_front(more, objectives)["number"]) == set(front["number"])
    assert set(pareto_front(more, objectives, feasible_only=False)["number"]) == {999}


def test_unknown_objective_column_or_direction_is_a_clear_error(random_trials):
    with pytest.raises(ValueError, match="unknown column 'accuracy'; columns: .*val_accuracy"):
        pareto_front(random_trials, {"accuracy": "maximize"})
    with pytest.raises(ValueError, match="objectives.flops: 'min', must be 'maximize' or 'minimize'"):
        pareto_front(random_trials, {"flops": "min"})


def test_hypervolume_of_a_staircase_by_hand():
    df = frame([("COMPLETE", True, 0.9, 4e8, 1), ("COMPLETE", True, 0.6, 1e8, 1), ("COMPLETE", True, 0.5, 3e8, 1),
                ("PRUNED", False, None, 5e7, 1)])
    objectives = {"val_accuracy": "maximize", "flops": "minimize"}
    ref = {"val_accuracy": 0.0, "flops": 5e8}
    # rectangles from the reference: 0.9 x (5e8-4e8) plus 0.6 x (4e8-1e8); trial 2 is dominated
    assert hypervolume(df, objectives, ref) == pytest.approx(0.9 * 1e8 + 0.6 * 3e8)
    assert hypervolume(df, objectives, [0.0, 5e8]) == pytest.approx(0.9 * 1e8 + 0.6 * 3e8)
    # a point outside the reference box adds nothing
    assert hypervolume(df, objectives, {"val_accuracy": 0.0, "flops": 2e8}) == pytest.approx(0.6 * 1e8)


def test_default_reference_is_the_worst_value_moved_a_tenth_of_the_range():
    df = frame([("COMPLETE", True, 0.9, 4e8, 1), ("COMPLETE", True, 0.5, 2e8, 1)])
    ref = default_reference_point(df, {"val_accuracy": "maximize", "flops": "minimize"})
    assert ref == pytest.approx({"val_accuracy": 0.5 - 0.04, "flops": 4e8 + 0.2e8})


def test_hypervolume_history_grows_to_the_final_value(random_trials):
    objectives = {"val_accuracy": "maximize", "flops": "minimize", "params": "minimize"}
    hist = hypervolume_history(random_trials, objectives)
    assert hist["number"].tolist() == random_trials["number"].tolist()
    assert hist["hypervolume"].is_monotonic_increasing
    assert hist["hypervolume"].iloc[-1] == pytest.approx(hypervolume(random_trials, objectives))
    for n in (10, 30):  # each entry is the hypervolume of the trials so far
        head = random_trials[random_trials["number"] <= n]
        ref = default_reference_point(random_trials, objectives)
        assert hist["hypervolume"].iloc[n] == pytest.approx(hypervolume(head, objectives, ref))


def test_hypervolume_history_is_the_hypervolume_of_every_prefix_with_a_tight_reference(random_trials):
    """The history recounts only when the front improves; every entry still equals a full count,
    with a reference that leaves some points outside."""
    objectives = {"val_accuracy": "maximize", "flops": "minimize", "params": "minimize"}
    ref = {"val_accuracy": 0.3, "flops": 5e8, "params": 3e5}
    hist = hypervolume_history(random_trials, objectives, ref)
    for n in range(len(random_trials)):
        head = random_trials[random_trials["number"] <= n]
        assert hist["hypervolume"].iloc[n] == pytest.approx(hypervolume(head, objectives, ref)), n


@pytest.mark.parametrize("rule, expected", [
    ("val_accuracy under flops<=3e8", "max val_accuracy among flops <= 3e8"),
    ("val_accuracy under flops <= 300M", "max val_accuracy among flops <= 3e8"),
    ("min params with val_accuracy>=0.5", "min params among val_accuracy >= 0.5"),
    ("max val_accuracy with flops<4e8, params <= 2e5", "max val_accuracy among flops < 4e8 and params <= 2e5"),
    ("flops", "min flops"),
])
def test_best_trial_rules(random_trials, rule, expected):
    df = random_trials
    pool = df[df["state"] == "COMPLETE"]
    masks = {"flops <= 3e8": pool["flops"] <= 3e8, "val_accuracy >= 0.5": pool["val_accuracy"] >= 0.5,
             "flops < 4e8 and params <= 2e5": (pool["flops"] < 4e8) & (pool["params"] <= 2e5)}
    what, _, where = expected.partition(" among ")
    direction, column = what.split()
    chosen = pool[masks[where]] if where else pool
    chosen = chosen.dropna(subset=[column])
    best = chosen[column].max() if direction == "max" else chosen[column].min()
    row = best_trial(df, rule)
    assert row[column] == best and row["state"] == "COMPLETE"
    ties = chosen[chosen[column] == best].sort_values([c for c in ("flops", "params") if c != column] + ["number"])
    assert row["number"] == ties["number"].iloc[0]  # ties: lowest flops, then params, then number


def test_best_trial_ties_go_to_the_lower_cost():
    df = frame([("COMPLETE", True, 0.5, 4e8, 1e5), ("COMPLETE", True, 0.5, 2e8, 3e5), ("COMPLETE", True, 0.5, 2e8, 2e5),
                ("COMPLETE", True, 0.4, 1e8, 1e5)])
    assert best_trial(df, "val_accuracy")["number"] == 2  # equal accuracy: lower flops, then lower params
    assert best_trial(df, "min flops with val_accuracy>=0.5")["number"] == 2


def test_rule_grammar_errors_name_the_problem(random_trials):
    with pytest.raises(ValueError, match="unknown column 'accuracy'; columns: number, val_accuracy, flops"):
        best_trial(random_trials, "accuracy under flops<=1e9")
    with pytest.raises(ValueError, match="unknown column 'latency'"):
        best_trial(random_trials, "val_accuracy under latency<=3")
    with pytest.raises(ValueError, match="condition 'flops about 1e9' must look like COLUMN OP NUMBER"):
        best_trial(random_trials, "val_accuracy under flops about 1e9")
    with pytest.raises(ValueError, match="unit 'parsecs'"):
        best_trial(random_trials, "val_accuracy under flops<=3parsecs")
    with pytest.raises(ValueError, match="no COMPLETE trial qualifies"):
        best_trial(random_trials, "val_accuracy under flops<=1")
    assert parse_rule("params", ["params"], {})[1] == "minimize"
    assert parse_rule("val_accuracy", ["val_accuracy"], {})[1] == "maximize"
    assert parse_rule("val_loss", ["val_loss"], {"val_loss": "maximize"})[1] == "maximize"


def test_reference_front_matches_optunas_best_trials():
    from evaluation.results.frames import load_results, load_study

    df = load_results(REFERENCE)
    objectives = {o["name"]: o["direction"] for o in df.attrs["objectives"]}
    study = load_study(REFERENCE).study
    assert set(pareto_front(df, objectives)["number"]) == {t.number for t in study.best_trials}
    assert hypervolume(df, objectives) > 0
