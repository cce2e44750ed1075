"""`movinas demo`: screen the default search space with the cost model and show what it holds.

A placeholder until the search driver lands; then the demo becomes a small search.
"""

from __future__ import annotations

import argparse

from . import screen

SAMPLES = 3000


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="screen the default search space: spread of costs and the presets' place (seconds, no training)",
        description=(
            f"Sample {SAMPLES:,} architectures of the paper's search space, cost each with the analytic "
            "model, and print the spread of params, MACs and memory and where MoViNet A0-A5 fall."
        ),
    )
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    space = screen.load_space("paper")
    print(screen.format_report(screen.screen(space, "paper", SAMPLES, args.seed)))
    print("\nnext: `movinas cost a0` shows one architecture block by block, `movinas screen --help` "
          "screens other spaces and sizes")
    return 0
