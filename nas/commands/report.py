"""`movinas report RESULTS`: report.md and a self-contained report.html of a study."""

from __future__ import annotations

import argparse
import sys

from ..errors import UsageError
from .flags import out_folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="write report.md and a self-contained report.html (plots, Pareto table, top architectures)",
        description=(
            "Summarize a study: trials by state, best values, hypervolume, the Pareto table with a link to each "
            "trial's spec, trade-off plots with MoViNet A0-A2 placed by cost, hypervolume over trials, parameter "
            "importances, and the top architectures block by block. Written into the results folder (or --out); "
            "the HTML embeds its images and opens in any browser. The study is read, never changed, so a running "
            "search can be reported at any time. Columns and files: docs/results.md."
        ),
        epilog="examples: movinas report results/demo | movinas report results/demo --objectives val_accuracy,params",
    )
    p.add_argument("results", metavar="RESULTS",
                   help="results folder (results/STUDY), study.db file, or storage URL (sqlite:///..., postgresql://...)")
    p.add_argument("--study", default=None, help="study name, when the storage holds several")
    p.add_argument("--objectives", default=None, metavar="COL[:max|:min],...",
                   help="columns for the Pareto table and hypervolume, e.g. val_accuracy:max,activation_bytes:min "
                        "(default: the study's objectives)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the results folder)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="Pareto-optimal architectures to describe (default: 3)")
    p.set_defaults(func=run)


def parse_objectives(text: str, columns, directions: dict[str, str]) -> dict[str, str]:
    """`val_accuracy:max,flops:min` (direction optional) → {column: direction}; UsageError names the bad part."""
    from evaluation.results.pareto import MAXIMIZED

    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, word = part.partition(":")
        name, word = name.strip(), word.strip().lower()
        if name not in columns:
            raise UsageError(f"--objectives: unknown column {name!r}; numeric columns: {', '.join(columns)}")
        if word in ("max", "maximize"):
            out[name] = "maximize"
        elif word in ("min", "minimize"):
            out[name] = "minimize"
        elif not word:
            out[name] = directions.get(name) or ("maximize" if name in MAXIMIZED else "minimize")
        else:
            raise UsageError(f"--objectives: {part!r}, the direction must be max or min")
    if not out:
        raise UsageError("--objectives: empty, give COLUMN[:max|:min] entries separated by commas")
    return out


def run(args: argparse.Namespace) -> int:
    from evaluation.results.frames import ResultsError, objectives_of
    from evaluation.results.pareto import numeric_columns
    from evaluation.results.report import write_report

    if args.out is not None:
        out_folder(args.out)
    if args.top < 0:
        raise UsageError(f"--top: {args.top}, must be >= 0")
    try:
        objectives = None
        if args.objectives is not None:  # "" is refused by parse_objectives, not ignored
            def objectives(df):  # checked against the frame write_report reads: the study is read once
                return parse_objectives(args.objectives, numeric_columns(df), objectives_of(df))
        paths = write_report(args.results, args.out, study=args.study, objectives=objectives, top=args.top)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    print(f"wrote {paths['markdown']}")
    print(f"wrote {paths['html']} ({len(paths['images'])} images embedded)")
    print(f"open it: file://{paths['html'].resolve()}", file=sys.stderr)
    return 0
