"""Multi-fidelity search measured for free on the benchmark table's curves (issue 27, point 2).

The table (results/bench/table.csv) holds every architecture of the `bench` space trained with the
reference protocol (6 epochs) at four seeds, with the validation accuracy after every epoch. A
simulated search sees only seed 0: its per-epoch curve is what "training" an architecture shows,
one epoch at a time, and each epoch shown costs one epoch of the budget. The search is judged on the
mean final accuracy of seeds 1-3, which it never saw: its picks are the Pareto front (by seed 0's
final accuracy against FLOPs) of the architectures it trained to the end, and the figure is the
hypervolume of those picks' (judged accuracy, FLOPs), normalized by the table's best judged accuracy
and the space's largest FLOPs, reference point (0, 1.1), as in benchmarks/groundtruth.py.

Methods, each run for `--seeds` search seeds at the same epoch budget (`--budget`, default 288
epochs = 48 full trainings, half the space):
- full training (6 epochs a trial) with random, TPE and GP proposals (GP when torch is installed);
- random proposals with the `dominated` early-stopping rule (movinas' default);
- random proposals with `mo-asha` (min_epoch 1, eta 3, min_trials 3: the defaults, fixed before
  any run; rungs at epochs 1 and 3);
- TPE proposals with `mo-asha`;
- both again with the first rung at epoch 2 (`mo-asha-e2`: min_epoch 2, eta 3, one rung at epoch 2),
  added after the runs above: seed 0's own curves show epoch 1 inside the learning-rate warm-up
  (99% of architectures within 0.05 of chance after it), so a rung there ranks noise.
Proposals go through `nas.trial.sample_distinct` and the stopping decisions through
`nas.pruning.should_stop`, the code `movinas search` runs; one worker, so a trial decides against
every trial before it. Duplicates are rejected untrained (not counted, no epochs); a search ends
when its budget is spent or the space is exhausted (every architecture evaluated).

    python benchmarks/table_curves.py            # writes results/table_curves/{hv_vs_epochs.csv,.png}
    python benchmarks/table_curves.py --seeds 3  # a quick look
    python benchmarks/table_curves.py --replot   # redraw the figure from the written CSV
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.compat import hypervolume, pareto_front_mask  # noqa: E402
from evaluation.proxies.table import PROTOCOL, arch_means, load_table  # noqa: E402
from nas.config import EarlyStopping  # noqa: E402
from nas.pruning import Finished, should_stop  # noqa: E402

TABLE = ROOT / "results" / "bench" / "table.csv"
OUT = ROOT / "results" / "table_curves"
EPOCHS = int(PROTOCOL["proxy"]["epochs"])
SEEN_SEED, JUDGED_SEEDS = 0, [1, 2, 3]
STARTUP = 10  # TPE's and GP's random start-up trials, as in benchmarks/groundtruth.py
RULES = {"dominated": EarlyStopping(rule="dominated"), "mo-asha": EarlyStopping(rule="mo-asha"),
         "mo-asha-e2": EarlyStopping(rule="mo-asha", min_epoch=2)}
METHODS = {  # name: (proposals, early-stopping rule or None for full training)
    "random": ("random", None), "tpe": ("tpe", None), "gp": ("gp", None),
    "random+dominated": ("random", "dominated"), "mo-asha": ("random", "mo-asha"), "mo-asha+tpe": ("tpe", "mo-asha"),
    "mo-asha-e2": ("random", "mo-asha-e2"), "mo-asha-e2+tpe": ("tpe", "mo-asha-e2"),
}
MAX_REJECTED = 30  # consecutive duplicate proposals after which a search counts the space as exhausted


@dataclass(frozen=True)
class Curves:
    """What the searches see (seed 0's curves) and what judges them (seeds 1-3), by spec id."""

    seen: dict  # spec_id -> tuple of val_accuracy after epochs 1..EPOCHS (seed 0)
    judged: dict  # spec_id -> mean final val_accuracy over the judged seeds
    flops: dict  # spec_id -> FLOPs
    scale: np.ndarray  # (best judged accuracy, largest FLOPs): normalizes the hypervolume


def load_curves(path: Path) -> Curves:
    table = load_table(path)
    seen_rows = table[table["seed"] == SEEN_SEED]
    columns = [f"val_accuracy_e{e}" for e in range(1, EPOCHS + 1)]
    seen = {r["spec_id"]: tuple(float(r[c]) for c in columns) for r in seen_rows.to_dict("records")}
    means = arch_means(table, JUDGED_SEEDS)
    means = means[means["n_seeds"] == len(JUDGED_SEEDS)]
    judged = {r["spec_id"]: float(r["val_accuracy"]) for r in means.to_dict("records")}
    flops = {r["spec_id"]: float(r["flops"]) for r in seen_rows.to_dict("records")}
    keep = set(seen) & set(judged)
    return Curves({k: seen[k] for k in keep}, {k: judged[k] for k in keep}, {k: flops[k] for k in keep},
                  np.array([max(judged[k] for k in keep), max(flops[k] for k in keep)]))


def judged_hv(trained: list[str], data: Curves) -> float:
    """Hypervolume of the picks: the front by seed 0's final accuracy among `trained`, judged."""
    if not trained:
        return 0.0
    seen = np.array([[-data.seen[a][-1], data.flops[a]] for a in trained])
    picks = [a for a, on in zip(trained, pareto_front_mask(seen)) if on]
    loss = np.array([[-data.judged[a], data.flops[a]] for a in picks]) / data.scale
    return hypervolume(loss, np.array([0.0, 1.1]))


def oracle_hv(data: Curves) -> float:
    """Hypervolume of the true front by judged accuracy over the whole space (the ceiling)."""
    loss = np.array([[-data.judged[a], data.flops[a]] for a in data.judged]) / data.scale
    return hypervolume(loss[pareto_front_mask(loss)], np.array([0.0, 1.1]))


def _sampler(name: str, seed: int):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP)
    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP)


