"""One-shot benchmark on the ground truth's protocol (evaluation/proxies/table.py PROTOCOL: bench space, graded task).

    python benchmarks/oneshot.py train [--steps N] [--out DIR]    # train / resume the bench supernet
    python benchmarks/oneshot.py train --progressive --out DIR    # progressive shrinking
    python benchmarks/oneshot.py train --warmup 0.3 --out DIR     # a longer learning-rate warm-up
    python benchmarks/oneshot.py score [--out DIR] [--table CSV]  # score every table architecture, tau
    python benchmarks/oneshot.py summary [--out DIR]              # DIR/summary.json again from DIR/scores.csv
    python benchmarks/oneshot.py stepcost [--steps N]             # one supernet step vs the largest alone
    python benchmarks/oneshot.py slicecost --steps 10 --out results/bench_oneshot_slicecost  # masked vs sliced passes
    python benchmarks/oneshot.py compare --baseline DIR --out DIR  # the summary of DIR's scores.csv, in --out
    python benchmarks/oneshot.py paired --baseline DIR --out DIR   # tau(--out) - tau(DIR), paired bootstrap

`train` is resumable (kill it, run it again). `score` writes DIR/scores.csv (one row per architecture:
supernet val accuracy and loss, seconds, the table's seed-mean accuracy) and DIR/summary.json
(Kendall tau with a 95% bootstrap interval against the table, the same for params and for the table's
own 1-epoch accuracy as cheap baselines, the amortized cost per ranked architecture, and searches under
four FLOPs budgets: the supernet's pick against a same-wall-clock stand-alone search, see budget_search).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.proxies.table import PROTOCOL  # noqa: E402
from evaluation.results.record import VAL_ACCURACY, VAL_LOSS  # noqa: E402

SUPERNET = {"batch_size": 16, "random_subnets": 2, "learning_rate": 0.01, "checkpoint_every": 25,
            "recalibration_clips": 128}


def _data(spec, cache={}):  # noqa: B006 - two sizes of the graded task, generated once each
    from evaluation.datasets import load_dataset
    from nas.config import dataset_for

    cfg = dataset_for(PROTOCOL["dataset"], spec)
    key = (cfg["frames"], cfg["resolution"])
    if key not in cache:
        cache[key] = load_dataset(cfg)
    return cache[key]


def train(args) -> None:
    from evaluation.oneshot.supernet import parse_supernet
    from evaluation.oneshot.train import train_supernet
    from search_space import SearchSpace
    from search_space.supernet import envelope

    space = SearchSpace.from_yaml(PROTOCOL["space"])
    cfg = parse_supernet({**SUPERNET, "steps": args.steps, **_variant(args)})
    out = Path(args.out)
    cpu = time.process_time()
    summary = train_supernet(space, _data(envelope(space)), cfg, out / "supernet.npz", seed=0,
                             num_classes=PROTOCOL["num_classes"], progress=True)
    summary.pop("net")
    summary.pop("step_seconds")
    log = out / "train_log.jsonl"
    with log.open("a") as f:
        f.write(json.dumps({**summary, "cpu_seconds": time.process_time() - cpu, "variant": _variant(args),
                            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}) + "\n")
    print(summary)


def _variant(args) -> dict:
    """The supernet fields a variant sets on top of `SUPERNET` (progressive shrinking; the few-shot split
    measured in RESULTS.md was removed, see there)."""
    out = {}
    if args.progressive:
        out["progressive"] = True
    if args.warmup is not None:
        out["warmup_fraction"] = args.warmup
    return out


def score(args) -> None:
    import pandas as pd

    from evaluation.oneshot.score import Scorer, recalibration_clips
    from evaluation.oneshot.supernet import load_supernet
    from evaluation.proxies.table import arch_means, load_table
    from search_space import SearchSpace

    space = SearchSpace.from_yaml(PROTOCOL["space"])
    out = Path(args.out)
    net = load_supernet(out / "supernet.npz", space, PROTOCOL["num_classes"])
    per_seed = load_table(args.table)
    table = arch_means(per_seed)
    axes = list(space.param_choices())
    scorer = Scorer(net, batch_size=64)
    rows = []
    for _, r in table.iterrows():
        params = {k: (r[k].item() if hasattr(r[k], "item") else r[k]) for k in axes}
        spec = space.decode(params)
        data = _data(spec)
        recal = recalibration_clips(data.train.x, SUPERNET["recalibration_clips"])
        n_val = args.val_clips or len(data.val.y)
        m = scorer.score(spec, recal, data.val.x[:n_val], data.val.y[:n_val].astype("int64"))
        rows.append({"spec_id": r["spec_id"], "supernet_accuracy": m[VAL_ACCURACY], "supernet_loss": m[VAL_LOSS],
                     "seconds": m["seconds"], "table_accuracy": r[VAL_ACCURACY], "n_seeds": int(r["n_seeds"]),
                     "params": int(r["params"]), "flops": float(r["flops"]), "table_accuracy_e1": r.get(f"{VAL_ACCURACY}_e1", np.nan),
                     "table_seconds": r.get("seconds", np.nan)})
        print(f"{r['spec_id']} supernet {m[VAL_ACCURACY]:.3f} table {r[VAL_ACCURACY]:.3f} "
              f"({m['seconds']:.2f} s)", flush=True)
    pd.DataFrame(rows).to_csv(out / "scores.csv", index=False)
    summary(args)


def summary(args) -> None:
    """DIR/summary.json from DIR/scores.csv and DIR/train_log.jsonl (what `score` ends with)."""
    import pandas as pd

    from evaluation.proxies.table import load_table

    out = Path(args.out)
    df, per_seed = pd.read_csv(out / "scores.csv", dtype={"spec_id": str}), load_table(args.table)
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    result = summarize(df, per_seed, sum(entry["seconds"] for entry in log), log[-1]["step"])
    result["supernet_train_cpu_seconds"] = sum(entry.get("cpu_seconds", np.nan) for entry in log)
    result["variant"] = log[-1].get("variant", {})
    if args.oneshot_seconds:  # the same accounting at another run's cost (wall clocks differ with the load)
        result["flops_budget_search_once_at_given_cost"] = budget_search_once(
            df, per_seed, args.oneshot_seconds, result["standalone_seconds_per_arch_per_seed"])
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float))


def nontrivial(df, per_seed):
    """The rows of `df` that are not bag-of-frames architectures (1x3x3 kernels in both s1_b1 and s2_b1:
    no temporal kernel anywhere, last in every ranking)."""
    kernels = per_seed.groupby("spec_id")[["s1_b1_kernel", "s2_b1_kernel"]].first()
    k = kernels.reindex(df["spec_id"])
    return df[~((k["s1_b1_kernel"] == "1x3x3") & (k["s2_b1_kernel"] == "1x3x3")).to_numpy()]


def summarize(df, per_seed, train_seconds: float, steps: int) -> dict:
    """Kendall tau (all architectures and the non-trivial ones, 95% bootstrap), cost, budget searches."""
    from evaluation.proxies.fidelity import bootstrap_ci, kendall_tau

    result = {"architectures": len(df), "seeds_per_arch": df["n_seeds"].describe().to_dict()}
    rest = nontrivial(df, per_seed)
    result["nontrivial_architectures"] = len(rest)
    for name, col, sign in (("supernet_accuracy", "supernet_accuracy", 1), ("supernet_loss", "supernet_loss", -1),
                            ("params", "params", 1), ("table_1_epoch_accuracy", "table_accuracy_e1", 1)):
        for suffix, part in (("", df), ("_nontrivial", rest)):
            tau, lo, hi = bootstrap_ci(kendall_tau, sign * part[col].to_numpy(dtype=float),
                                       part["table_accuracy"].to_numpy())
            result[f"tau_{name}{suffix}"] = [tau, lo, hi]
    per = float(df["seconds"].iloc[1:].median()) if len(df) > 1 else float(df["seconds"].iloc[0])
    alone = float(df["table_seconds"].mean())
    result.update(supernet_steps=steps, supernet_train_seconds=train_seconds,
                  score_seconds_median=per, score_seconds_first=float(df["seconds"].iloc[0]),
                  standalone_seconds_per_arch_per_seed=alone,
                  cost_ratio_100=(train_seconds + 100 * per) / (100 * alone),
                  cost_ratio_1000=(train_seconds + 1000 * per) / (1000 * alone))
    oneshot = train_seconds + len(df) * per
    result["flops_budget_search"] = [budget_search(df, per_seed, oneshot, alone, q) for q in QUANTILES]
    result["flops_budget_search_once"] = budget_search_once(df, per_seed, oneshot, alone)
    return result


QUANTILES = (0.25, 0.5, 0.75, 1.0)


def compare(args) -> None:
    """The same summary for an existing scores.csv (e.g. the committed baseline), written to --out."""
    import pandas as pd

    from evaluation.proxies.table import load_table

    src = Path(args.baseline)
    old = json.loads((src / "summary.json").read_text())
    df = pd.read_csv(src / "scores.csv", dtype={"spec_id": str})
    result = summarize(df, load_table(args.table), old["supernet_train_seconds"], old["supernet_steps"])
    result["source"] = str(src)
    (Path(args.out) / f"baseline_{src.name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k.startswith("tau_supernet")}, indent=2))


def budget_search(df, per_seed, oneshot_seconds: float, seconds_per_arch: float, quantile: float = 0.5,
                  draws: int = 2000, rerank: tuple[int, int] = (5, 3)) -> dict:
    """Under a FLOPs budget (a quantile of the scored architectures' FLOPs), what each way of picking
    one architecture reaches, judged on the mean final accuracy of seeds 1-3 (`per_seed`: the table's
    rows), which none of the picks saw:

    - the architecture the supernet ranks first;
    - the supernet's top k re-ranked by the table's seed-0 accuracy after e epochs (what k short
      stand-alone runs would give; `rerank` = (k, e) fixed before it was measured);
    - a stand-alone random search training as many architectures (one seed, the reference protocol)
      as the one-shot wall clock allows, picking the best by its own seed-0 accuracy (expected over
      `draws`); and the same with an oracle that picks by the 4-seed mean (the old, flattering figure).
    """
    truth = per_seed[per_seed["seed"] != 0].groupby("spec_id")[VAL_ACCURACY].mean()
    seed0 = per_seed[per_seed["seed"] == 0].set_index("spec_id")
    budget = float(df["flops"].quantile(quantile))
    ok = df[df["flops"] <= budget].set_index("spec_id")
    ok = ok.assign(truth=truth.reindex(ok.index), seed0=seed0[VAL_ACCURACY].reindex(ok.index),
                   early=seed0[f"{VAL_ACCURACY}_e{rerank[1]}"].reindex(ok.index))
    top = ok.sort_values("supernet_accuracy", ascending=False)
    pick, reranked = top.index[0], top.head(rerank[0])["early"].idxmax()
    epochs = PROTOCOL["proxy"]["epochs"]
    rerank_seconds = oneshot_seconds + rerank[0] * rerank[1] / epochs * seconds_per_arch
    rng = np.random.default_rng(0)
    m = max(1, int(oneshot_seconds // seconds_per_arch)) if seconds_per_arch == seconds_per_arch else 1
    fair, oracle = [], []
    for _ in range(draws):
        tried = ok.iloc[rng.choice(len(ok), size=min(m, len(ok)), replace=False)]
        fair.append(ok.at[tried["seed0"].idxmax(), "truth"])
        oracle.append(tried["table_accuracy"].max())
    return {"flops_quantile": quantile, "flops_budget": budget, "feasible_in_table": len(ok),
            "best_feasible_truth": float(ok["truth"].max()),
            "supernet_pick": pick, "supernet_pick_truth": float(ok.at[pick, "truth"]),
            "supernet_pick_rank": int((ok["truth"] > ok.at[pick, "truth"]).sum()) + 1,
            "rerank": {"top_k": rerank[0], "epochs": rerank[1], "seconds": rerank_seconds,
                       "pick": reranked, "truth": float(ok.at[reranked, "truth"])},
            "standalone_archs_same_wall_clock": m,
            "standalone_random_search_truth": float(np.mean(fair)),
            "standalone_oracle_pick_4_seed_mean": float(np.mean(oracle))}


def paired(args) -> None:
    """tau(--out's scores) - tau(--baseline's) with a paired 95% bootstrap over the same resampled
    architectures (all, and the non-trivial ones), and the share of resamples where --out is better."""
    import pandas as pd

    from evaluation.proxies.fidelity import kendall_tau
    from evaluation.proxies.table import load_table

    per_seed = load_table(args.table)
    ours = pd.read_csv(Path(args.out) / "scores.csv", dtype={"spec_id": str}).set_index("spec_id")
    base = pd.read_csv(Path(args.baseline) / "scores.csv", dtype={"spec_id": str}).set_index("spec_id")
    result = {"baseline": args.baseline}
    for part, ids in (("all", list(ours.index)), ("nontrivial", list(nontrivial(ours.reset_index(), per_seed)["spec_id"]))):
        t, a, b = (frame.loc[ids, col].to_numpy() for frame, col in ((ours, "table_accuracy"),
                                                                    (ours, "supernet_accuracy"), (base, "supernet_accuracy")))
        rng = np.random.default_rng(0)
        diffs = []
        for _ in range(2000):
            i = rng.integers(0, len(ids), len(ids))
            diffs.append(kendall_tau(a[i], t[i]) - kendall_tau(b[i], t[i]))
        result[f"tau_difference_{part}"] = [kendall_tau(a, t) - kendall_tau(b, t), float(np.percentile(diffs, 2.5)),
                                            float(np.percentile(diffs, 97.5)), float(np.mean(np.array(diffs) > 0))]
    (Path(args.out) / f"paired_vs_{Path(args.baseline).name}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def budget_search_once(df, per_seed, oneshot_seconds: float, seconds_per_arch: float, draws: int = 2000,
                       rerank: tuple[int, int] = (5, 3)) -> dict:
    """The four budgets of `budget_search` with every method's compute counted once for all four (one
    supernet serves every budget, as one stand-alone search's pool does):

    - supernet pick and re-rank as in `budget_search` (the re-rank's k short runs are paid per budget);
    - stand-alone random search: one pool of architectures drawn from the whole space, as many as the
      method's total compute buys, each trained once (seed 0); per budget it picks the feasible one with
      the best seed-0 accuracy (none feasible: no pick, counted as the budget's worst). Two pool sizes:
      the supernet pick's cost (training + scoring every architecture) and the re-rank path's (plus
      four budgets' re-ranking).
    Judged, as there, on the mean final accuracy of seeds 1-3. Expected values over `draws` pools."""
    truth = per_seed[per_seed["seed"] != 0].groupby("spec_id")[VAL_ACCURACY].mean()
    seed0 = per_seed[per_seed["seed"] == 0].set_index("spec_id")[VAL_ACCURACY]
    each = [budget_search(df, per_seed, oneshot_seconds, seconds_per_arch, q, draws=1, rerank=rerank)
            for q in QUANTILES]
    epochs = PROTOCOL["proxy"]["epochs"]
    rerank_seconds = oneshot_seconds + len(QUANTILES) * rerank[0] * rerank[1] / epochs * seconds_per_arch
    ids = df["spec_id"].to_numpy()
    flops = df.set_index("spec_id")["flops"]
    out = {"oneshot_seconds": oneshot_seconds, "rerank_path_seconds": rerank_seconds, "budgets": []}
    pools = {name: max(1, int(sec // seconds_per_arch)) for name, sec in (("pick_cost", oneshot_seconds),
                                                                          ("rerank_cost", rerank_seconds))}
    out["standalone_pool"] = pools
    rng = np.random.default_rng(0)
    draws_of = {name: [rng.choice(ids, size=min(m, len(ids)), replace=False) for _ in range(draws)]
                for name, m in pools.items()}
    for b in each:
        ok = flops[flops <= b["flops_budget"]].index
        worst = float(truth.reindex(ok).min())
        row = {k: b[k] for k in ("flops_quantile", "flops_budget", "feasible_in_table", "best_feasible_truth",
                                 "supernet_pick", "supernet_pick_truth", "supernet_pick_rank")}
        row["rerank_truth"] = b["rerank"]["truth"]
        for name, pools_drawn in draws_of.items():
            got = []
            for pool in pools_drawn:
                feasible = [i for i in pool if i in ok]
                got.append(float(truth[seed0.reindex(feasible).idxmax()]) if feasible else worst)
            row[f"standalone_{name}_truth"] = float(np.mean(got))
        out["budgets"].append(row)
    for key in ("supernet_pick_truth", "rerank_truth", "standalone_pick_cost_truth", "standalone_rerank_cost_truth"):
        out[f"mean_{key}"] = float(np.mean([r[key] for r in out["budgets"]]))
    return out


def _standalone_step(model):
    """A compiled training step of `model` alone (AdamW, lr 0.01, cross-entropy) on a clip batch (x, y)."""
    import keras
    import tensorflow as tf

    opt = keras.optimizers.AdamW(0.01)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, model(x, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return step


def stepcost(args) -> None:
    """Seconds per step, measured side by side on one batch: the supernet's sandwich step and a
    training step of the largest sub-network alone (same batch, AdamW, compiled)."""
    import tensorflow as tf

    from evaluation.oneshot.supernet import parse_supernet
    from evaluation.oneshot.train import train_supernet
    from search_space import SearchSpace, build_model
    from search_space.supernet import envelope

    space = SearchSpace.from_yaml(PROTOCOL["space"])
    data = _data(envelope(space))
    k = PROTOCOL["num_classes"]
    tmp = Path(args.out) / "stepcost.npz"
    tmp.unlink(missing_ok=True)
    cfg = parse_supernet({**SUPERNET, "steps": 3 + args.steps, "checkpoint_every": 1000})
    s = train_supernet(space, data, cfg, tmp, num_classes=k, progress=False)
    sandwich = float(np.median(s["step_seconds"][3:]))  # the first steps trace
    net = s.pop("net")
    step = _standalone_step(build_model(net.largest.replace(stochastic_depth=0.0), num_classes=k))
    x = tf.constant(data.train.x[:SUPERNET["batch_size"]], tf.float32)
    y = tf.constant(data.train.y[:SUPERNET["batch_size"]], tf.int32)
    for _ in range(3):
        step(x, y).numpy()
    t = time.perf_counter()
    for _ in range(args.steps):
        step(x, y).numpy()
    alone = (time.perf_counter() - t) / args.steps
    passes = 2 + SUPERNET["random_subnets"]
    print(json.dumps({"supernet_step_s": sandwich, "largest_alone_step_s": alone, "ratio": sandwich / alone,
                      "passes_per_step": passes, "batch": SUPERNET["batch_size"]}))
    tmp.unlink(missing_ok=True)


def slicecost(args) -> None:
    """CPU seconds, side by side in one process: the sandwich step with its passes masked on the envelope
    (one traced graph) and the same steps with every pass sliced (eager, the path of sub-networks
    masks cannot express), interleaved step by step on two supernets of the same seed; then compiled
    stand-alone training steps of the largest, the smallest and `--random` random sub-networks, with the
    CPU cost of tracing each. A sliced *traced* pass pays that trace for every new sub-network; the
    bound printed is the step a hybrid would cost that traces only the largest and smallest (fixed
    specs) sliced and keeps the random passes masked."""
    import dataclasses

    import tensorflow as tf

    from evaluation.oneshot import train as T
    from evaluation.oneshot.supernet import fit_input, parse_supernet
    from search_space import SearchSpace, build_model
    from search_space.supernet import envelope

    space = SearchSpace.from_yaml(args.space)
    data = _data(envelope(space))
    k = PROTOCOL["num_classes"]
    cfg = parse_supernet({**SUPERNET, "steps": 3 + args.steps})
    strategy = tf.distribute.get_strategy()
    runs = {"masked": T._setup(space, k, cfg, 0, strategy, False)}
    runs["sliced"] = dataclasses.replace(T._setup(space, k, cfg, 0, strategy, False), largest_masks=None)
    cpu = {name: [] for name in runs}
    for step in range(3 + args.steps):  # the first steps trace
        for name, run in runs.items():
            t = time.process_time()
            T._train_step(run, data, step)
            cpu[name].append(time.process_time() - t)
    step_cpu = {name: float(np.median(v[3:])) for name, v in cpu.items()}

    def alone(spec) -> dict:
        t0 = time.process_time()
        step = _standalone_step(build_model(spec.replace(stochastic_depth=0.0), num_classes=k))
        x = tf.constant(fit_input(data.train.x[:SUPERNET["batch_size"]].astype(np.float32), spec.frames,
                                  spec.resolution))
        y = tf.constant(data.train.y[:SUPERNET["batch_size"]], tf.int32)
        step(x, y).numpy()
        t1 = time.process_time()
        for _ in range(args.steps):
            step(x, y).numpy()
        return {"build_and_trace_cpu_s": t1 - t0, "step_cpu_s": (time.process_time() - t1) / args.steps}

    net = runs["masked"].net
    rng = np.random.default_rng(0)
    randoms = [space.sample(rng, name=f"random{i}") for i in range(args.random)]
    passes = {"largest": alone(net.largest), "smallest": alone(net.smallest)}
    passes.update({s.name: alone(s) for s in randoms})
    fixed = passes["largest"]["step_cpu_s"] + passes["smallest"]["step_cpu_s"]  # the two passes every step runs
    n_random = SUPERNET["random_subnets"]
    hybrid = fixed + n_random * step_cpu["masked"] / (2 + n_random)
    rand_step = float(np.mean([passes[s.name]["step_cpu_s"] for s in randoms]))
    rand_trace = float(np.mean([passes[s.name]["build_and_trace_cpu_s"] for s in randoms]))
    out = {"space": args.space, "batch": SUPERNET["batch_size"], "steps_timed": args.steps,
           "masked_step_cpu_s": step_cpu["masked"], "sliced_eager_step_cpu_s": step_cpu["sliced"],
           "sliced_eager_over_masked": step_cpu["sliced"] / step_cpu["masked"],
           "masked_step_over_largest_alone": step_cpu["masked"] / passes["largest"]["step_cpu_s"],
           "passes": passes, "random_trace_over_random_step": rand_trace / rand_step,
           "hybrid_bound_step_cpu_s": hybrid, "hybrid_bound_over_masked": hybrid / step_cpu["masked"],
           "all_traced_sliced_ideal_step_cpu_s": fixed + n_random * rand_step,
           "all_traced_sliced_with_traces_step_cpu_s": fixed + n_random * (rand_step + rand_trace)}
    (Path(args.out) / "slicecost.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("train", "score", "summary", "stepcost", "slicecost", "compare", "paired"))
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--out", default="results/bench_oneshot")
    p.add_argument("--table", default="results/bench/table.csv")
    p.add_argument("--val-clips", type=int, default=None)
    p.add_argument("--space", default="bench-large", help="slicecost: the space (the equal-compute experiment's)")
    p.add_argument("--random", type=int, default=4, help="slicecost: random sub-networks timed alone")
    p.add_argument("--progressive", action="store_true", help="progressive shrinking (train)")
    p.add_argument("--warmup", type=float, default=None, help="train: supernet.warmup_fraction (default 0.1)")
    p.add_argument("--baseline", default="results/bench_oneshot_600", help="scores to summarize (compare)")
    p.add_argument("--oneshot-seconds", type=float, default=None,
                   help="summary: also count the budget search at this one-shot cost (training + scoring)")
    args = p.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    {"train": train, "score": score, "summary": summary, "stepcost": stepcost, "slicecost": slicecost,
     "compare": compare, "paired": paired}[args.action](args)


if __name__ == "__main__":
    main()
