"""Search under a latency budget (issue 26, point 5): is the front of a search that budgets predicted
per-frame latency under budget when its members are measured, and how does the same search with a
FLOPs budget chosen to match do?

- Task: the graded task of the ground-truth table (results/bench/table.csv, the 96 architectures of
  the `bench` space). Searches see seed 0's final accuracy (`proxy: {kind: table}` on a seed-0 copy
  of the table); they are judged on the mean of seeds 1-3, which they never see.
- Device: the stream TFLite float runtime of this machine, 1 thread (profile
  results/latency/tflite_stream_1t_bench.json, timed on the bench space's own shapes), 10 classes.
- Budgets, fixed from predictions before any search: latency L = the median predicted ms per frame of
  the 96 architectures; `flops`: Y = the largest FLOPs of the 48 cheapest by FLOPs, so that both budgets
  admit the same number of architectures (the searches differ in which, not in how many); `flops-fit`:
  the FLOPs at which the least-squares line of predicted latency on FLOPs crosses L (what a user
  converting a latency target to FLOPs would write); `margin`: latency_ms <= L x (1 - 0.10), 10% being
  about the held-out RMSE of the paper-space validation (11%).
- Searches: `movinas search` itself, objectives (maximize val_accuracy, minimize latency_ms | flops),
  one constraint each, TPE and random, `--trials` counted trials x `--seeds` seeds. The front: the
  study's feasible Pareto front (`study.best_trials`).
- Measured: every front member's causal stream TFLite file (`benchmarks/latency.py`'s `measure`:
  random weights, 10 classes, the calling thread's CPU time, fastest of 3 rounds of the median of the
  fastest quarter of >= 30 calls), cached in results/latency_search/measured.jsonl (resumable).

Reported (results/latency_search/summary.txt): the fraction of each search's front over L when
measured (mean over seeds with a 95% bootstrap interval, and pooled); the accuracy at the budget (the
best judged accuracy among front members measured within L); predicted against measured.

    python benchmarks/latency_search.py                 # searches, measurements, report (resumable)
    python benchmarks/latency_search.py --all           # also measure the architectures on no front
    python benchmarks/latency_search.py --report        # the report from what is on disk
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "results/bench/table.csv"
PROFILE = ROOT / "results/latency/tflite_stream_1t_bench.json"
OUT = ROOT / "results/latency_search"
NUM_CLASSES, SEEN, JUDGED = 10, 0, (1, 2, 3)
MARGIN = 0.10  # fixed before any measurement: about the paper-space held-out RMSE (11.3%)
BUDGETS = ("latency", "margin", "flops", "flops-fit")
SAMPLERS = {"tpe": {"n_startup_trials": 10}, "random": {}}


def architectures() -> dict:
    """{spec_id: spec} of the 96 architectures of the bench space."""
    from evaluation.results.record import spec_id
    from nas.bench import bench_archs
    from search_space import SearchSpace

    space = SearchSpace.from_yaml("bench")
    specs = [space.decode(p) for p in bench_archs()]
    return {spec_id(s): s for s in specs}


def predictions(specs: dict) -> dict:
    """{spec_id: (predicted ms per frame, FLOPs)} at each architecture's own input, 10 classes."""
    from search_space import estimate_cost
    from search_space.latency import estimate_latency, read_profile

    profile = read_profile(PROFILE, runtime="tflite", mode="stream")
    return {k: (estimate_latency(s, profile, num_classes=NUM_CLASSES), estimate_cost(s, NUM_CLASSES).flops)
            for k, s in specs.items()}


def budgets(pred: dict) -> dict:
    """{"limit_ms": L, budget name: (constraint text, feasible count by prediction)}, from predictions alone."""
    ms = np.array([p[0] for p in pred.values()])
    flops = np.array([p[1] for p in pred.values()])
    limit = float(np.median(ms))
    k = int((ms <= limit).sum())
    slope, intercept = np.polyfit(flops.astype(float), ms, 1)  # predicted ms on FLOPs, least squares
    texts = {"latency": f"latency_ms <= {limit:.6f}", "margin": f"latency_ms <= {limit * (1 - MARGIN):.6f}",
             "flops": f"flops <= {int(np.sort(flops)[k - 1])}", "flops-fit": f"flops <= {int((limit - intercept) / slope)}"}
    return {"limit_ms": limit, **{b: (texts[b], len(admitted(texts[b], pred))) for b in BUDGETS}}


