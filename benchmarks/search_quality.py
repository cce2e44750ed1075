"""Equal-compute search quality in the large space (issue 27, point 3). Never in CI: about 6 hours.

    python benchmarks/search_quality.py run --hours H [--out DIR]   # run / resume for at most H hours
    python benchmarks/search_quality.py report [--out DIR]          # DIR/summary.md, hv_vs_cpu.csv/.png

Space `bench-large` (1.8 M architectures), task and training the reference protocol
(evaluation/proxies/table.py PROTOCOL: graded level 1, 6 epochs, batch 8, lr 0.005), each architecture
at its own frames and resolution. Every training of (architecture, seed) is one row of DIR/runs.csv
(append-only) with its per-epoch validation accuracy and its cost in process CPU seconds per epoch
(`time.process_time`: every TF thread). A run can stop after epoch k with the 6-epoch schedule
unchanged, so it equals the first k epochs of a full run. A method that reuses a row is charged the
row's recorded CPU seconds for the epochs it uses: the accounting never depends on cache hits.

Calibration (once, before any search, DIR/budget.json): FLOPs budgets = the 25/50/75/100th
percentiles of FLOPs over 10,000 random architectures (rng seed 0); the median CPU cost of a
reference training over 3 random architectures; the CPU cost of a supernet step (8 steps, the last 5
timed). Compute budget per (method, repetition) = K x that median, K the smallest of 16, 24, 32, 48,
64 at which the supernet's fixed cost (600 steps + the re-rank reserve) takes at most 3/4 of it.

Methods (search trainings at seed 0, search seed = repetition r; judge seeds 101-103, never seen):
random (full training), tpe (Optuna multi-objective TPE through `nas.trial.sample_distinct`, full
training), mo-asha (random proposals, `nas.pruning.should_stop` with mo-asha min_epoch 2, eta 3: one
rung at epoch 2), supernet (trained once per repetition, config of benchmarks/oneshot.py's 600-step
run, `--supernet-config KEY=VALUE` overrides it; random candidates scored while budget minus the
re-rank reserve remains; per FLOPs budget its top 5 re-ranked by 3 stand-alone epochs),
supernet-progressive (the same with progressive shrinking, the bench table's best variant; its own
checkpoint, log and scores, the same candidate stream, so the two are paired). Each
method's pool gives one pick per FLOPs budget: the best search-time accuracy with FLOPs <= budget.
Baseline: the MoViNet-A0 block pattern on bench-large's three stages, at the largest (width,
depth, resolution) scaling within each FLOPs budget. Picks and baselines are trained at seeds
101-103; the judged value is the mean final val accuracy.

Work order: calibration; then per repetition the five searches and the judging of its picks (and,
at r = 0, the baselines). Every search is a deterministic function of its seed and the cached
trainings, so a resumed search replays from runs.csv (and supernet_scores.csv) and goes on where it
stopped. A repetition is judged whenever one of its picks lacks a judging run (so a method added later
is judged too: runs already trained are reused, never retrained). `run` stops between trainings at the
deadline or on SIGTERM (a second one kills). `run --rep R`
does repetition R's work only: processes on different repetitions can share DIR (each training is
one process at about one core here, so two processes on a 2-core machine halve the wall time).
`run --rep R --method M[,M]` does only those searches of repetition R (no judging: a later plain
`run --rep R` judges once every search is done), so one repetition's searches can run side by side;
`run --rep R --judge-shard K/N` trains only the K-th of every N judging runs, so N processes can judge.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from evaluation.proxies.table import PROTOCOL  # noqa: E402

OUT = ROOT / "results" / "search_quality"
SPACE = "bench-large"
METHODS = ("random", "tpe", "mo-asha", "supernet", "supernet-progressive")
# the one-shot methods: the supernet fields each sets on top of SUPERNET (and --supernet-config); each
# keeps its own files, `{method}_r{r}.npz`, `{method}_log.jsonl`, `{method}_scores.csv`
SUPERNETS = {"supernet": {}, "supernet-progressive": {"progressive": True}}
REPS = 3
SEARCH_SEED, JUDGE_SEEDS = 0, (101, 102, 103)
QUANTILES = (0.25, 0.5, 0.75, 1.0)
MULTIPLES = (16, 24, 32, 48, 64)
RERANK = (5, 3)  # top k of the supernet re-ranked by e stand-alone epochs (as in benchmarks/oneshot.py)
MIN_SCORED = 20  # the supernet scores at least this many candidates whatever is left of its budget
TPE_STARTUP = 10
SUPERNET = {"batch_size": 16, "random_subnets": 2, "learning_rate": 0.01, "checkpoint_every": 25,
            "recalibration_clips": 128, "steps": 600}
A0 = {"s1_b1_kernel": "3x3x3", "s1_b2_kernel": "3x3x3", "s1_b1_expand": 3.0, "s1_b2_expand": 3.0,
      "s2_b1_kernel": "5x3x3", "s2_b2_kernel": "3x3x3", "s2_b1_expand": 4.0, "s2_b2_expand": 2.0,
      "s3_b1_kernel": "3x3x3", "s3_b2_kernel": "3x3x3", "s3_b3_kernel": "1x3x3",
      "s3_b1_expand": 3.0, "s3_b2_expand": 3.0, "s3_b3_expand": 3.0}
A0_DEPTHS = ((1, 1, 1), (2, 2, 2), (2, 2, 3))  # ceil(m x the largest depth), m = 1/3, 2/3, 1
HV_REF = np.array([0.0, 1.1])


class Stop(Exception):
    """The deadline passed or SIGTERM came: leave between two pieces of work."""


@dataclass(frozen=True)
class Arch:
    params: dict
    id: str
    flops: float


@dataclass(frozen=True)
class Settings:
    """What fixes the experiment (written to budget.json at the first run; a resume must match)."""

    epochs: int = int(PROTOCOL["proxy"]["epochs"])
    clips_per_class: int = int(PROTOCOL["dataset"]["clips_per_class"])
    calibration: int = 3
    multiple: str = "auto"
    supernet: tuple = ()  # (KEY, VALUE) overrides of SUPERNET
    reps: int = REPS


@dataclass
class Ctx:
    out: Path
    settings: Settings
    space: object
    deadline: float
    runs: dict = field(default_factory=dict)  # (spec_id, seed) -> [row, ...]
    data: dict = field(default_factory=dict)
    stop: list = field(default_factory=list)
    budget: dict = field(default_factory=dict)
    bar: object = None

    def check(self) -> None:
        if self.stop or time.time() > self.deadline:
            raise Stop()


# ---------------------------------------------------------------------------------------------
# architectures, data, the run cache


def arch_of(space, params: dict) -> Arch:
    from evaluation.results.record import spec_id
    from search_space import estimate_cost

    spec = space.decode(params)
    clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items() if k in space.param_choices()}
    return Arch(clean, spec_id(spec), float(estimate_cost(spec, num_classes=PROTOCOL["num_classes"]).flops))


def draw(space, rng) -> Arch:
    choices = space.param_choices()
    return arch_of(space, {k: c[int(rng.integers(len(c)))] for k, c in choices.items()})


def dataset(ctx: Ctx, spec):
    from evaluation.datasets import load_dataset
    from nas.config import dataset_for

    cfg = dataset_for({**PROTOCOL["dataset"], "clips_per_class": ctx.settings.clips_per_class}, spec)
    key = (cfg["frames"], cfg["resolution"])
    if key not in ctx.data:
        ctx.data[key] = load_dataset(cfg)
    return ctx.data[key]


def run_columns(epochs: int) -> list[str]:
    return ["spec_id", "seed", "epochs_done", "status", *(f"acc_e{e}" for e in range(1, epochs + 1)),
            *(f"cpu_e{e}" for e in range(1, epochs + 1)), "cpu_s", "wall_s", "load_avg", "flops", "purpose",
            "finished", "params"]


def read_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def append_csv(path: Path, columns: list[str], row: dict) -> None:
    """One row, under an exclusive lock, the header first when the file is empty (processes share DIR)."""
    import fcntl

    with path.open("a", newline="") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        w = csv.DictWriter(f, columns)
        if f.seek(0, os.SEEK_END) == 0:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def load_runs(ctx: Ctx) -> None:
    e = ctx.settings.epochs
    for r in read_csv(ctx.out / "runs.csv"):
        n = int(r["epochs_done"])
        rec = {"acc": [float(r[f"acc_e{i}"]) for i in range(1, n + 1)],
               "cpu": [float(r[f"cpu_e{i}"]) for i in range(1, n + 1)], "status": r["status"]}
        ctx.runs.setdefault((r["spec_id"], int(r["seed"])), []).append(rec)
    assert all(len(rec["acc"]) <= e for v in ctx.runs.values() for rec in v)


def longest_run(ctx: Ctx, arch: Arch, seed: int) -> dict | None:
    """The cached training of (`arch`, `seed`) with the most epochs, None if there is none."""
    return max(ctx.runs.get((arch.id, seed), []), key=lambda rec: len(rec["acc"]), default=None)


def covers(rec: dict | None, until: int) -> bool:
    """Whether cached run `rec` answers a request for `until` epochs: it reached them, or it ended
    (complete or failed) before them, so training again would give nothing new."""
    return rec is not None and (len(rec["acc"]) >= until or rec["status"] != "stopped")


def observe(ctx: Ctx, arch: Arch, seed: int, until: int, decide=None, purpose: str = "") -> tuple[list, list]:
    """(val accuracies, CPU seconds) of epochs 1..k of `seed`'s reference training of `arch`, k = `until`
    or the first epoch where `decide(epoch, acc)` says stop; from the longest cached run when it
    covers them, else trained now (a new row)."""
    cached = longest_run(ctx, arch, seed)
    if cached is not None:
        for e, acc in enumerate(cached["acc"], start=1):
            if e >= until or (decide is not None and decide(e, acc)):
                return cached["acc"][:e], cached["cpu"][:e]
        if covers(cached, until):
            return cached["acc"], cached["cpu"]
    ctx.check()
    return train(ctx, arch, seed, until, decide, purpose)


def train(ctx: Ctx, arch: Arch, seed: int, until: int, decide, purpose: str) -> tuple[list, list]:
    from evaluation.proxies.budget import Budget
    from evaluation.proxies.train import train_proxy
    from evaluation.results.record import VAL_ACCURACY

    spec = ctx.space.decode(arch.params)
    data = dataset(ctx, spec)
    budget = Budget.from_dict({**PROTOCOL["proxy"], "epochs": ctx.settings.epochs})
    accs, cpus, mark = [], [], [time.process_time()]
    wall = time.perf_counter()

    def callback(epoch, entry):
        now = time.process_time()
        cpus.append(now - mark[0])
        mark[0] = now
        accs.append(float(entry[VAL_ACCURACY]))
        return epoch >= until or (decide is not None and decide(epoch, accs[-1]))

    result = train_proxy(spec, data, budget, seed=seed, callback=callback, num_classes=PROTOCOL["num_classes"])
    if cpus:
        cpus[-1] += time.process_time() - mark[0]
    status = {"complete": "complete", "early_stopped": "stopped"}.get(result.status.value, "failed")
    if status == "complete" and len(accs) < ctx.settings.epochs:
        status = "stopped"
    record(ctx, arch, seed, accs, cpus, status, time.perf_counter() - wall, purpose)
    return accs, cpus


def record(ctx: Ctx, arch: Arch, seed: int, accs: list, cpus: list, status: str, wall: float, purpose: str):
    e = ctx.settings.epochs
    row = {"spec_id": arch.id, "seed": seed, "epochs_done": len(accs), "status": status,
           **{f"acc_e{i + 1}": f"{a:.6f}" for i, a in enumerate(accs)},
           **{f"cpu_e{i + 1}": f"{c:.3f}" for i, c in enumerate(cpus)}, "cpu_s": f"{sum(cpus):.2f}",
           "wall_s": f"{wall:.1f}", "load_avg": f"{os.getloadavg()[0]:.2f}", "flops": f"{arch.flops:.0f}",
           "purpose": purpose, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "params": json.dumps(arch.params, sort_keys=True)}
    append_csv(ctx.out / "runs.csv", run_columns(e), row)
    ctx.runs.setdefault((arch.id, seed), []).append({"acc": list(accs), "cpu": list(cpus), "status": status})
    log(ctx, f"{purpose} {arch.id} seed {seed}: {len(accs)} epochs, acc {accs[-1] if accs else float('nan'):.3f}, "
             f"cpu {sum(cpus):.0f} s, wall {wall:.0f} s, load {os.getloadavg()[0]:.1f}")


def fail(text: str) -> None:
    print(text, file=sys.stderr)
    sys.exit(2)


def log(ctx: Ctx, text: str) -> None:
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {text}"
    with (ctx.out / "log.txt").open("a") as f:
        f.write(line + "\n")
    if ctx.bar is not None:
        ctx.bar.set_postfix_str(text[:70])


# ---------------------------------------------------------------------------------------------
# calibration


def calibrate(ctx: Ctx) -> dict:
    """budget.json: FLOPs budgets, the median reference training's CPU cost, the supernet step's, K."""
    path = ctx.out / "budget.json"
    settings = {k: (list(map(list, v)) if k == "supernet" else v) for k, v in vars(ctx.settings).items()}
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") != settings:
            fail(f"{ctx.out}: made with settings {saved.get('settings')}, not {settings}: use another --out")
        if "budget_cpu_s" in saved:
            return saved
    rng = np.random.default_rng(0)
    flops = [draw(ctx.space, rng).flops for _ in range(10_000)]
    flops_budgets = [float(np.quantile(flops, q)) for q in QUANTILES]
    rng = np.random.default_rng(12345)
    costs = []
    for _ in range(ctx.settings.calibration):
        _, cpus = observe(ctx, draw(ctx.space, rng), SEARCH_SEED, ctx.settings.epochs, purpose="calibration")
        costs.append(sum(cpus))
    median = float(np.median(costs))
    step = supernet_step_cpu(ctx)
    cfg = supernet_config(ctx)
    fixed = cfg.steps * step + rerank_reserve(median, ctx.settings.epochs)
    if ctx.settings.multiple == "auto":
        multiple = next((k for k in MULTIPLES if fixed <= 0.75 * k * median), MULTIPLES[-1])
    else:
        multiple = float(ctx.settings.multiple)
    info = {"settings": settings, "flops_quantiles": list(QUANTILES), "flops_budgets": flops_budgets,
            "calibration_cpu_s": costs, "median_training_cpu_s": median, "supernet_step_cpu_s": step,
            "supernet_fixed_cpu_s_estimate": fixed, "multiple": multiple, "budget_cpu_s": multiple * median,
            "load_avg": os.getloadavg()[0], "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(info, indent=2) + "\n")
    log(ctx, f"calibration: median training {median:.0f} CPU s, supernet step {step:.2f} CPU s, K {multiple}, "
             f"budget {multiple * median:.0f} CPU s, FLOPs budgets {[f'{b / 1e6:.2f}M' for b in flops_budgets]}")
    return info


def rerank_reserve(median_training: float, epochs: int) -> float:
    """CPU seconds the re-rank may take: top k x e epochs at every FLOPs budget (no overlap assumed)."""
    return len(QUANTILES) * RERANK[0] * min(RERANK[1], epochs) / epochs * median_training


def supernet_config(ctx: Ctx, method: str = "supernet"):
    from evaluation.oneshot.supernet import parse_supernet

    return parse_supernet({**SUPERNET, **dict(ctx.settings.supernet), **SUPERNETS[method]})


def supernet_step_cpu(ctx: Ctx) -> float:
    """Median CPU seconds of supernet steps 4-8 of a throw-away run (the first ones trace)."""
    import dataclasses

    from evaluation.oneshot.train import Progress, train_supernet
    from search_space.supernet import envelope

    cfg = dataclasses.replace(supernet_config(ctx), steps=8, checkpoint_every=1000)
    tmp = ctx.out / "calibration_supernet.npz"
    tmp.unlink(missing_ok=True)
    marks = [time.process_time()]
    train_supernet(ctx.space, dataset(ctx, envelope(ctx.space)), cfg, tmp, seed=0,
                   num_classes=PROTOCOL["num_classes"], progress=Progress(False, lambda s: marks.append(
                       time.process_time()), None))
    tmp.unlink(missing_ok=True)
    return float(np.median(np.diff(marks)[3:]))


# ---------------------------------------------------------------------------------------------
# the searches: each returns its pool [(Arch, search-time accuracy)] and trace [(CPU spent, HV)]


@dataclass
class Search:
    pool: list = field(default_factory=list)
    trace: list = field(default_factory=list)
    spent: float = 0.0
    trials: int = 0

    def add(self, arch: Arch, acc: float, flops_max: float, cpu: float = 0.0) -> None:
        self.spent += cpu
        self.pool.append((arch, acc))
        self.trace.append((self.spent, pool_hv(self.pool, flops_max)))


def pool_hv(pool: list, flops_max: float) -> float:
    from evaluation.compat import hypervolume, pareto_front_mask

    if not pool:
        return 0.0
    loss = np.array([[-acc, a.flops / flops_max] for a, acc in pool], dtype=float)
    loss = loss[pareto_front_mask(loss)]
    return hypervolume(loss, HV_REF)


def search_random(ctx: Ctx, r: int) -> Search:
    rng, seen, s = np.random.default_rng([r, 0]), set(), Search()
    e, flops_max = ctx.settings.epochs, ctx.budget["flops_budgets"][-1]
    while s.spent < ctx.budget["budget_cpu_s"]:
        a = draw(ctx.space, rng)
        if a.id in seen:
            continue
        seen.add(a.id)
        accs, cpus = observe(ctx, a, SEARCH_SEED, e, purpose=f"r{r} random")
        s.trials += 1
        s.add(a, accs[-1] if len(accs) == e else 0.0, flops_max, sum(cpus))
    return s


def search_mo_asha(ctx: Ctx, r: int) -> Search:
    """Random proposals (the stream random search draws), stopped by movinas' mo-asha rule with the
    first rung at epoch 2; picks from the runs that reached the last epoch."""
    from nas.config import EarlyStopping
    from nas.pruning import Finished, should_stop

    rule = EarlyStopping(rule="mo-asha", min_epoch=2, eta=3)
    rng, seen, s, finished = np.random.default_rng([r, 0]), set(), Search(), []
    e, flops_max = ctx.settings.epochs, ctx.budget["flops_budgets"][-1]
    partial = []
    while s.spent < ctx.budget["budget_cpu_s"]:
        a = draw(ctx.space, rng)
        if a.id in seen:
            continue
        seen.add(a.id)

        def decide(epoch, acc, a=a):
            return should_stop(rule, epoch, acc, {"flops": a.flops}, {"flops": "minimize"}, True, finished, e) \
                is not None

        accs, cpus = observe(ctx, a, SEARCH_SEED, e, decide, purpose=f"r{r} mo-asha")
        s.trials += 1
        finished.append(Finished(s.trials, dict(enumerate(accs, start=1)), {"flops": a.flops}))
        if len(accs) == e:
            s.add(a, accs[-1], flops_max, sum(cpus))
        else:
            s.spent += sum(cpus)
            partial.append((a, accs))
    if not s.pool and partial:  # nothing reached the end: the highest rung's runs
        top = max(len(accs) for _, accs in partial)
        s.pool = [(a, accs[-1]) for a, accs in partial if len(accs) == top]
    return s


def search_tpe(ctx: Ctx, r: int) -> Search:
    import optuna

    from nas.trial import sample_distinct

    sampler = optuna.samplers.TPESampler(seed=r, n_startup_trials=TPE_STARTUP)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    e, flops_max, s, taken = ctx.settings.epochs, ctx.budget["flops_budgets"][-1], Search(), set()
    while s.spent < ctx.budget["budget_cpu_s"]:
        trial = study.ask()
        spec = sample_distinct(trial, ctx.space, taken, seed=r)
        a = arch_of(ctx.space, trial.params)
        assert spec is not None
        if a.id in taken:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        taken.add(a.id)
        accs, cpus = observe(ctx, a, SEARCH_SEED, e, purpose=f"r{r} tpe")
        s.trials += 1
        acc = accs[-1] if len(accs) == e else 0.0
        study.tell(trial, [acc, a.flops])
        s.add(a, acc, flops_max, sum(cpus))
    return s


def search_supernet(ctx: Ctx, r: int, method: str) -> Search:
    """Train (or resume) the repetition's supernet, score random candidates while the budget minus
    the re-rank reserve lasts; the pool holds (Arch, supernet accuracy); `rerank` picks from it. Every
    one-shot method scores the same candidate stream (rng [r, 1])."""
    s = Search(spent=train_supernet_rep(ctx, r, method))
    reserve = rerank_reserve(ctx.budget["median_training_cpu_s"], ctx.settings.epochs)
    cached = [row for row in read_csv(ctx.out / f"{method}_scores.csv") if int(row["rep"]) == r]
    rng, seen, scorer = np.random.default_rng([r, 1]), set(), []
    flops_max = ctx.budget["flops_budgets"][-1]
    while s.spent + reserve < ctx.budget["budget_cpu_s"] or s.trials < MIN_SCORED:
        a = draw(ctx.space, rng)
        if a.id in seen:
            continue
        seen.add(a.id)
        if s.trials < len(cached):
            row = cached[s.trials]
            assert row["spec_id"] == a.id, f"{method}_scores.csv does not follow this repetition's draws"
            acc, cpu = float(row["accuracy"]), float(row["cpu_s"])
        else:
            ctx.check()
            acc, cpu = score(ctx, r, a, scorer, method)
        s.trials += 1
        s.add(a, acc, flops_max, cpu)
    return s


def train_supernet_rep(ctx: Ctx, r: int, method: str) -> float:
    """CPU seconds of repetition r's supernet training (its chunks in {method}_log.jsonl), training
    or resuming it first; a stop request leaves at the next checkpoint."""
    from evaluation.oneshot.supernet import read_checkpoint
    from evaluation.oneshot.train import Progress, train_supernet
    from search_space.supernet import envelope

    cfg, ckpt, logf = supernet_config(ctx, method), ctx.out / f"{method}_r{r}.npz", ctx.out / f"{method}_log.jsonl"
    done = read_checkpoint(ckpt)[0]["step"] if ckpt.is_file() else 0
    if done < cfg.steps:
        ctx.check()
        data = dataset(ctx, envelope(ctx.space))
        t0, w0, state = time.process_time(), time.perf_counter(), {"step": done}

        def on_step(step):
            state["step"] = step
            if step % cfg.checkpoint_every == 0 and (ctx.stop or time.time() > ctx.deadline):
                raise Stop()

        try:
            log(ctx, f"r{r} {method}: training from step {done} to {cfg.steps}")
            train_supernet(ctx.space, data, cfg, ckpt, seed=r, num_classes=PROTOCOL["num_classes"],
                           progress=Progress(False, on_step, None))
        finally:
            with logf.open("a") as f:
                f.write(json.dumps({"rep": r, "from": done, "to": state["step"], "cpu_s": time.process_time() - t0,
                                    "wall_s": time.perf_counter() - w0, "load_avg": os.getloadavg()[0]}) + "\n")
            log(ctx, f"r{r} {method}: at step {state['step']}, {time.process_time() - t0:.0f} CPU s this chunk")
    chunks = [json.loads(x) for x in logf.read_text().splitlines()] if logf.is_file() else []
    spent = 0.0
    for x in (x for x in chunks if x["rep"] == r):
        spent = x["cpu_s"] + (spent if x["from"] > 0 else 0.0)  # from 0: the checkpoint was lost, a new run
    return spent


def score(ctx: Ctx, r: int, a: Arch, scorer: list, method: str) -> tuple[float, float]:
    """(supernet val accuracy, CPU seconds) of candidate `a`, appended to {method}_scores.csv."""
    from evaluation.oneshot.score import Scorer, recalibration_clips
    from evaluation.oneshot.supernet import load_supernet
    from evaluation.results.record import VAL_ACCURACY

    t0 = time.process_time()
    if not scorer or scorer[0] != (method, r):
        net = load_supernet(ctx.out / f"{method}_r{r}.npz", ctx.space, PROTOCOL["num_classes"])
        scorer[:] = [(method, r), Scorer(net, batch_size=64)]
    spec = ctx.space.decode(a.params)
    data = dataset(ctx, spec)
    recal = recalibration_clips(data.train.x, supernet_config(ctx, method).recalibration_clips)
    m = scorer[1].score(spec, recal, data.val.x, data.val.y.astype("int64"))
    cpu = time.process_time() - t0
    append_csv(ctx.out / f"{method}_scores.csv", ["rep", "spec_id", "accuracy", "cpu_s", "flops", "params"],
               {"rep": r, "spec_id": a.id, "accuracy": f"{m[VAL_ACCURACY]:.6f}", "cpu_s": f"{cpu:.3f}",
                "flops": f"{a.flops:.0f}", "params": json.dumps(a.params, sort_keys=True)})
    return float(m[VAL_ACCURACY]), cpu


def rerank(ctx: Ctx, r: int, s: Search, method: str) -> dict:
    """Per FLOPs budget: the supernet's top k re-ranked by e stand-alone epochs (seed 0); each
    re-ranked architecture charged once. {budget index: (Arch, e-epoch accuracy)}."""
    picks, charged = {}, set()
    e = min(RERANK[1], ctx.settings.epochs)
    for i, budget in enumerate(ctx.budget["flops_budgets"]):
        top = sorted([p for p in s.pool if p[0].flops <= budget], key=lambda p: -p[1])[:RERANK[0]]
        best = None
        for a, _ in top:
            accs, cpus = observe(ctx, a, SEARCH_SEED, e, purpose=f"r{r} {method}-rerank")
            if a.id not in charged:
                charged.add(a.id)
                s.spent += sum(cpus)
            if best is None or accs[-1] > best[1]:
                best = (a, accs[-1])
        if best is not None:
            picks[i] = best
    return picks


def pick(ctx: Ctx, s: Search) -> dict:
    out = {}
    for i, budget in enumerate(ctx.budget["flops_budgets"]):
        ok = [p for p in s.pool if p[0].flops <= budget]
        if ok:
            out[i] = max(ok, key=lambda p: p[1])
    return out


# ---------------------------------------------------------------------------------------------
# bookkeeping of finished searches, baselines and judging

PICK_COLUMNS = ["rep", "method", "budget_index", "flops_budget", "spec_id", "flops", "search_accuracy",
                "cpu_spent", "budget_cpu_s", "trials", "finished", "params"]


def done_searches(ctx: Ctx) -> set:
    return {(int(p["rep"]), p["method"]) for p in read_csv(ctx.out / "picks.csv")}


def save_search(ctx: Ctx, r: int, method: str, s: Search, picks: dict) -> None:
    for (spent, hv) in s.trace:
        append_csv(ctx.out / "traces.csv", ["rep", "method", "cpu_spent", "hv"],
                   {"rep": r, "method": method, "cpu_spent": f"{spent:.1f}", "hv": f"{hv:.5f}"})
    rows = [{"rep": r, "method": method, "budget_index": i, "flops_budget": f"{b:.0f}",
             "spec_id": picks[i][0].id if i in picks else "", "flops": f"{picks[i][0].flops:.0f}" if i in picks else "",
             "search_accuracy": f"{picks[i][1]:.6f}" if i in picks else "", "cpu_spent": f"{s.spent:.1f}",
             "budget_cpu_s": f"{ctx.budget['budget_cpu_s']:.1f}", "trials": s.trials,
             "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "params": json.dumps(picks[i][0].params, sort_keys=True) if i in picks else ""}
            for i, b in enumerate(ctx.budget["flops_budgets"])]
    for row in rows:  # the last row written marks the search done
        append_csv(ctx.out / "picks.csv", PICK_COLUMNS, row)
    log(ctx, f"r{r} {method}: done, {s.trials} trials, {s.spent:.0f} CPU s, picks "
             f"{[rows[i]['spec_id'] or '-' for i in range(len(rows))]}")


def run_search(ctx: Ctx, r: int, method: str) -> None:
    log(ctx, f"r{r} {method}: search starts (or replays)")
    if method in SUPERNETS:
        s = search_supernet(ctx, r, method)
        picks = rerank(ctx, r, s, method)
    else:
        s = {"random": search_random, "tpe": search_tpe, "mo-asha": search_mo_asha}[method](ctx, r)
        picks = pick(ctx, s)
    save_search(ctx, r, method, s, picks)


def a0_baselines(space, flops_budgets: list) -> list:
    """Per FLOPs budget, the A0 pattern at the largest-FLOPs (width, depth, resolution) that fits
    (the smallest variant when none does)."""
    variants = []
    for g, depths, res in itertools.product((0.5, 1.0), A0_DEPTHS, (24, 32)):
        params = {**A0, "width_mult": g, "resolution": res,
                  **{f"s{i}_depth": d for i, d in enumerate(depths, start=1)}}
        variants.append(arch_of(space, params))
    variants.sort(key=lambda a: a.flops)
    return [max((a for a in variants if a.flops <= b), key=lambda a: a.flops, default=variants[0])
            for b in flops_budgets]


def judge_pairs(ctx: Ctx, r: int) -> list:
    """[(Arch, judge seed)] of repetition r's picks (and at r = 0 the baselines), in a fixed order."""
    archs = {}
    for p in read_csv(ctx.out / "picks.csv"):
        if int(p["rep"]) == r and p["spec_id"]:
            archs.setdefault(p["spec_id"], arch_of(ctx.space, json.loads(p["params"])))
    if r == 0:
        for a in a0_baselines(ctx.space, ctx.budget["flops_budgets"]):
            archs.setdefault(a.id, a)
    return [(a, seed) for a in archs.values() for seed in JUDGE_SEEDS]


