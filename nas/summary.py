"""What a study has found so far, as the search prints it: the best trial and the Pareto front."""

from __future__ import annotations

from evaluation.results.record import read_trial


def best_record(records, config):
    """The COMPLETE trial not known to be infeasible best in the first objective, ties to the lower
    flops, then params, then trial number (as `export --best`); None when there is none. A trial
    without feasibility (one another tool wrote) counts as feasible, as in Optuna's `best_trials`,
    so the search's bar and its front table agree."""
    from evaluation.results.pareto import TIE_COSTS

    sign = -1.0 if config.objectives[0].direction == "maximize" else 1.0
    done = [r for r in records if r.values and r.state == "COMPLETE" and r.feasible is not False]
    if not done:
        return None
    return min(done, key=lambda r: (sign * r.values[0], *(r.cost.get(c, 0.0) for c in TIE_COSTS), r.number))


def front_table(study, config) -> str:
    """The Pareto front of feasible COMPLETE trials as a fixed-width table, best first in the
    first objective (as in the report), costs in the report's units (10M, 24.8K, 0.7 MB)."""
    sign = -1.0 if config.objectives[0].direction == "maximize" else 1.0
    trials = sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))
    if not trials:
        return "Pareto front: no complete feasible trial yet"
    from evaluation.results.report import format_value

    names = [o.name for o in config.objectives]
    extra = [n for n in ("params", "flops", "activation_bytes") if n not in names]
    head = ["trial", *names, *extra]
    rows = [[str(t.number), *(format_value(n, v) for n, v in zip(names, t.values)),
             *(format_value(n, read_trial(t).cost.get(n)) for n in extra)] for t in trials]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([f"Pareto front ({len(trials)} trials, {', '.join(o.direction + ' ' + o.name for o in config.objectives)}):",
                      line(head), *(line(r) for r in rows)])


__all__ = ["best_record", "front_table"]
