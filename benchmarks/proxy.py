"""Proxy benchmark: data speed, training throughput, the motion gap, time per candidate and the rank
fidelity of cheap proxies. Prints each figure as measured in this run (record them in
benchmarks/RESULTS.md, section "Proxy").

    python benchmarks/proxy.py                      # everything (about an hour on 2 CPU cores)
    python benchmarks/proxy.py --only data,speed    # parts: data, speed, xla, candidate, recipe, motion,
                                                    # fidelity, ceiling, longer
    python benchmarks/proxy.py --only fidelity,ceiling,longer --n 20 --seeds 0,1,2 --out results/bench_fidelity
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from evaluation.datasets import single_frame, synthetic
from evaluation.proxies.fidelity import rank_fidelity, write_fidelity
from evaluation.proxies.train import Budget, BuildOptions, train_proxy
from evaluation.proxies.zero_cost import zero_cost_scores
from evaluation.results.record import TRAIN_LOSS, VAL_ACCURACY, VAL_LOSS
from search_space import movinet
from search_space.space import SearchSpace

PARTS = ("data", "speed", "xla", "candidate", "recipe", "motion", "fidelity", "ceiling", "longer")


def bench_data() -> None:
    for res in (32, 64):
        synthetic(clips_per_class=4, resolution=res)  # warm caches
        t = time.perf_counter()
        ds = synthetic(clips_per_class=64, resolution=res)
        dt = time.perf_counter() - t
        n = len(ds.train.y) + len(ds.val.y)
        print(f"data: synthetic 6 classes, 8x{res}x{res}: {n / dt:,.0f} clips/s ({n} clips in {dt:.2f} s)")


def bench_speed() -> None:
    ds = synthetic(clips_per_class=16, resolution=64)
    spec = movinet("a0")
    budget = Budget(epochs=None, steps=13, batch_size=8, bn_recalibration=0)
    rates = {}
    for depthwise in ("fast", "grouped", "fast"):  # fast twice: the first run warms TF up
        r = train_proxy(spec, ds, budget, build=BuildOptions(depthwise=depthwise))
        rates[depthwise] = r.metrics["clips_per_second"]
    print(f"speed: A0 8x64x64 training, batch 8: depthwise fast {rates['fast']:.1f} clips/s, grouped Conv3D "
          f"{rates['grouped']:.1f} clips/s, ratio {rates['fast'] / rates['grouped']:.2f}x")


def bench_xla() -> None:
    ds = synthetic(clips_per_class=16, resolution=64)
    spec = SearchSpace.from_yaml("small").sample(0)
    out = {}
    for jit in (False, True, False):
        b = Budget(epochs=None, steps=25, batch_size=8, bn_recalibration=0, jit_compile=jit)
        r = train_proxy(spec, ds, b)
        out[jit] = (r.metrics["clips_per_second"], r.metrics["seconds"])
    print(f"xla: small-space sample 0, 8x64x64, 25 steps: jit off {out[False][0]:.1f} clips/s "
          f"({out[False][1]:.1f} s run), jit on {out[True][0]:.1f} clips/s ({out[True][1]:.1f} s run, compile "
          f"included), steady-state ratio on/off {out[True][0] / out[False][0]:.2f}x")


def bench_candidate() -> None:
    """A full proxy evaluation of small-space candidates at 8x64x64: the zero-cost scores, then 4
    epochs on 4 motion classes x 128 clips (384 training clips), everything built and traced anew."""
    ds = synthetic(num_classes=4, clips_per_class=128, resolution=64)
    space = SearchSpace.from_yaml("small")
    budget = Budget(epochs=4)
    times = []
    for i in range(3):
        spec = space.sample(100 + i)
        t = time.perf_counter()
        zc = zero_cost_scores(spec, ds)
        t_zc = time.perf_counter() - t
        r = train_proxy(spec, ds, budget)
        total = time.perf_counter() - t
        times.append(total)
        print(f"candidate {i}: {zc['params']:,.0f} params, zero-cost {t_zc:.1f} s, {budget.epochs} epochs "
              f"({r.metrics['steps']} steps) {r.metrics['seconds']:.1f} s, total {total:.1f} s, "
              f"val accuracy {r.metrics[VAL_ACCURACY]:.2f}", flush=True)
    print(f"candidate: 4 classes x 128 clips, 8x64x64, zero-cost + {budget.epochs} epochs: "
          f"{statistics.mean(times):.1f} s per candidate (max {max(times):.1f} s)")


def bench_recipe(epochs: int, clips_per_class: int, classes: int, resolution: int) -> None:
    """Validation accuracy of the default Budget against each of its non-standard choices undone."""
    ds = synthetic(num_classes=classes, clips_per_class=clips_per_class, resolution=resolution)
    spec = SearchSpace.from_yaml("small").sample(0)
    variants = {
        "default Budget": {},
        "no BN recalibration": {"bn_recalibration": 0},
        "spec's stochastic depth (0.2)": {"stochastic_depth": None},
        "block scales from 0": {"block_scale_init": None},
        "learning rate 0.001": {"learning_rate": 0.001},
        "learning rate 0.01": {"learning_rate": 0.01},
    }
    for name, change in variants.items():
        accs = [train_proxy(spec, ds, Budget(epochs=epochs, **change), seed=s).metrics[VAL_ACCURACY]
                for s in (0, 1)]
        print(f"recipe: {name:<30} val accuracy after {epochs} epochs (seeds 0, 1): "
              f"{accs[0]:.3f} {accs[1]:.3f} (mean {statistics.mean(accs):.3f}; {classes} classes x "
              f"{clips_per_class} clips, 8x{resolution}², chance {1 / classes:.3f})", flush=True)


def bench_motion(epochs: int, clips_per_class: int, classes: int, resolution: int) -> None:
    ds = synthetic(num_classes=classes, clips_per_class=clips_per_class, resolution=resolution)
    still = single_frame(ds)
    space = SearchSpace.from_yaml("small")
    specs = {"a0": movinet("a0"), "small-0": space.sample(0)}
    for name, spec in specs.items():
        for seed in (0, 1):
            b = Budget(epochs=epochs)
            moving = train_proxy(spec, ds, b, seed=seed).metrics[VAL_ACCURACY]
            frozen = train_proxy(spec, still, b, seed=seed).metrics[VAL_ACCURACY]
            print(f"motion: {name} seed {seed}, {classes} classes x {clips_per_class} clips 8x{resolution}², "
                  f"{epochs} epochs: clips {moving:.3f}, single frame {frozen:.3f}, gap {moving - frozen:+.3f} "
                  f"(chance {1 / classes:.3f})", flush=True)


def bench_fidelity(args) -> None:
    space = SearchSpace.from_yaml("small")
    ds = synthetic(num_classes=args.classes, clips_per_class=args.clips_per_class, resolution=args.resolution)
    budget = Budget(batch_size=args.batch_size)
    cheap = ("grad_norm", "snip", "synflow", "naswot", "epochs:1", "epochs:1:val_loss", "epochs:1:train_loss")
    taus: dict[str, list[float]] = {}
    for seed in args.seeds:
        t = time.perf_counter()
        out = f"{args.out}/seed{seed}" if args.out else None
        r = rank_fidelity(space, ds, n=args.n, cheap=cheap, reference=f"epochs:{args.reference_epochs}",
                          seed=seed, budget=budget,
                          progress=lambda i: print(f"  arch {i + 1}/{args.n}", end="\r", flush=True))
        if out:
            r = write_fidelity(r, out)
        ref = r.table[r.reference]
        print(f"fidelity seed {seed}: {args.n} archs in {time.perf_counter() - t:.0f} s; reference "
              f"{r.reference} val accuracy mean {ref.mean():.3f}, min {ref.min():.3f}, max {ref.max():.3f}")
        for row in r.correlations.itertuples():
            taus.setdefault(row.proxy, []).append(row.kendall_tau)
            print(f"  {row.proxy:<22} tau {row.kendall_tau:+.3f} rho {row.spearman_rho:+.3f}", flush=True)
    print(f"fidelity summary over seeds {args.seeds} (Kendall tau vs epochs:{args.reference_epochs}; "
          f"{args.classes} classes x {args.clips_per_class} clips, 8x{args.resolution}²):")
    for proxy, values in taus.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        print(f"  {proxy:<22} mean {statistics.mean(values):+.3f} sd {sd:.3f} "
              f"[{' '.join(f'{v:+.2f}' for v in values)}]")


def fidelity_run(args, seed: int):
    """(architectures, 5-epoch reference accuracies) of the `--only fidelity` run of `seed`, read
    back from its table under `--out`: the specs as stored there, not sampled again."""
    import pandas as pd

    from search_space import ArchSpec

    path = Path(args.out) / f"seed{seed}" / "fidelity.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: no fidelity table; run --only fidelity with the same --out and seeds first")
    table = pd.read_csv(path)
    return [ArchSpec.from_yaml(text) for text in table["spec"]], list(table[f"epochs:{args.reference_epochs}"])


def bench_ceiling(args) -> None:
    """How well the reference agrees with itself: the architectures of fidelity seed s trained
    again with another training seed. No cheap proxy can be expected to beat this tau."""
    from evaluation.proxies.fidelity import kendall_tau, spearman_rho

    ds = synthetic(num_classes=args.classes, clips_per_class=args.clips_per_class, resolution=args.resolution)
    budget = Budget(batch_size=args.batch_size, epochs=args.reference_epochs)
    for seed in args.seeds:
        specs, first = fidelity_run(args, seed)
        again = [train_proxy(spec, ds, budget, seed=seed + 1000).metrics[VAL_ACCURACY] for spec in specs]
        print(f"ceiling seed {seed}: epochs:{args.reference_epochs} with training seed {seed} vs {seed + 1000}, "
              f"{len(specs)} archs: tau {kendall_tau(first, again):+.3f} rho {spearman_rho(first, again):+.3f}",
              flush=True)


def bench_longer(args) -> None:
    """Longer training proxies (2 and 3 epochs: the default Budget is 3) on the architectures of
    fidelity seed s, against the reference column of that seed's fidelity table."""
    from evaluation.proxies.fidelity import kendall_tau, spearman_rho

    ds = synthetic(num_classes=args.classes, clips_per_class=args.clips_per_class, resolution=args.resolution)
    for seed in args.seeds:
        specs, reference = fidelity_run(args, seed)
        for k in (2, 3):
            runs = [train_proxy(spec, ds, Budget(batch_size=args.batch_size, epochs=k), seed=seed).metrics
                    for spec in specs]
            for metric, sign in ((VAL_ACCURACY, 1), (VAL_LOSS, -1), (TRAIN_LOSS, -1)):
                x = [sign * m[metric] for m in runs]
                print(f"longer seed {seed}: epochs:{k}:{metric} vs epochs:{args.reference_epochs}: "
                      f"tau {kendall_tau(x, reference):+.3f} rho {spearman_rho(x, reference):+.3f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {', '.join(PARTS)}")
    p.add_argument("--n", type=int, default=20, help="architectures per fidelity seed")
    p.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--clips-per-class", type=int, default=128)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--reference-epochs", type=int, default=5)
    p.add_argument("--motion-epochs", type=int, default=6)
    p.add_argument("--out", default="results/bench_fidelity",
                   help="folder of the fidelity tables and plots (written by fidelity, read by ceiling and longer)")
    args = p.parse_args()
    parts = args.only.split(",")
    for part in parts:
        if part not in PARTS:
            p.error(f"--only: {part!r}, allowed: {', '.join(PARTS)}")
    if "data" in parts:
        bench_data()
    if "speed" in parts:
        bench_speed()
    if "xla" in parts:
        bench_xla()
    if "candidate" in parts:
        bench_candidate()
    if "recipe" in parts:
        bench_recipe(args.reference_epochs, args.clips_per_class, args.classes, args.resolution)
    if "motion" in parts:
        bench_motion(args.motion_epochs, args.clips_per_class, args.classes, args.resolution)
    if "fidelity" in parts:
        bench_fidelity(args)
    if "ceiling" in parts:
        bench_ceiling(args)
    if "longer" in parts:
        bench_longer(args)


if __name__ == "__main__":
    main()
