"""Search driver benchmarks, each measured side by side in one run through `movinas search` itself.

1. Samplers: hypervolume of the feasible front reached by TPE and NSGA-II against random sampling at
   equal trial budgets over several seeds, on an objective that is cheap to evaluate: the analytic
   pair (maximize params, minimize FLOPs) under `activation_bytes <= 100MB` on the `paper` space.
   (Zero-cost scores were the first choice, but they cost 4 s per trial on the small space and
   30 s on the paper space on this CPU, too slow for seeds x samplers x trials.)
2. Driver overhead per trial, excluding measurement: everything but training (sampling, costing,
   storage, Optuna's ask/tell, the budget lock, artifacts) as a fraction of a demo trial's time.
3. Early stopping: the demo search with a random sampler (so every run sees the same architectures)
   with `early_stopping: off` and two `dominated` settings: training seconds spent and the final front.

    python benchmarks/search.py                 # all three (about 15 minutes on 2 cores)
    python benchmarks/search.py --only samplers --seeds 5 --trials 40
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evaluation.results.record import VAL_ACCURACY, Outcome, read_trial  # noqa: E402
from nas.cli import main  # noqa: E402
from nas.commands.demo import config_path  # noqa: E402
from nas.storage import default_url  # noqa: E402

SAMPLERS = {"random": {}, "tpe": {"n_startup_trials": 10}, "nsga2": {"population_size": 10}}
CHEAP = {"space": "paper", "num_classes": 600, "objectives": [{"maximize": "params"}, {"minimize": "flops"}],
         "constraints": ["activation_bytes <= 100MB"]}


def search(root: Path, config: dict, *args: str) -> optuna.Study:
    cfg = root / f"{config['study']}.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["search", str(cfg), "--results-dir", str(root), *args])
    if code:
        raise SystemExit(f"search {config['study']} failed ({code}): {err.getvalue()[-2000:]}")
    return optuna.load_study(study_name=config["study"], storage=default_url(root, config["study"]))


def front_losses(study: optuna.Study) -> np.ndarray:
    """Objective values of the feasible front as minimization losses."""
    signs = np.array([-1.0 if d == optuna.study.StudyDirection.MAXIMIZE else 1.0 for d in study.directions])
    trials = study.best_trials
    return np.array([t.values for t in trials]) * signs if trials else np.zeros((0, len(signs)))


def hypervolume(losses: np.ndarray, reference: np.ndarray, scale: np.ndarray) -> float:
    from evaluation.compat import hypervolume as optuna_hypervolume  # Optuna's own, an internal in Optuna 5

    pts = losses[(losses < reference).all(axis=1)] / scale
    return optuna_hypervolume(pts, reference / scale) if len(pts) else 0.0


def bench_samplers(root: Path, seeds: int, trials: int) -> None:
    from nas.config import config_from_dict
    from nas.constraints import is_feasible, violations
    from search_space import SearchSpace, estimate_cost

    # reference point and scale from 2,000 random feasible architectures: params 0, the worst FLOPs
    space = SearchSpace.from_yaml("paper")
    limits = config_from_dict(CHEAP).constraints
    rng = np.random.default_rng(12345)
    costs = [estimate_cost(space.sample(rng), num_classes=600) for _ in range(2000)]
    feasible = [c for c in costs if is_feasible(violations(limits, c))]
    reference = np.array([0.0, 1.1 * max(c.flops for c in feasible)])
    scale = np.array([max(c.params for c in feasible), max(c.flops for c in feasible)])
    print(f"\n== samplers: maximize params, minimize flops, activation_bytes <= 100MB, 'paper' space; "
          f"{trials} trials x {seeds} seeds ({len(feasible) / len(costs):.0%} of random samples feasible)")
    print("hypervolume normalized by (max params, max flops) of 2,000 random feasible samples")
    table: dict[str, list[float]] = {name: [] for name in SAMPLERS}
    seconds: dict[str, float] = dict.fromkeys(SAMPLERS, 0.0)
    proposals: dict[str, list[int]] = {name: [0, 0] for name in SAMPLERS}  # [feasible, infeasible]
    for seed in range(seeds):
        for name, options in SAMPLERS.items():
            t = time.perf_counter()
            study = search(root, {**CHEAP, "study": f"{name}-{seed}", "seed": seed, "trials": trials,
                                  "sampler": {"name": name, "options": options}})
            seconds[name] += time.perf_counter() - t
            table[name].append(hypervolume(front_losses(study), reference, scale))
            outcomes = [read_trial(t).outcome for t in study.trials]
            proposals[name][0] += sum(o in (Outcome.COMPLETE, Outcome.DUPLICATE) for o in outcomes)
            proposals[name][1] += outcomes.count(Outcome.INFEASIBLE)
    base = statistics.mean(table["random"])
    print(f"{'sampler':8} {'mean HV':>8} {'stdev':>7} {'min':>7} {'max':>7} {'vs random':>9} {'wins':>6} "
          f"{'feasible':>8} {'s/trial':>8}")
    for name, hv in table.items():
        wins = sum(a > b for a, b in zip(hv, table["random"]))
        ok, bad = proposals[name]
        print(f"{name:8} {statistics.mean(hv):8.4f} {statistics.stdev(hv):7.4f} {min(hv):7.4f} {max(hv):7.4f} "
              f"{statistics.mean(hv) / base:9.3f} {wins:3d}/{seeds:<2d} {ok / (ok + bad):8.0%} "
              f"{seconds[name] / (seeds * trials):8.3f}")
    print("feasible: share of the sampler's proposals that met the constraint (rejected ones inform the next)")


def demo_config(study: str, **changes) -> dict:
    config = yaml.safe_load(config_path().read_text())
    config.update(study=study, **changes)
    return config


def bench_overhead(root: Path, trials: int) -> None:
    print(f"\n== driver overhead: the demo config, {trials} trials (one process, SQLite)")
    study = search(root, demo_config("overhead", trials=trials))
    rows = sorted((t for t in study.trials if t.datetime_complete), key=lambda t: t.datetime_start)
    trained = [t for t in rows if "train" in t.user_attrs.get("timing", {})]
    walls = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trained]
    train = [t.user_attrs["timing"]["train"] for t in trained]
    prepare = [t.user_attrs["timing"]["prepare"] for t in trained]
    gaps = [(b.datetime_start - a.datetime_complete).total_seconds() for a, b in zip(rows, rows[1:])]
    rejected = [(t.datetime_complete - t.datetime_start).total_seconds() for t in rows if t not in trained]
    # everything but training, rejected trials included, per trained trial
    overhead = (sum(w - tr for w, tr in zip(walls, train)) + sum(rejected) + sum(gaps)) / len(trained)
    print(f"trained trials: {len(trained)}, rejected untrained: {len(rejected)}")
    print(f"mean trained trial wall time     {statistics.mean(walls):8.3f} s (training {statistics.mean(train):.3f} s)")
    print(f"  sample + cost + storage attrs  {statistics.mean(prepare):8.3f} s")
    print(f"  rest of the trial, not training {statistics.mean(w - tr - p for w, tr, p in zip(walls, train, prepare)):7.3f} s "
          "(artifacts, metrics, early-stopping checks)")
    print(f"  between trials (tell, lock, budget count, ask) {statistics.mean(gaps):.3f} s")
    if rejected:
        print(f"a rejected trial, whole            {statistics.mean(rejected):8.3f} s")
    print(f"driver overhead per trained trial {overhead:8.3f} s = {overhead / statistics.mean(walls):.2%} of a demo trial "
          "(rejected trials and gaps included)")
    t = time.perf_counter()
    n = 100
    search(root, {"study": "costonly", "space": "small", "num_classes": 4, "trials": n, "sampler": "tpe",
                  "objectives": [{"minimize": "flops"}, {"minimize": "activation_bytes"}]})
    print(f"cost-only search, {n} TPE trials: {(time.perf_counter() - t) / n:.3f} s per trial end to end "
          "(startup included)")


EARLY_RULES = {
    "off": {"rule": "off"},
    "dominated, min_epoch 2": {"rule": "dominated", "min_epoch": 2},
    "dominated, min_epoch 3, margin 0.05": {"rule": "dominated", "min_epoch": 3, "margin": 0.05},
}


def bench_early_stopping(root: Path, trials: int, epochs: int) -> None:
    print(f"\n== early stopping: demo config, random sampler, {trials} trials of {epochs} epochs, each rule "
          f"against off")
    runs = {}
    for i, (name, rule) in enumerate(EARLY_RULES.items()):
        t = time.perf_counter()
        study = search(root, demo_config(f"early-{i}", trials=trials, sampler="random", early_stopping=rule,
                                         proxy={"epochs": epochs, "batch_size": 8}))
        wall = time.perf_counter() - t
        trained = [t for t in study.trials if "train" in read_trial(t).timing]
        runs[name] = (study, trained)
        stopped = [t for t in trained if read_trial(t).outcome is Outcome.EARLY_STOPPED]
        best = max((t.values[0] for t in study.best_trials), default=float("nan"))
        print(f"{name:36}: wall {wall:6.1f} s, training {sum(read_trial(t).timing['train'] for t in trained):6.1f} s, "
              f"epochs trained {sum(len(read_trial(t).curve) for t in trained):3d}, early-stopped {len(stopped)}, "
              f"best val_accuracy {best:.3f}")
    off, off_trained = runs["off"]
    off_front = sorted(t.user_attrs["spec_id"] for t in off.best_trials)
    print("front without early stopping: " + ", ".join(
        f"trial {t.number} {t.values[0]:.3f} @ {t.values[1] / 1e6:.2f}M FLOPs" for t in off.best_trials))
    for name, (study, trained) in list(runs.items())[1:]:
        same = [t.user_attrs["spec_id"] for t in off_trained] == [t.user_attrs["spec_id"] for t in trained]
        saved = 1 - sum(t.user_attrs["timing"]["train"] for t in trained) / \
            sum(t.user_attrs["timing"]["train"] for t in off_trained)
        epochs = 1 - sum(len(t.user_attrs["curve"]) for t in trained) / sum(len(t.user_attrs["curve"]) for t in off_trained)
        front = sorted(t.user_attrs["spec_id"] for t in study.best_trials)
        print(f"{name}: same architectures as off: {same}; epochs saved {epochs:.1%}, training seconds saved "
              f"{saved:.1%}; front identical: {front == off_front}")
        for t in off.best_trials:
            if t.user_attrs["spec_id"] not in front:
                print(f"  lost from the front: trial {t.number} values {t.values} "
                      f"(curve {[round(e[VAL_ACCURACY], 3) for e in t.user_attrs['curve']]})")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("samplers", "overhead", "early"), default=None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=50, help="trials per sampler run")
    parser.add_argument("--demo-trials", type=int, default=8)
    parser.add_argument("--early-trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6, help="proxy epochs in the early-stopping runs")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    import platform

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"Optuna {optuna.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.only in (None, "samplers"):
            bench_samplers(root, args.seeds, args.trials)
        if args.only in (None, "overhead"):
            bench_overhead(root, args.demo_trials)
        if args.only in (None, "early"):
            bench_early_stopping(root, args.early_trials, args.epochs)


if __name__ == "__main__":
    run()