def train(arch: str, rule: EarlyStopping | None, finished: list[Finished], data: Curves) -> int:
    """Epochs the architecture trains before `rule` stops it (EPOCHS: to the end)."""
    if rule is None:
        return EPOCHS
    flops = data.flops[arch]
    for epoch, value in enumerate(data.seen[arch], start=1):
        if should_stop(rule, epoch, value, {"flops": flops}, {"flops": "minimize"}, True, finished, EPOCHS):
            return epoch
    return EPOCHS


def run_search(method: str, seed: int, budget: int, data: Curves, space) -> list[tuple[int, float]]:
    """One search: [(epochs spent, judged hypervolume)] after each counted trial."""
    import optuna

    from nas.trial import sample_distinct, spec_id

    proposals, rule_name = METHODS[method]
    rule = RULES[rule_name] if rule_name else None
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=_sampler(proposals, seed))
    finished: list[Finished] = []  # what the rule compares with (mo-asha: stopped trials too)
    evaluated: dict[str, int] = {}  # trained for any epochs: never trained again (movinas' duplicates)
    trained: list[str] = []  # trained to the end: the picks come from these
    history, spent, rejected = [(0, 0.0)], 0, 0
    while spent < budget and rejected < MAX_REJECTED and len(evaluated) < len(data.seen):
        trial = study.ask()
        arch = spec_id(sample_distinct(trial, space, evaluated, seed=seed))
        if arch in evaluated or arch not in data.seen:
            rejected += 1
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        rejected = 0
        epochs = min(train(arch, rule, finished, data), budget - spent)
        spent += epochs
        evaluated[arch] = trial.number
        if epochs == EPOCHS or (rule_name or "").startswith("mo-asha"):
            finished.append(Finished(trial.number, dict(enumerate(data.seen[arch][:epochs], start=1)),
                                     {"flops": data.flops[arch]}))
        if epochs == EPOCHS:
            trained.append(arch)
            study.tell(trial, [data.seen[arch][-1], data.flops[arch]])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        history.append((spent, judged_hv(trained, data)))
    return history


def on_grid(history: list[tuple[int, float]], grid: np.ndarray) -> np.ndarray:
    """The hypervolume held after each number of epochs in `grid` (a step function of `history`)."""
    spent = np.array([h[0] for h in history])
    values = np.array([h[1] for h in history])
    return values[np.searchsorted(spent, grid, side="right") - 1]


def first_reaching(curve: np.ndarray, grid: np.ndarray, target: float) -> int | None:
    """The first epoch count of `grid` where `curve` reaches `target` (None: never)."""
    hit = np.flatnonzero(curve >= target - 1e-12)
    return int(grid[hit[0]]) if len(hit) else None


