"""Measurements against the benchmark table (results/bench/table.csv, `movinas bench generate`).

1. `table`: what the table holds, its reproducibility (Kendall tau between the rankings of two
   disjoint seed sets, with a 95% bootstrap interval: {0,1} vs {2,3} where every architecture
   has all four seeds, else {0} vs {1}) and the spread targets on the seed-averaged accuracy.
2. `proxies`: every cheap proxy against the ground truth (seed-averaged final accuracy): params,
   MACs, the zero-cost scores, and the accuracy / loss after epoch k of the reference run of one
   seed (compared with the mean over the *other* seeds, so the proxy and the truth share no
   training noise). Kendall tau and Spearman rho with 95% bootstrap intervals, seconds per arch.
3. `samplers`: TPE, NSGA-II, random (and GP when torch is installed) searching the table as `proxy: {kind: table}` does, in
   memory (`table_search`, so that seeds x samplers take seconds): hypervolume of accuracy vs FLOPs (normalized by the table's best
   accuracy and the space's largest FLOPs, reference point (0, 1.1 x largest FLOPs)), mean +- sd
   over seeds and wins against random at the same seed.
4. `speed`: wall time of a 50-trial TPE search over a table of the whole space (made-up
   accuracies: this times the evaluator, not the table's content).

    python benchmarks/groundtruth.py                        # all four
    python benchmarks/groundtruth.py --only table proxies   # any subset
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluation.proxies.fidelity import bootstrap_ci, kendall_tau, spearman_rho  # noqa: E402
from evaluation.proxies.table import PROTOCOL, arch_means, load_table, reproducibility, spread  # noqa: E402
from evaluation.results.record import TRAIN_ACCURACY, VAL_ACCURACY, VAL_LOSS  # noqa: E402

TABLE = Path(__file__).resolve().parent.parent / "results" / "bench" / "table.csv"
ZERO_COST_CACHE = TABLE.parent / "zero_cost.csv"
SAMPLERS = {"random": {}, "tpe": {"n_startup_trials": 10}, "nsga2": {"population_size": 10}}
try:  # Optuna's GP sampler needs torch, an optional dependency
    import torch  # noqa: F401

    SAMPLERS["gp"] = {"n_startup_trials": 10}
except ImportError:
    pass


def bench_table(table) -> None:
    seeds = sorted(table["seed"].unique())
    per_arch = table.groupby("spec_id")["seed"].nunique()
    print(f"\n== the table: {len(table)} rows, {len(per_arch)} architectures of 96, seeds {[int(s) for s in seeds]}; "
          f"architectures with k seeds: {per_arch.value_counts().sort_index().to_dict()}")
    loads = table["load_avg"].dropna()
    print(f"seconds per (architecture, seed): median {table['seconds'].median():.0f}, "
          f"range {table['seconds'].min():.0f}-{table['seconds'].max():.0f}; 1-min load average while "
          f"training: median {loads.median():.1f}" if len(loads) else "")
    for a, b in (((0, 1), (2, 3)), ((0,), (1,)), ((0,), (2,)), ((1,), (3,))):
        r = reproducibility(table, a, b)
        if r["n"] >= 5:
            print(f"reproducibility: seeds {set(a)} vs {set(b)}: Kendall tau {r['tau']:.3f} "
                  f"[{r['low']:.3f}, {r['high']:.3f}] over {r['n']} architectures")
    # the other two ways to split four seeds in halves, and the final loss instead of the accuracy:
    # the {0,1} vs {2,3} figure above is one draw of several equally valid ones
    halves = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))
    for metric in (VAL_ACCURACY, VAL_LOSS):
        rs = [reproducibility(table, a, b, metric=metric) for a, b in halves]
        if rs[0]["n"] >= 5:
            taus = ", ".join(f"{set(a)} vs {set(b)} {r['tau']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
                             for (a, b), r in zip(halves, rs))
            print(f"reproducibility of the final {metric}, every split of the four seeds in halves "
                  f"({rs[0]['n']} architectures): {taus}; mean {np.mean([r['tau'] for r in rs]):.3f}")
    for name, subset in (("seeds 0-1 mean", [0, 1]), ("all seeds mean", None)):
        means = arch_means(table, subset)
        means = means[means["n_seeds"] == (len(subset) if subset else means["n_seeds"].max())]
        s = spread(means[VAL_ACCURACY])
        print(f"spread ({name}, {s['n']} architectures): best {s['best']:.3f}, median {s['median']:.3f}, "
              f"90th percentile {s['p90']:.3f}; best 10% over the median by {s['top10_over_median']:.3f} "
              f"(target >= 0.10); {s['near_best']:.1%} within 0.02 of the best (target <= 10%)")
    means = arch_means(table, [0, 1])
    print("seed-0/1 mean accuracy by temporal kernel of stages 1 and 2 (bag of frames = both 1x3x3):")
    print(means.groupby(["s1_b1_kernel", "s2_b1_kernel"])[VAL_ACCURACY].agg(["mean", "min", "max", "size"])
          .round(3).to_string())


def _truth_and_proxy(table, proxy_seed: int):
    """Ground truth = mean final accuracy over the seeds other than `proxy_seed`; rows of the
    architectures that have `proxy_seed` and at least one other seed."""
    other = arch_means(table[table["seed"] != proxy_seed]).set_index("spec_id")
    own = table[table["seed"] == proxy_seed].set_index("spec_id")
    common = own.index.intersection(other.index)
    return other.loc[common], own.loc[common]


def bench_proxies(table, zero_cost: bool) -> None:
    from evaluation.datasets import load_dataset
    from evaluation.proxies.zero_cost import zero_cost_scores
    from nas.config import dataset_for
    from search_space import SearchSpace

    truth, run = _truth_and_proxy(table, 0)
    y = truth[VAL_ACCURACY].to_numpy()
    print(f"\n== proxies vs ground truth: {len(y)} architectures; truth = mean final val accuracy over seeds "
          f"!= 0, epoch-k proxies from the seed-0 reference run (its cosine schedule is 6 epochs long)")
    rows = [("params", truth["params"], 0.0), ("macs", truth["macs"], 0.0)]
    per_epoch = run["seconds"] / PROTOCOL["proxy"]["epochs"]
    for k in range(1, PROTOCOL["proxy"]["epochs"]):
        for metric, sign in ((VAL_ACCURACY, 1), (VAL_LOSS, -1), (TRAIN_ACCURACY, 1)):
            rows.append((f"epoch {k} {'-' if sign < 0 else ''}{metric}", sign * run[f"{metric}_e{k}"],
                         float(per_epoch.median() * k)))
    last = PROTOCOL["proxy"]["epochs"]
    rows.append((f"seed-0 run, final ({last} epochs)", run[VAL_ACCURACY], float(run["seconds"].median())))
    if zero_cost:
        import pandas as pd

        # scores depend only on the architecture, the data and the seed: cached beside the table
        cache_path = ZERO_COST_CACHE
        cache = pd.read_csv(cache_path).set_index("spec_id") if cache_path.is_file() else pd.DataFrame()
        space = SearchSpace.from_yaml("bench")
        data, new = {}, {}
        for arch, r in truth.iterrows():
            if arch in cache.index:
                continue
            spec = space.decode({k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in space.param_choices()})
            cfg = dataset_for(dict(PROTOCOL["dataset"]), spec)
            key = repr(sorted(cfg.items()))
            if key not in data:
                data[key] = load_dataset(cfg)
            t = time.perf_counter()
            new[arch] = {**zero_cost_scores(spec, data[key], batch_size=16, seed=0),
                         "seconds": time.perf_counter() - t}
        if new:
            cache = pd.concat([cache, pd.DataFrame.from_dict(new, orient="index")])
            cache.rename_axis("spec_id").to_csv(cache_path)
        secs = float(cache.loc[truth.index, "seconds"].median())
        for name in ("grad_norm", "snip", "synflow", "naswot"):
            rows.append((name, cache.loc[truth.index, name].to_numpy(), secs / 4))
        print(f"zero-cost: all four scores of one architecture take {secs:.1f} s (median; batch 16, seed 0; "
              f"cached in {cache_path.name})")
    print(f"{'proxy':32} {'Kendall tau [95% CI]':>26} {'Spearman rho [95% CI]':>26} {'s/arch':>7}")
    for name, values, secs in rows:
        x = np.asarray(values, dtype=float)
        t = bootstrap_ci(kendall_tau, x, y)
        r = bootstrap_ci(spearman_rho, x, y)
        print(f"{name:32} {t[0]:7.3f} [{t[1]:6.3f}, {t[2]:6.3f}]   {r[0]:7.3f} [{r[1]:6.3f}, {r[2]:6.3f}] "
              f"{secs:7.1f}")


def _table_config(study: str, table: Path, sampler: str, seed: int, trials: int) -> dict:
    """A `movinas search` config over the table (the speed check runs it through the CLI)."""
    return {"study": study, "space": "bench", "trials": trials, "seed": seed, "num_classes": 10,
            "sampler": {"name": sampler, "options": SAMPLERS[sampler]},
            "dataset": {"kind": "graded", "clips_per_class": 2, "frames": "spec", "resolution": "spec"},
            "objectives": [{"maximize": VAL_ACCURACY}, {"minimize": "flops"}],
            "proxy": {"kind": "table", "path": str(table.resolve())}}


def _sampler(name: str, seed: int):
    import optuna

    classes = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler,
               "nsga2": optuna.samplers.NSGAIISampler, "gp": optuna.samplers.GPSampler}
    return classes[name](seed=seed, **SAMPLERS[name])


def table_search(name: str, seed: int, trials: int, lookup, space, cost_of,
                 resample: bool = True) -> tuple[np.ndarray, int]:
    """A search of `trials` trials over the table, in memory, with the space's parameters through
    the Optuna trial, as `movinas search` with `proxy: {kind: table}` runs it: a proposal repeating
    an evaluated architecture is re-sampled (`nas.trial.sample_distinct`) unless `resample` is off.
    Every trial is one of the budget: one that still repeats an architecture is told its known values
    again (nothing new is learnt), one the table lacks fails untrained. Returns the front's losses
    (-accuracy, flops) and the number of distinct architectures evaluated."""
    import optuna

    from nas.trial import sample_distinct, spec_id

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(name, seed))
    seen: set[str] = set()
    for _ in range(trials):
        trial = study.ask()
        arch = spec_id(sample_distinct(trial, space, seen, seed=seed) if resample else space.sample(trial))
        row = lookup.get(arch)
        if row is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        seen.add(arch)
        study.tell(trial, [row[VAL_ACCURACY], cost_of[arch]])
    return np.array([[-t.values[0], t.values[1]] for t in study.best_trials]), len(seen)


def bench_samplers(table_path: Path, table, seeds: int, trials: int, resample: bool = True) -> None:
    import optuna
    from search import hypervolume

    from evaluation.proxies.table import TableLookup
    from search_space import SearchSpace, estimate_cost

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.from_yaml("bench")
    lookup = TableLookup(table_path, "bench")
    cost_of = {arch: float(row["flops"]) for arch, row in lookup.rows.items()}
    max_flops = max(estimate_cost(space.decode(p), num_classes=10).flops for p in _grid(space))
    best = max(r[VAL_ACCURACY] for r in lookup.rows.values())
    reference, scale = np.array([0.0, 1.1 * max_flops]), np.array([best, max_flops])
    print(f"\n== samplers on the table: maximize val_accuracy, minimize flops; {trials} trials x {seeds} "
          f"seeds; the table holds {len(lookup.rows)} of the 96 architectures (the others are rejected untrained); "
          "hypervolume normalized by (best accuracy in the table, largest FLOPs of the space), reference (0, 1.1); "
          + ("re-proposed architectures re-sampled as movinas search does" if resample else "plain Optuna samplers"))
    hv: dict[str, list[float]] = {name: [] for name in SAMPLERS}
    distinct: dict[str, list[int]] = {name: [] for name in SAMPLERS}
    seconds = dict.fromkeys(SAMPLERS, 0.0)
    for seed in range(seeds):
        for name in SAMPLERS:
            t = time.perf_counter()
            front, n = table_search(name, seed, trials, lookup, space, cost_of, resample)
            hv[name].append(hypervolume(front, reference, scale))
            distinct[name].append(n)
            seconds[name] += time.perf_counter() - t
    print(f"{'sampler':8} {'HV mean':>8} {'sd':>7} {'vs random':>9} {'wins':>7} {'ties':>5} {'archs':>6} "
          f"{'s/search':>9}")
    for name, values in hv.items():
        wins = sum(a > b for a, b in zip(values, hv["random"]))
        ties = sum(a == b for a, b in zip(values, hv["random"]))
        print(f"{name:8} {statistics.mean(values):8.4f} {statistics.stdev(values):7.4f} "
              f"{statistics.mean(values) / statistics.mean(hv['random']):9.3f} {wins:3d}/{seeds:<3d} {ties:5d} "
              f"{statistics.mean(distinct[name]):6.1f} {seconds[name] / seeds:9.2f}")
    print("archs: distinct architectures evaluated per search (the rest of the trials re-proposed known ones"
          + (" or ones the table lacks" if len(lookup.rows) < len(_grid(space)) else "") + ")")


def _grid(space):
    import itertools

    choices = space.param_choices()
    return [dict(zip(choices, values)) for values in itertools.product(*choices.values())]


def bench_speed() -> None:
    import pandas as pd
    from search import search

    from nas.bench import bench_archs, made_up_table

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "full.csv"
        table: pd.DataFrame = made_up_table(bench_archs())
        table.to_csv(path, index=False)
        t = time.perf_counter()
        study = search(Path(tmp), _table_config("speed", path, "tpe", 0, 50))
        wall = time.perf_counter() - t
    done = sum(t.state.name == "COMPLETE" for t in study.trials)
    print(f"\n== speed: a {done}-trial TPE search over a table of all 96 architectures: {wall:.1f} s wall "
          f"({len(study.trials)} trials in all, duplicates rejected) (target < 30 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--only", nargs="+", choices=["table", "proxies", "samplers", "speed"],
                        default=["table", "proxies", "samplers", "speed"])
    parser.add_argument("--no-zero-cost", action="store_true", help="skip the zero-cost scores (slow)")
    parser.add_argument("--seeds", type=int, default=20, help="sampler seeds")
    parser.add_argument("--trials", type=int, default=30, help="trials (proposals) per sampler search")
    parser.add_argument("--no-resample", action="store_true",
                        help="plain Optuna samplers: no re-sampling of re-proposed architectures")
    args = parser.parse_args()
    table = load_table(args.table)
    if "table" in args.only:
        bench_table(table)
    if "proxies" in args.only:
        bench_proxies(table, zero_cost=not args.no_zero_cost)
    if "samplers" in args.only:
        bench_samplers(args.table, table, args.seeds, args.trials, resample=not args.no_resample)
    if "speed" in args.only:
        bench_speed()


if __name__ == "__main__":
    main()