def admitted(constraint: str, pred: dict) -> set[str]:
    """The architectures a `latency_ms <= X` or `flops <= Y` constraint admits, by prediction."""
    name, limit = (x.strip() for x in constraint.split("<="))
    return {a for a, p in pred.items() if p[0 if name == "latency_ms" else 1] <= float(limit)}


def seen_table(path: Path) -> Path:
    """A copy of the table holding seed 0's rows only: what the searches see."""
    import pandas as pd

    table = pd.read_csv(TABLE)
    table[table["seed"] == SEEN].to_csv(path, index=False)
    return path


def config(budget: str, sampler: str, seed: int, trials: int, constraint: str, seen: Path) -> dict:
    """The `movinas search` config of one search."""
    cost = "flops" if budget.startswith("flops") else "latency_ms"
    cfg = {"study": f"{budget}-{sampler}-{seed}", "space": "bench", "trials": trials, "seed": seed,
           "num_classes": NUM_CLASSES, "sampler": {"name": sampler, "options": SAMPLERS[sampler]},
           "dataset": {"kind": "graded", "clips_per_class": 2, "frames": "spec", "resolution": "spec"},
           "objectives": [{"maximize": "val_accuracy"}, {"minimize": cost}],
           "constraints": [constraint], "proxy": {"kind": "table", "path": str(seen)}}
    if cost == "latency_ms":
        cfg["profile"] = str(PROFILE)
    return cfg


