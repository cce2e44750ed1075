"""`movinas demo`: a real search, small enough for a laptop CPU, then the report.

Runs `nas/configs/demo.yaml` (the `bench` space, the graded synthetic task, 8 trials of a 6-epoch proxy)
through the same driver as `movinas search`; running it again resumes or just reprints the result.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

CONFIG = "demo.yaml"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="a small real search on synthetic clips (a few minutes on a CPU), then the report",
        description=(
            "Search the bench MoViNet space (96 architectures) for the best accuracy / FLOPs trade-off on the "
            "built-in graded synthetic video task (10 motion classes): each trial samples an architecture, rejects it untrained if it breaks the FLOPs "
            "budget, else trains it for 6 short epochs (stopping early when a finished trial beats it at no "
            "more cost). Prints the Pareto front and writes the report into the results folder. Running it "
            "again resumes the study; delete the folder to start over. The config is nas/configs/demo.yaml."
        ),
        epilog="next: movinas search CONFIG for your own search (see nas/configs/example.yaml)",
    )
    p.add_argument("--trials", type=int, default=None, help="trials to train (default: 8)")
    p.add_argument("--results-dir", default="results", help="results root (default: results); the study is DIR/demo")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default: 1)")
    p.set_defaults(func=run)


def config_path() -> Path:
    return Path(str(resources.files("nas") / "configs" / CONFIG))


def run(args: argparse.Namespace) -> int:
    from .flags import flag
    from .search import run_search

    flag(args.trials, "--trials")

    search_args = argparse.Namespace(config=str(config_path()), trials=args.trials, storage=None, study=None,
                                     timeout=None, results_dir=args.results_dir, workers=args.workers)
    code = run_search(search_args)
    if code:
        return code
    folder = Path(args.results_dir) / "demo"
    try:
        from evaluation.results.report import write_report
    except ImportError:  # the report module is optional to the search
        return 0
    paths = write_report(folder)
    print(f"\nreport: {paths['markdown']} and {paths['html']}", file=sys.stderr)
    print("next: movinas report / movinas export on the results folder; movinas search CONFIG for your own search",
          file=sys.stderr)
    return 0