def report(curves: dict, stats: dict, grid: np.ndarray, budget: int, oracle: float) -> list[str]:
    """The printed lines: hypervolume at fractions of the budget, wins, and the target."""
    marks = [budget // 6, budget // 3, budget // 2, budget]
    cols = [int(np.searchsorted(grid, m)) for m in marks]
    random_final = curves["random"][:, -1]
    target = float(random_final.mean())
    lines = [f"{'method':17} " + " ".join(f"{'HV@' + str(m):>14}" for m in marks)
             + f" {'wins@B':>7} {'epochs to random@B':>19} {'trials':>7} {'full':>5} {'s/search':>9}"]
    for name, c in curves.items():
        mean, sd = c.mean(axis=0), c.std(axis=0, ddof=1)
        wins = int((c[:, -1] > random_final).sum())
        reach = first_reaching(mean, grid, target)
        when = f"{reach} ({reach / budget:.2f} B)" if reach is not None else "not reached"
        lines.append(f"{name:17} " + " ".join(f"{mean[i]:7.4f}±{sd[i]:.4f}" for i in cols)
                     + f" {wins:3d}/{len(c):<3d} {when:>19} {stats[name]['trials']:7.1f} {stats[name]['full']:5.1f} "
                     f"{stats[name]['seconds']:9.2f}")
    third = int(np.searchsorted(grid, budget // 3))
    for name in [n for n in curves if n.startswith("mo-asha")]:
        if name in curves:
            ok = int((curves[name][:, third] >= random_final).sum())
            lines.append(f"{name}: hypervolume after {budget // 3} epochs >= random's after {budget} at the same "
                         f"seed in {ok} of {len(random_final)} seeds")
    lines.append(f"target: random full training's final hypervolume {target:.4f} (mean over seeds; the whole "
                 f"space's true front: {oracle:.4f})")
    return lines


def plot(stats: dict, grid: np.ndarray, budget: int, n: int, path: Path) -> None:
    """HV against epochs, one line per method ({name: (mean, sd)} over `n` seeds) with 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6), dpi=120)
    for name, (mean, sd) in stats.items():
        half = 1.96 * sd / np.sqrt(n)
        ax.plot(grid, mean, label=name, lw=1.6, ls="--" if "+tpe" in name else "-")
        ax.fill_between(grid, mean - half, mean + half, alpha=0.12)
    ax.axhline(stats["random"][0][-1], color="grey", ls=":", lw=1, label="random's final")
    ax.axvline(budget / 3, color="grey", ls="--", lw=0.8)
    ax.set_xlim(0, budget)
    ax.set_ylim(0.6, None)
    ax.set_xlabel("epochs spent (6 = one full training; dashed line: a third of the budget)")
    ax.set_ylabel("hypervolume of the picks, judged on seeds 1-3")
    ax.set_title(f"bench table: searches see seed 0's curves ({n} seeds, 95% bands)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def replot(out: Path, budget: int, n: int) -> None:
    """Redraw the figure from the written hv_vs_epochs.csv (no searches)."""
    import pandas as pd

    frame = pd.read_csv(out / "hv_vs_epochs.csv")
    names = [c[:-5] for c in frame.columns if c.endswith("_mean")]
    stats = {m: (frame[f"{m}_mean"].to_numpy(), frame[f"{m}_sd"].to_numpy()) for m in names}
    plot(stats, frame["epochs"].to_numpy(), budget, n, out / "hv_vs_epochs.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, default=TABLE)
    parser.add_argument("--seeds", type=int, default=20, help="search seeds per method")
    parser.add_argument("--budget", type=int, default=288, help="epochs per search (6 per full training)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--replot", action="store_true", help="only redraw the figure from the written CSV")
    args = parser.parse_args()
    if args.replot:
        return replot(args.out, args.budget, args.seeds)
    import optuna

    from search_space import SearchSpace

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    methods = [m for m in args.methods if m != "gp" or _has_torch()]
    data, space = load_curves(args.table), SearchSpace.from_yaml("bench")
    grid = np.arange(0, args.budget + 1, 3)
    curves, stats = {}, {}
    for name in methods:
        t0, rows, counted, full = time.perf_counter(), [], [], []
        for seed in range(args.seeds):
            history = run_search(name, seed, args.budget, data, space)
            rows.append(on_grid(history, grid))
            counted.append(len(history) - 1)
            full.append(sum(b[0] - a[0] == EPOCHS for a, b in zip(history, history[1:])))
        curves[name] = np.array(rows)
        stats[name] = {"trials": float(np.mean(counted)), "full": float(np.mean(full)),
                       "seconds": (time.perf_counter() - t0) / args.seeds}
        print(f"{name}: {args.seeds} searches in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    lines = report(curves, stats, grid, args.budget, oracle_hv(data))
    print(f"\n== searches on the table's curves: see seed {SEEN_SEED}, judged on seeds {JUDGED_SEEDS}; "
          f"{len(data.seen)} architectures, budget {args.budget} epochs, {args.seeds} seeds; "
          "HV mean±sd; wins@B: seeds beating random at the same seed; full: trials trained to the end")
    print("\n".join(lines))
    if not (set(methods) - {"random"}) or "random" not in methods:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    header = "epochs," + ",".join(f"{n}_mean,{n}_sd" for n in curves)
    body = [f"{g}," + ",".join(f"{c[:, i].mean():.5f},{c[:, i].std(ddof=1):.5f}" for c in curves.values())
            for i, g in enumerate(grid)]
    (args.out / "hv_vs_epochs.csv").write_text("\n".join([header, *body]) + "\n")
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
    replot(args.out, args.budget, args.seeds)


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


if __name__ == "__main__":
    main()