def run_searches(plan: dict, seeds: int, trials: int) -> None:
    """Every (budget, sampler, seed) search not yet in searches.jsonl, its front appended there."""
    from search import search

    from evaluation.results.record import read_trial

    log = OUT / "searches.jsonl"
    done = {(r["budget"], r["sampler"], r["seed"], r["trials"]) for r in _rows(log)}
    with tempfile.TemporaryDirectory(prefix="movinas-latency-search-") as tmp:
        seen = seen_table(Path(tmp) / "seen.csv")
        for budget in BUDGETS:
            for sampler in SAMPLERS:
                for seed in range(seeds):
                    if (budget, sampler, seed, trials) in done:
                        continue
                    start = time.perf_counter()
                    study = search(Path(tmp), config(budget, sampler, seed, trials, plan[budget][0], seen))
                    records = [read_trial(t) for t in study.trials]
                    row = {"budget": budget, "sampler": sampler, "seed": seed, "trials": trials,
                           "constraint": plan[budget][0], "front": [read_trial(t).spec_id for t in study.best_trials],
                           "distinct": len({r.spec_id for r in records if r.state == "COMPLETE"}),
                           "rejected": sum(r.state == "PRUNED" for r in records),
                           "seconds": round(time.perf_counter() - start, 2)}
                    with open(log, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(f"{budget:7s} {sampler:6s} seed {seed:2d}: front {len(row['front'])}, "
                          f"{row['rejected']} rejected, {row['seconds']:.1f} s", flush=True)


def measure_archs(wanted: list[str], specs: dict, pred: dict) -> None:
    """Time the causal stream TFLite file of every architecture of `wanted` not yet in measured.jsonl."""
    from latency import measure

    log = OUT / "measured.jsonl"
    done = {r["spec_id"] for r in _rows(log)}
    for arch in [a for a in dict.fromkeys(wanted) if a not in done]:
        spec = specs[arch].replace(causal=True)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="movinas-latency-search-") as tmp:
            out = measure(spec, spec.resolution, (1,), (), Path(tmp), num_classes=NUM_CLASSES)
        row = {"spec_id": arch, "resolution": spec.resolution, "ms": out["tflite/1"], "spread": out["spread/1"],
               "predicted": pred[arch][0], "flops": pred[arch][1], "load1": round(os.getloadavg()[0], 2),
               "seconds": round(time.perf_counter() - start, 1),
               "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        with open(log, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{arch} {spec.resolution}px measured {row['ms']:.4f} ms, predicted {row['predicted']:.4f} ms "
              f"({row['seconds']:.0f} s, load {row['load1']})", flush=True)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def mean_ci(values, n_boot: int = 2000) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap interval over seeds."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(0)
    boots = x[rng.integers(0, len(x), (n_boot, len(x)))].mean(axis=1)
    return float(x.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def judged_accuracy() -> dict:
    """{spec_id: mean final val_accuracy over the judged seeds}."""
    from evaluation.proxies.table import arch_means, load_table

    table = load_table(TABLE)
    means = arch_means(table[table["seed"].isin(JUDGED)])
    return dict(zip(means["spec_id"], means["val_accuracy"]))


def search_lines(rows: list[dict], measured: dict, judged: dict, limit: float) -> list[str]:
    """One line per (budget, sampler): fronts over budget when measured, accuracy at the budget."""
    lines = [f"{'budget':9s} {'sampler':7s} {'seeds':>5s} {'front':>5s}  {'over budget, mean over seeds [95% CI]':39s}"
             f" {'pooled':>12s} {'any':>5s} {'worst':>6s}  accuracy at budget [95% CI]  none"]
    for budget in BUDGETS:
        for sampler in SAMPLERS:
            runs = [r for r in rows if r["budget"] == budget and r["sampler"] == sampler]
            if not runs:
                continue
            over = [[measured[a] > limit for a in r["front"]] for r in runs]
            fractions = [np.mean(o) if o else 0.0 for o in over]
            best = [max((judged[a] for a in r["front"] if measured[a] <= limit), default=np.nan) for r in runs]
            worst = max((measured[a] / limit for r in runs for a in r["front"]), default=np.nan)
            m, lo, hi = mean_ci(fractions)
            ok = [b for b in best if np.isfinite(b)]
            am, alo, ahi = mean_ci(ok) if ok else (np.nan, np.nan, np.nan)
            n_over, n_all = sum(map(sum, over)), sum(map(len, over))
            lines.append(f"{budget:9s} {sampler:7s} {len(runs):5d} {n_all / len(runs):5.1f}  "
                         f"{m:6.1%} [{lo:6.1%}, {hi:6.1%}]{'':17s} {n_over:4d}/{n_all:<4d} "
                         f"{sum(f > 0 for f in fractions):2d}/{len(runs):<2d} {worst - 1:+6.1%}  "
                         f"{am:.4f} [{alo:.4f}, {ahi:.4f}]     {len(best) - len(ok):2d}")
    return lines


def prediction_lines(measured_rows: list[dict], limit: float, label: str) -> list[str]:
    """Predicted against measured on `measured_rows` (`label`: which), overall and near the budget."""
    from scipy.stats import kendalltau

    pred = np.array([r["predicted"] for r in measured_rows])
    ms = np.array([r["ms"] for r in measured_rows])
    flops = np.array([r["flops"] for r in measured_rows])
    err = pred / ms - 1
    near = np.abs(ms / limit - 1) <= 0.10
    out = [f"predicted vs measured, {len(ms)} {label} ({ms.min():.4f}-{ms.max():.4f} ms): "
           f"{np.mean(np.abs(err) <= 0.1):.1%} within ±10%, {np.mean(np.abs(err) <= 0.2):.1%} within ±20%, "
           f"RMSE {100 * np.sqrt(np.mean(err ** 2)):.1f}%, bias {100 * np.mean(err):+.1f}%, max |error| "
           f"{100 * np.abs(err).max():.1f}%; Kendall tau {kendalltau(pred, ms).statistic:.3f} "
           f"(FLOPs {kendalltau(flops, ms).statistic:.3f})"]
    if near.any():
        out.append(f"within ±10% of the budget when measured: {near.sum()} architectures, RMSE "
                   f"{100 * np.sqrt(np.mean(err[near] ** 2)):.1f}%, bias {100 * np.mean(err[near]):+.1f}%; "
                   f"wrong side of the budget by prediction: {int(np.sum((pred <= limit) != (ms <= limit)))} of {len(ms)}")
    spreads = np.array([r["spread"] for r in measured_rows])
    loads = np.array([r["load1"] for r in measured_rows])
    out.append(f"measurement: repeat spread (median of all calls / fastest quarter - 1) median {np.median(spreads):.1%}; "
               f"1-min load average while measuring {loads.min():.1f}-{loads.max():.1f} (median {np.median(loads):.1f})")
    return out


def oracle_lines(measured_rows: list[dict], judged: dict, plan: dict, pred: dict) -> list[str]:
    """With every architecture measured: the best judged accuracy within the budget, and which
    architectures each budget admits against the measured feasible set."""
    limit = plan["limit_ms"]
    ms = {r["spec_id"]: r["ms"] for r in measured_rows}
    feasible = {a for a, m in ms.items() if m <= limit}
    best = max(judged[a] for a in feasible)
    out = [f"all {len(ms)} architectures measured: {len(feasible)} within the budget; best judged accuracy among "
           f"them {best:.4f} (the oracle)"]
    for b in BUDGETS:
        a = admitted(plan[b][0], pred)
        out.append(f"  {b:9s} admits {len(a):2d}: {len(a - feasible):2d} over the budget when measured, "
                   f"{len(feasible - a):2d} within it left out; best judged accuracy it admits within the budget "
                   f"{max((judged[x] for x in a & feasible), default=float('nan')):.4f}")
    return out


def report(plan: dict, trials: int) -> str:
    """The summary text from searches.jsonl and measured.jsonl."""
    rows = [r for r in _rows(OUT / "searches.jsonl") if r["trials"] == trials]
    measured_rows = _rows(OUT / "measured.jsonl")
    measured = {r["spec_id"]: r["ms"] for r in measured_rows}
    judged = judged_accuracy()
    limit = plan["limit_ms"]
    on_fronts = {a for r in rows for a in r["front"]}
    missing = on_fronts - set(measured)
    lines = [f"== search under a latency budget: bench space (96 architectures), graded task: searches see seed "
             f"{SEEN}, judged on the mean of seeds {', '.join(map(str, JUDGED))}; device: TFLite float stream, "
             f"1 thread, this machine ({PROFILE.relative_to(ROOT)}); {trials} counted trials a search",
             f"budgets (from predictions, before any search): latency L = {limit:.4f} ms per frame (median of the 96); "
             + "; ".join(f"{b}: {plan[b][0]} ({plan[b][1]} architectures)" for b in BUDGETS),
             f"{len(on_fronts)} distinct architectures on the fronts, {len(on_fronts) - len(missing)} measured", ""]
    if missing:
        return "\n".join(lines + [f"{len(missing)} front members not measured yet: run without --report"])
    lines += ["fronts measured against L (over budget: measured ms > L; worst: the largest measured/L - 1 on any "
              "front; accuracy at budget: best judged accuracy among front members measured within L, mean over "
              "seeds; none: searches with no such member)"]
    lines += search_lines(rows, measured, judged, limit) + [""]
    lines += prediction_lines([r for r in measured_rows if r["spec_id"] in on_fronts], limit, "front members")
    if len(measured) > len(on_fronts):
        lines += prediction_lines(measured_rows, limit, "architectures (all measured)")
    if len(measured) == len(judged):
        lines += [""] + oracle_lines(measured_rows, judged, plan, predictions(architectures()))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=20, help="search seeds per (budget, sampler)")
    p.add_argument("--trials", type=int, default=20, help="counted trials per search")
    p.add_argument("--all", action="store_true", help="also measure the architectures on no front")
    p.add_argument("--report", action="store_true", help="print the summary from what is on disk")
    args = p.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    specs = architectures()
    pred = predictions(specs)
    plan = budgets(pred)
    if not args.report:
        run_searches(plan, args.seeds, args.trials)
        fronts = [a for r in _rows(OUT / "searches.jsonl") if r["trials"] == args.trials for a in r["front"]]
        measure_archs(fronts + (sorted(specs) if args.all else []), specs, pred)
    text = report(plan, args.trials)
    print(text)
    (OUT / "summary.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
