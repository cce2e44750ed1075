"""`movinas fidelity [SPACE]`: how well cheap proxies rank architectures against a reference."""

from __future__ import annotations

import argparse
from pathlib import Path

from search_space import validate as v

from ..errors import UsageError
from .flags import flag, input_flags
from .screen import load_space

DEFAULT_CHEAP = ("grad_norm", "snip", "synflow", "naswot", "epochs:1")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "fidelity",
        help="rank correlation (Kendall tau, Spearman rho) of cheap proxies against a reference",
        description=(
            "Sample N architectures from a search space, score each with every cheap proxy (zero-cost "
            "scores, k-epoch training; params and MACs always, as baselines) and with a more expensive "
            "reference, then print Kendall's tau-b and Spearman's rho of each proxy against the "
            "reference and save the table (fidelity.csv), the correlations (correlations.csv) and a "
            "scatter plot (fidelity.png). Proxies: grad_norm, snip, synflow, naswot, params, macs, "
            "epochs:K or epochs:K:METRIC (METRIC: val_accuracy, val_loss, train_loss, train_accuracy)."
        ),
        epilog=("examples: movinas fidelity small --n 20 --cheap synflow --cheap epochs:1 --reference epochs:5 | "
                "movinas fidelity small --n 8 --reference epochs:3 --proxy batch_size=16"),
    )
    p.add_argument("space", metavar="SPACE", nargs="?", default="small",
                   help="built-in space (small, paper) or a space YAML file (default: small)")
    p.add_argument("--n", type=int, default=20, help="architectures to sample (default: 20)")
    p.add_argument("--cheap", action="append", default=None, metavar="PROXY",
                   help=f"a cheap proxy; repeat for several (default: {' '.join(DEFAULT_CHEAP)})")
    p.add_argument("--reference", default="epochs:5", metavar="PROXY",
                   help="the expensive proxy to rank against (default: epochs:5)")
    p.add_argument("--dataset", default="synthetic",
                   help="'synthetic' (the built-in motion dataset) (default: synthetic)")
    p.add_argument("--classes", type=int, default=6, help="synthetic classes (default: 6)")
    p.add_argument("--clips-per-class", type=int, default=32, help="synthetic clips per class (default: 32)")
    p.add_argument("--frames", type=int, default=8, help="clip frames (default: 8)")
    p.add_argument("--resolution", type=int, default=32, help="clip height and width (default: 32)")
    p.add_argument("--proxy", action="append", default=[], metavar="FIELD=VALUE",
                   help="a proxy-training Budget field, e.g. batch_size=16 or learning_rate=0.01 (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, data and training (default: 0)")
    p.add_argument("--out", default="results/fidelity", help="output folder (default: results/fidelity)")
    p.set_defaults(func=run)


def _budget(items: list[str]):

    from evaluation.proxies.train import Budget

    fields = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--proxy {v.quote(item)}: must be FIELD=VALUE, e.g. batch_size=16")
        fields[key.strip()] = v.load_yaml(value, f"--proxy {v.quote(item)}", error=UsageError)
    try:
        return Budget.from_dict(fields, path="--proxy")
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _dataset(args: argparse.Namespace):
    from evaluation.datasets import synthetic

    if args.dataset != "synthetic":
        raise UsageError(f"--dataset {v.quote(args.dataset)}: allowed: synthetic")
    try:
        return synthetic(num_classes=args.classes, clips_per_class=args.clips_per_class, frames=args.frames,
                         resolution=args.resolution, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--dataset synthetic: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from evaluation.proxies.fidelity import parse_proxy, rank_fidelity, write_fidelity

    flag(args.n, "--n", 2, 10_000)
    flag(args.classes, "--classes", 2, 1000)
    flag(args.clips_per_class, "--clips-per-class", 2, 100_000)
    flag(args.seed, "--seed", 0)
    input_flags(args)
    cheap = tuple(args.cheap) if args.cheap else DEFAULT_CHEAP
    try:
        for i, c in enumerate(cheap):
            parse_proxy(c, f"--cheap[{i}]")
        parse_proxy(args.reference, "--reference")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    budget = _budget(args.proxy)
    space = load_space(args.space)
    dataset = _dataset(args)
    out = Path(args.out)
    with tqdm(total=args.n, desc="architectures", unit="arch") as bar:
        result = rank_fidelity(space, dataset, n=args.n, cheap=cheap, reference=args.reference, seed=args.seed,
                               budget=budget, progress=lambda i: bar.update(1))
    result = write_fidelity(result, out)
    result.correlations.to_csv(out / "correlations.csv", index=False)
    print(f"rank fidelity against {result.reference} over {args.n} architectures of {space.name!r} "
          f"({dataset.num_classes} classes, {dataset.frames}x{dataset.resolution}x{dataset.resolution}):")
    print(f"{'proxy':<28} {'kendall_tau':>11} {'spearman_rho':>12} {'n':>4}")
    for row in result.correlations.itertuples():
        print(f"{row.proxy:<28} {row.kendall_tau:>11.3f} {row.spearman_rho:>12.3f} {row.n:>4}")
    print(f"table: {out / 'fidelity.csv'}  plot: {result.plot}")
    return 0