def unjudged(ctx: Ctx, r: int) -> bool:
    """Whether a judging run of repetition r is missing (a method searched after the last judging adds some)."""
    return any(not covers(longest_run(ctx, a, seed), ctx.settings.epochs) for a, seed in judge_pairs(ctx, r))


def judge(ctx: Ctx, r: int, shard: tuple = (0, 1)) -> None:
    """Train repetition r's judging runs that are missing; `shard` (k, n): only every n-th
    (architecture, seed) from the k-th, and no mark in judged.csv unless n is 1."""
    pairs = judge_pairs(ctx, r)
    archs = {a.id for a, _ in pairs}
    for a, seed in pairs[shard[0]::shard[1]]:
        observe(ctx, a, seed, ctx.settings.epochs, purpose=f"r{r} judge")
    if shard[1] > 1:
        log(ctx, f"r{r}: judging shard {shard[0]}/{shard[1]} done")
        return
    append_csv(ctx.out / "judged.csv", ["rep", "finished"],
               {"rep": r, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    log(ctx, f"r{r}: judging done ({len(archs)} architectures x {len(JUDGE_SEEDS)} seeds)")


def run(args) -> None:
    import optuna
    from tqdm import tqdm

    from search_space import SearchSpace

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = Settings(epochs=args.epochs, clips_per_class=args.clips_per_class, calibration=args.calibration,
                        multiple=args.budget_multiple, supernet=tuple(args.supernet_config), reps=args.reps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(out, settings, SearchSpace.from_yaml(SPACE), time.time() + args.hours * 3600)

    def on_term(signum, frame):
        ctx.stop.append(signum)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log(ctx, "SIGTERM: stopping after the current piece of work")

    signal.signal(signal.SIGTERM, on_term)
    load_runs(ctx)
    reps = [args.rep] if args.rep is not None else range(settings.reps)
    methods = () if args.judge_shard else (args.method or METHODS)
    judging = not args.method  # a --method process leaves the judging to a plain run
    work = [w for r in reps for w in [*(("search", r, m) for m in methods), *([("judge", r, "")] if judging else [])]]
    ctx.bar = tqdm(total=len(work) + 1, desc="search_quality", unit="piece", dynamic_ncols=True)
    try:
        ctx.budget = calibrate(ctx)
        ctx.bar.update(1)
        for kind, r, method in work:
            done = done_searches(ctx)
            if (kind == "search" and (r, method) not in done) or (kind == "judge" and unjudged(ctx, r)):
                run_search(ctx, r, method) if kind == "search" else judge(ctx, r, args.judge_shard or (0, 1))
            ctx.bar.update(1)
        log(ctx, "all work done")
    except Stop:
        log(ctx, "stopped (deadline or SIGTERM); run again to resume")
    finally:
        ctx.bar.close()


# ---------------------------------------------------------------------------------------------
# report


def judged_values(runs: list[dict], epochs: int) -> dict:
    """spec_id -> mean final val accuracy over the judge seeds (only when all of them finished)."""
    finals: dict = {}
    for r in runs:
        if int(r["seed"]) in JUDGE_SEEDS and int(r["epochs_done"]) == epochs:
            finals.setdefault(r["spec_id"], {})[int(r["seed"])] = float(r[f"acc_e{epochs}"])
    return {k: float(np.mean(list(v.values()))) for k, v in finals.items() if len(v) == len(JUDGE_SEEDS)}


def interval(values: list) -> str:
    """mean [95% t interval] of `values` over repetitions; 'n=1, no interval' for one."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.3f} (n=1, no interval)"
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return f"{v.mean():.3f} [{v.mean() - half:.3f}, {v.mean() + half:.3f}] (n={len(v)})"


def budget_table(picks: list, judged: dict, baselines: list, budgets: list) -> list[str]:
    lines = ["| FLOPs budget | method | judged accuracy, mean [95% CI] | minus random (paired) | minus A0 |",
             "|---|---|---|---|---|"]
    value = {(int(p["rep"]), p["method"], int(p["budget_index"])): judged.get(p["spec_id"]) for p in picks}
    for i, b in enumerate(budgets):
        base = judged.get(baselines[i].id)
        lines.append(f"| ≤ {b / 1e6:.2f} M | A0 baseline ({baselines[i].flops / 1e6:.2f} M) | "
                     f"{'-' if base is None else f'{base:.3f}'} | | |")
        for m in METHODS:
            reps = sorted(r for (r, mm, ii), v in value.items() if mm == m and ii == i and v is not None)
            vals = [value[(r, m, i)] for r in reps]
            diff = [value[(r, m, i)] - value[(r, "random", i)] for r in reps
                    if value.get((r, "random", i)) is not None]
            vs_a0 = [v - base for v in vals] if base is not None else []
            lines.append(f"| | {m} | {interval(vals)} | {interval(diff) if m != 'random' else ''} | "
                         f"{interval(vs_a0)} |")
    return lines + mean_rows(value, [judged.get(b.id) for b in baselines], len(budgets))


def mean_rows(value: dict, base: list, n: int) -> list[str]:
    """The table's last rows: per method the mean over the FLOPs budgets of each repetition whose
    picks are all judged (and its paired difference with random, and with the A0 baselines)."""
    def mean(r, m):
        v = [value.get((r, m, i)) for i in range(n)]
        return None if any(x is None for x in v) else float(np.mean(v))

    reps = sorted({r for (r, _, _) in value})
    lines = []
    for m in METHODS:
        vals = [(r, mean(r, m)) for r in reps if mean(r, m) is not None]
        diff = [v - mean(r, "random") for r, v in vals if mean(r, "random") is not None]
        vs_a0 = [v - float(np.mean(base)) for _, v in vals] if all(b is not None for b in base) else []
        lines.append(f"| mean of the {n} | {m} | {interval([v for _, v in vals])} | "
                     f"{interval(diff) if m != 'random' else ''} | {interval(vs_a0)} |")
    return lines


def hv_grid(traces: list, budget_cpu: float) -> tuple[np.ndarray, dict]:
    """{method: (reps, grid) HV held at each CPU grid point} from traces.csv."""
    grid = np.linspace(0, budget_cpu, 21)
    out = {}
    for m in METHODS:
        rows = []
        for r in sorted({int(t["rep"]) for t in traces if t["method"] == m}):
            pts = [(float(t["cpu_spent"]), float(t["hv"])) for t in traces if t["method"] == m and int(t["rep"]) == r]
            rows.append([max([hv for c, hv in pts if c <= g], default=0.0) for g in grid])
        if rows:
            out[m] = np.array(rows)
    return grid, out


def picks_hv(picks: list, judged: dict, flops_max: float) -> dict:
    """{method: [judged HV of its four picks, per repetition fully judged]}."""
    out: dict = {}
    for (r, m) in sorted({(int(p["rep"]), p["method"]) for p in picks}):
        mine = [p for p in picks if int(p["rep"]) == r and p["method"] == m and p["spec_id"]]
        if mine and all(p["spec_id"] in judged for p in mine):
            pool = [(Arch({}, p["spec_id"], float(p["flops"])), judged[p["spec_id"]]) for p in mine]
            out.setdefault(m, []).append(pool_hv(pool, flops_max))
    return out


def report(args) -> None:
    from search_space import SearchSpace

    out = Path(args.out)
    if not (out / "budget.json").is_file():
        fail(f"{out}: no budget.json (run `python benchmarks/search_quality.py run` first)")
    info = json.loads((out / "budget.json").read_text())
    epochs = int(info["settings"]["epochs"])
    picks, traces = read_csv(out / "picks.csv"), read_csv(out / "traces.csv")
    judged = judged_values(read_csv(out / "runs.csv"), epochs)
    budgets = info["flops_budgets"]
    baselines = a0_baselines(SearchSpace.from_yaml(SPACE), budgets)
    reps = {m: sorted({int(p["rep"]) for p in picks if p["method"] == m}) for m in METHODS}
    lines = [f"# Search quality (issue 27): {out}", "",
             f"Budget {info['budget_cpu_s']:.0f} CPU s per (method, repetition) = {info['multiple']} x the median "
             f"reference training ({info['median_training_cpu_s']:.0f} CPU s); searches done: "
             + ", ".join(f"{m} {len(v)}" for m, v in reps.items())
             + f"; repetitions judged: {sorted({int(x['rep']) for x in read_csv(out / 'judged.csv')})}.", "",
             *budget_table(picks, judged, baselines, budgets), ""]
    lines += ["| method | searches | CPU s spent (mean) | trials (mean) | judged HV of the picks |", "|---|---|---|---|---|"]
    phv = picks_hv(picks, judged, budgets[-1])
    for m in METHODS:
        mine = [p for p in picks if p["method"] == m and int(p["budget_index"]) == 0]
        if mine:
            lines.append(f"| {m} | {len(mine)} | {np.mean([float(p['cpu_spent']) for p in mine]):.0f} | "
                         f"{np.mean([float(p['trials']) for p in mine]):.1f} | {interval(phv.get(m, []))} |")
    lines += pick_rows(picks, judged)
    lines += in_progress(read_csv(out / "runs.csv"), picks)
    grid, hv = hv_grid(traces, info["budget_cpu_s"])
    if hv:
        with (out / "hv_vs_cpu.csv").open("w") as f:
            f.write("cpu_s," + ",".join(f"{m}_mean,{m}_n" for m in hv) + "\n")
            for j, g in enumerate(grid):
                f.write(f"{g:.0f}," + ",".join(f"{v[:, j].mean():.5f},{len(v)}" for v in hv.values()) + "\n")
        plot_hv(grid, hv, out / "hv_vs_cpu.png")
        lines += ["", "Hypervolume of search-time accuracy vs FLOPs (supernet: its own scores) against CPU s: "
                  "hv_vs_cpu.csv, hv_vs_cpu.png; at the budget: "
                  + ", ".join(f"{m} {v[:, -1].mean():.3f}" for m, v in hv.items())]
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    print(text)


def pick_rows(picks: list, judged: dict) -> list[str]:
    """Every pick with its FLOPs, search-time accuracy and judged value (or 'not yet')."""
    lines = ["", "| repetition | method | FLOPs budget | pick | MFLOPs | search-time accuracy | judged |",
             "|---|---|---|---|---|---|---|"]
    for p in picks:
        mflops = f"{float(p['flops']) / 1e6:.2f}" if p["flops"] else "-"
        value = f"{judged[p['spec_id']]:.3f}" if p["spec_id"] in judged else "not yet"
        lines.append(f"| {p['rep']} | {p['method']} | ≤ {float(p['flops_budget']) / 1e6:.2f} M | "
                     f"{p['spec_id'] or '-'} | {mflops} | {p['search_accuracy'] or '-'} | {value} |")
    return lines


def in_progress(runs: list, picks: list) -> list[str]:
    """One line per search begun but not finished: its fresh trainings so far (cached ones not counted)."""
    done = {f"r{p['rep']} {p['method']}" for p in picks}
    busy: dict = {}
    for r in runs:
        what = r["purpose"].removesuffix("-rerank")
        if what[:1] == "r" and not what.endswith("judge") and what not in done:
            n, cpu = busy.get(what, (0, 0.0))
            busy[what] = (n + 1, cpu + float(r["cpu_s"]))
    return ["", *(f"In progress: {k}: {n} fresh trainings so far, {cpu:.0f} CPU s" for k, (n, cpu) in busy.items())]


def plot_hv(grid: np.ndarray, hv: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, v in hv.items():
        ax.plot(grid, v.mean(axis=0), label=f"{m} (n={len(v)})")
    ax.set_xlabel("CPU seconds spent")
    ax.set_ylabel("hypervolume (search-time accuracy, FLOPs)")
    ax.set_title("bench-large: hypervolume against compute")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def key_value(text: str) -> tuple:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: must be KEY=VALUE (a supernet config field)")
    key, value = text.split("=", 1)
    import yaml

    return (key, yaml.safe_load(value))


def methods_arg(text: str) -> tuple:
    names = tuple(m.strip() for m in text.split(","))
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{bad[0] if bad else text!r}: unknown method, allowed: "
                                         f"{', '.join(METHODS)} (comma-separated)")
    return names


def shard_arg(text: str) -> tuple:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: must be K/N, e.g. 0/2") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be 0..N-1")
    return k, n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("run", "report"))
    p.add_argument("--out", default=str(OUT))
    p.add_argument("--hours", type=float, default=1.0, help="run: stop starting work after this long")
    p.add_argument("--epochs", type=int, default=int(PROTOCOL["proxy"]["epochs"]), help="smoke tests only")
    p.add_argument("--clips-per-class", type=int, default=int(PROTOCOL["dataset"]["clips_per_class"]),
                   help="smoke tests only")
    p.add_argument("--calibration", type=int, default=3, help="architectures timed for the budget")
    p.add_argument("--budget-multiple", default="auto", help="K of the budget (auto: the rule in the docstring)")
    p.add_argument("--supernet-config", type=key_value, action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--reps", type=int, default=REPS)
    p.add_argument("--rep", type=int, default=None,
                   help="run: only this repetition's work (one process per repetition may share --out: its "
                        "files are append-only, one row per write, and tagged by repetition)")
    p.add_argument("--method", type=methods_arg, default=None, metavar="M[,M]",
                   help=f"run: only these searches ({', '.join(METHODS)}), no judging: two processes on "
                        "different methods of one repetition share --out as two repetitions do; never give "
                        "one method to two processes (they would write the same supernet checkpoint)")
    p.add_argument("--judge-shard", type=shard_arg, default=None, metavar="K/N",
                   help="run (with --rep): only judge, only every N-th (architecture, seed) from the K-th, "
                        "while the repetition's searches are done; a later plain run --rep marks it judged")
    args = p.parse_args()
    bad = [(n, v) for n, v in (("--hours", args.hours), ("--epochs", args.epochs), ("--reps", args.reps),
                               ("--calibration", args.calibration), ("--clips-per-class", args.clips_per_class - 1))
           if not v > 0]
    if bad:
        p.exit(2, f"{bad[0][0]}: must be positive ({'at least 2' if bad[0][0] == '--clips-per-class' else '> 0'})\n")
    if (args.judge_shard or args.method) and args.rep is None:
        p.exit(2, "--judge-shard and --method need --rep\n")
    if args.judge_shard and args.method:
        p.exit(2, "--judge-shard and --method: give one (a shard only judges, a --method run only searches)\n")
    if args.rep is not None and not 0 <= args.rep < args.reps:
        p.exit(2, f"--rep: {args.rep}, must be a repetition 0..{args.reps - 1}\n")
    if args.budget_multiple != "auto":
        try:
            assert float(args.budget_multiple) > 0
        except (ValueError, AssertionError):
            p.exit(2, f"--budget-multiple: {args.budget_multiple!r}, must be 'auto' or a number > 0\n")
    if args.supernet_config:
        from evaluation.oneshot.supernet import parse_supernet

        try:
            parse_supernet({**SUPERNET, **dict(args.supernet_config)}, "--supernet-config")
        except ValueError as exc:
            p.exit(2, f"{exc}\n")
    run(args) if args.action == "run" else report(args)


if __name__ == "__main__":
    main()
