"""How many specs per second the analytic cost model handles, alone and beside an older version.

First, in one process pinned to one core, over N distinct specs pre-sampled from a space: sampling a
spec, building one from its dict (construction + validation), the layer walk alone, and
`estimate_cost` without and with the per-block breakdown, each beside the 20,000 specs/s target
(enough to screen millions of candidates in minutes before any training).

Then `estimate_cost` of this tree beside that of an older commit (by default the 2026-11-25 code: the
last commit before 2026-11-26 that touched search_space/), on the same items: the presets A0–A5 base
and stream at random frame counts and resolutions, and the space's sampled specs at their own input.
The old `search_space/` is extracted with `git archive` into a temporary folder; each version runs in
its own worker process, both pinned to the same core, and the two take turns, one timed pass each,
round after round (who goes first alternates), so that a load from other programs hits both alike.
Each worker also reports a digest of the costs it computed, so the table says whether they agree.
A pass is timed by the thread's CPU time by default (`--clock cpu`: time the core spent on other
programs is left out, which matters on a shared machine) or by the wall clock (`--clock wall`).

    python benchmarks/cost_model.py [--specs 2000] [--repeats 5] [--space paper] [--against REV|none]
                                    [--rounds 15] [--clock cpu|wall]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TARGET = 20_000  # specs/s on one core
BASELINE_BEFORE = "2026-11-26"  # the default baseline: the last search_space/ commit before this date


CLOCKS = {"cpu": time.thread_time, "wall": time.perf_counter}


def best_rate(fn, items: list, repeats: int, clock: str = "cpu") -> float:
    """Best of `repeats` passes over `items`, in items per second."""
    now = CLOCKS[clock]
    best = float("inf")
    for _ in range(repeats):
        start = now()
        for x in items:
            fn(x)
        best = min(best, now() - start)
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


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


# -- this tree alone ------------------------------------------------------------------------------


def single_table(specs: list, space_name: str, sample_rate: float, repeats: int, clock: str) -> None:
    from search_space import ArchSpec, estimate_cost, walk

    dicts = [s.to_dict() for s in specs]
    layers = np.array([s.num_layers for s in specs])
    rows = [
        ("space.sample(rng)", sample_rate),
        ("ArchSpec.from_dict (build + validate)", best_rate(ArchSpec.from_dict, dicts, repeats, clock)),
        ("walk (layer plan alone)", best_rate(lambda s: walk(s, s.frames, s.resolution), specs, repeats, clock)),
        ("estimate_cost", best_rate(lambda s: estimate_cost(s, s.frames, s.resolution), specs, repeats, clock)),
        ("estimate_cost, breakdown=True",
         best_rate(lambda s: estimate_cost(s, s.frames, s.resolution, breakdown=True), specs, repeats, clock)),
    ]
    print(f"{cpu_name()}, Python {platform.python_version()}, one core")
    print(f"{space_name!r} space: {len(specs):,} specs sampled ({len(set(specs)):,} distinct), "
          f"{layers.mean():.1f} layers each on average (min {layers.min()}, max {layers.max()}), "
          f"best of {repeats} passes, {clock} time\n")
    width = max(len(r[0]) for r in rows)
    print(f"{'step':<{width}}  {'specs/s':>9}  {'µs/spec':>8}  {'× target':>8}")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>9,.0f}  {1e6 / rate:>8.1f}  {rate / TARGET:>8.2f}")
    cost_rate, walk_rate = rows[3][1], rows[2][1]
    print(f"\nthe walk is {cost_rate / walk_rate:.0%} of estimate_cost's time; "
          f"target {TARGET:,} specs/s: {'met' if cost_rate >= TARGET else 'NOT met'} "
          f"({cost_rate / TARGET:.2f}×)")


# -- side by side with an older commit ------------------------------------------------------------


def workloads(specs: list, count: int, seed: int) -> dict[str, list]:
    """name → items `[spec, frames, resolution]`; a spec is `{"preset": name, "stream": bool}` (each
    version builds its own preset) or a spec dict. Presets at random frames 1–120, sizes 32–352."""
    from search_space import PRESETS

    rng = np.random.default_rng(seed)
    out = {}
    for label, stream in (("presets, base", False), ("presets, stream", True)):
        names = rng.choice(PRESETS, size=count)
        frames = rng.integers(1, 121, size=count)
        sizes = rng.integers(32, 353, size=count)
        out[label] = [[{"preset": str(n), "stream": stream}, int(f), int(r)] for n, f, r in zip(names, frames, sizes)]
    out["space specs"] = [[s.to_dict(), s.frames, s.resolution] for s in specs]
    return out


def worker(src: str, path: str, clock: str) -> None:
    """Serve timed passes of `estimate_cost` imported from `src`: read a workload name per line, answer
    the seconds of one pass over its items (`clock`: "cpu" or "wall"); first answer "ready" and a cost
    digest per workload."""
    sys.path.insert(0, src)
    import search_space
    from search_space import ArchSpec, estimate_cost, movinet

    assert Path(search_space.__file__).resolve().is_relative_to(Path(src).resolve()), search_space.__file__
    pin_one_core()
    presets = {}

    def build(ref):
        if "preset" in ref:
            key = (ref["preset"], ref["stream"])
            if key not in presets:
                presets[key] = movinet(*key)
            return presets[key]
        return ArchSpec.from_dict(ref)

    work = {name: [(build(ref), f, r) for ref, f, r in items] for name, items in json.loads(Path(path).read_text()).items()}
    digests = {name: hashlib.sha256(repr([tuple(estimate_cost(s, f, r))[:8] for s, f, r in items]).encode()).hexdigest()
               for name, items in work.items()}
    print("ready", json.dumps(digests), flush=True)
    now = CLOCKS[clock]
    for line in sys.stdin:
        items = work[line.strip()]
        start = now()
        for s, f, r in items:
            estimate_cost(s, f, r)
        print(now() - start, flush=True)


def baseline_commit() -> str:
    done = subprocess.run(["git", "log", f"--before={BASELINE_BEFORE}", "-1", "--format=%H", "--", "search_space/"],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def extract(commit: str, into: Path) -> None:
    """`search_space/` of `commit`, written under `into`."""
    done = subprocess.run(["git", "archive", commit, "search_space"], cwd=ROOT, capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        tar.extractall(into, filter="data")


class Worker:
    def __init__(self, src: Path, path: Path, clock: str):
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", str(src), str(path), clock], cwd=src,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        word, digests = self.proc.stdout.readline().split(" ", 1)
        assert word == "ready", word
        self.digests = json.loads(digests)

    def seconds(self, name: str) -> float:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(work: dict[str, list], against: str, rounds: int, clock: str) -> None:
    commit = baseline_commit() if against == "2026-11-25" else against
    short = subprocess.run(["git", "log", "-1", "--format=%h %cs", commit], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        old_src = Path(tmp) / "old"
        extract(commit, old_src)
        path = Path(tmp) / "work.json"
        path.write_text(json.dumps(work))
        old, new = Worker(old_src, path, clock), Worker(ROOT, path, clock)
        times = {name: ([], []) for name in work}
        try:
            for i in range(rounds):
                for name in work:
                    pair = (old, new) if i % 2 == 0 else (new, old)
                    got = {w: w.seconds(name) for w in pair}
                    times[name][0].append(got[old])
                    times[name][1].append(got[new])
        finally:
            old.close()
            new.close()
    print(f"\nestimate_cost side by side: {short} (old) against this tree (new), two worker processes on "
          f"one core taking turns, {rounds} rounds of one pass each, {clock} time\n")
    head = (f"{'workload':<16} {'items':>6}  {'old best':>9}  {'new best':>9}  {'new/old':>7}  "
            f"{'median of round ratios':>22}  costs")
    print(head)
    for name, items in work.items():
        t_old, t_new = times[name]
        r_old, r_new = len(items) / min(t_old), len(items) / min(t_new)
        paired = statistics.median(a / b for a, b in zip(t_old, t_new))
        same = "identical" if old.digests[name] == new.digests[name] else "DIFFER"
        print(f"{name:<16} {len(items):>6}  {r_old:>9,.0f}  {r_new:>9,.0f}  {r_new / r_old:>7.2f}  "
              f"{paired:>22.2f}  {same}")
    print("\n(rates in specs/s, best pass of each side; a round ratio is old seconds / new seconds of that round)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=2000, help="distinct specs to time (default 2000)")
    parser.add_argument("--repeats", type=int, default=5, help="passes per measurement; the best counts")
    parser.add_argument("--space", default="paper", help="search space: paper, small or a YAML path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--against", default="2026-11-25",
                        help="commit to compare estimate_cost with (default: the 2026-11-25 code); none: skip")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds of the comparison")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="time a pass by the worker's CPU time (default) or by the wall clock")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker)
    pin_one_core()
    from search_space import SearchSpace

    space = SearchSpace.from_yaml(args.space)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    specs = [space.sample(rng) for _ in range(args.specs)]
    single_table(specs, args.space, len(specs) / (time.perf_counter() - start), args.repeats, args.clock)
    if args.against != "none":
        compare(workloads(specs, args.specs, args.seed), args.against, args.rounds, args.clock)


if __name__ == "__main__":
    main()
