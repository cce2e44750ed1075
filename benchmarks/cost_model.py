"""How many specs per second the analytic cost model handles, on specs sampled from the paper space.

Pre-samples N distinct specs, then times, over the same specs and in one process pinned to one core:
sampling a spec, building one from its dict (construction + validation), the layer walk alone, and
`estimate_cost` without and with the per-block breakdown. Prints each rate beside the 20,000 specs/s
target (enough to screen millions of candidates in minutes before any training).

    python benchmarks/cost_model.py [--specs 2000] [--repeats 5] [--space paper]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from search_space import ArchSpec, SearchSpace, estimate_cost, walk

TARGET = 20_000  # specs/s on one core


def best_rate(fn, items: list, repeats: int) -> float:
    """Best of `repeats` passes over `items`, in items per second."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for x in items:
            fn(x)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=2000, help="distinct specs to time (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="passes per measurement; the best counts")
    parser.add_argument("--space", default="paper", help="search space: paper, small or a YAML path")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    space = SearchSpace.from_yaml(args.space)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    specs = [space.sample(rng) for _ in range(args.specs)]
    sample_rate = len(specs) / (time.perf_counter() - start)
    distinct = len(set(specs))
    dicts = [s.to_dict() for s in specs]
    layers = np.array([s.num_layers for s in specs])

    rows = [
        ("space.sample(rng)", sample_rate),
        ("ArchSpec.from_dict (build + validate)", best_rate(ArchSpec.from_dict, dicts, args.repeats)),
        ("walk (layer plan alone)", best_rate(lambda s: walk(s, s.frames, s.resolution), specs, args.repeats)),
        ("estimate_cost", best_rate(lambda s: estimate_cost(s, s.frames, s.resolution), specs, args.repeats)),
        ("estimate_cost, breakdown=True",
         best_rate(lambda s: estimate_cost(s, s.frames, s.resolution, breakdown=True), specs, args.repeats)),
    ]
    print(f"{cpu_name()}, Python {platform.python_version()}, one core")
    print(f"{args.space!r} space: {len(specs):,} specs sampled ({distinct:,} distinct), "
          f"{layers.mean():.1f} layers each on average (min {layers.min()}, max {layers.max()}), "
          f"best of {args.repeats} passes\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'specs/s':>9}  {'µs/spec':>8}  {'× target':>8}")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>9,.0f}  {1e6 / rate:>8.1f}  {rate / TARGET:>8.2f}")
    cost_rate, walk_rate = rows[3][1], rows[2][1]
    print(f"\nthe walk is {cost_rate / walk_rate:.0%} of estimate_cost's time; "
          f"target {TARGET:,} specs/s: {'met' if cost_rate >= TARGET else 'NOT met'} "
          f"({cost_rate / TARGET:.2f}×)")


if __name__ == "__main__":
    main()
