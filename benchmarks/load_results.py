"""How long reading a large study takes: `load_results` against Optuna's own `get_trials`, on
cost-only studies of the paper space at several sizes (500 to 5,000 trials by default).

Each study is made once under --dir (kept for reruns) from one real cost-only `movinas search` of
--seed-trials trials, whose trials are cloned in SQL (new numbers, same rows in every Optuna table)
up to the size wanted: the database holds the rows a long search writes. Cloned trials repeat
architectures, which the reader does not exploit (it caches nothing), so the timing is that of
distinct ones.

    python benchmarks/load_results.py                  # 500, 1000, 2000, 5000 trials
    python benchmarks/load_results.py --sizes 500,5000 --repeat 3
    python benchmarks/load_results.py --sizes 5000 --report   # and `movinas report` of that study
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.results.frames import load_results, load_study  # noqa: E402
from nas.cli import main  # noqa: E402

CONFIG = {"space": "paper", "num_classes": 600, "sampler": "random", "seed": 0,
          "objectives": [{"minimize": "flops"}, {"minimize": "activation_bytes"}]}
TABLES = ("trial_params", "trial_values", "trial_user_attributes", "trial_system_attributes",
          "trial_intermediate_values")


def seed_study(root: Path, trials: int) -> Path:
    """The real search every study starts from (made once)."""
    folder = root / f"seed{trials}"
    if not (folder / "study.db").is_file():
        cfg = root / f"seed{trials}.yaml"
        cfg.write_text(yaml.safe_dump({**CONFIG, "study": "costs", "trials": trials}))
        assert main(["search", str(cfg), "--results-dir", str(root)]) == 0
    return folder


def make_study(root: Path, size: int, seed_trials: int) -> Path:
    folder = root / f"costs{size}"
    if (folder / "study.db").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(seed_study(root, seed_trials) / "study.db", folder / "study.db.part")
    con = sqlite3.connect(folder / "study.db.part")
    with con:
        rows = con.execute("SELECT trial_id, number, study_id, state, datetime_start, datetime_complete "
                           "FROM trials ORDER BY number").fetchall()
        columns = {t: [c[1] for c in con.execute(f"PRAGMA table_info({t})")][1:] for t in TABLES}
        content = {t: {} for t in TABLES}
        for t in TABLES:
            for r in con.execute(f"SELECT {', '.join(columns[t])} FROM {t}"):
                content[t].setdefault(r[columns[t].index("trial_id")], []).append(r)
        number = len(rows)
        while number < size:
            src = rows[number % len(rows)]
            cur = con.execute("INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
                              "VALUES (?, ?, ?, ?, ?)", (number, *src[2:]))
            new_id = cur.lastrowid
            for t in TABLES:
                at = columns[t].index("trial_id")
                con.executemany(f"INSERT INTO {t} ({', '.join(columns[t])}) VALUES "
                                f"({', '.join('?' * len(columns[t]))})",
                                [r[:at] + (new_id,) + r[at + 1:] for r in content[t].get(src[0], [])])
            number += 1
        con.execute("DELETE FROM trials WHERE number >= ?", (size,))  # a size below the seed's
    con.close()
    (folder / "study.db.part").rename(folder / "study.db")
    return folder


def best(fn, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of the fastest of `repeat` calls (CPU: this process's, which a shared
    machine inflates less than the wall clock)."""
    times = []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t, time.process_time() - c))
    return min(times)


def main_(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="500,1000,2000,5000")
    p.add_argument("--seed-trials", type=int, default=500, help="trials of the real search each study starts from")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--dir", default="/tmp/movinas_bench_load")
    p.add_argument("--report", action="store_true", help="also time `movinas report` on the largest study")
    args = p.parse_args(argv)
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    print(f"{'trials':>7} {'Optuna get_trials s':>20} {'load_results s':>15} {'(CPU s)':>8} {'ratio':>6} "
          f"{'rows':>6} {'cols':>5} {'load avg':>9}")
    for size in (int(s) for s in args.sizes.split(",")):
        folder = make_study(root, size, args.seed_trials)
        # a fresh study each time: Optuna caches finished trials in the process that read them
        optuna_s, _ = best(lambda f=folder: load_study(f).study.get_trials(deepcopy=False), args.repeat)
        df = load_results(folder)
        ours, cpu = best(lambda f=folder: load_results(f), args.repeat)
        print(f"{size:7d} {optuna_s:20.2f} {ours:15.2f} {cpu:8.2f} {optuna_s / ours:6.1f} {len(df):6d} "
              f"{df.shape[1]:5d} {os.getloadavg()[0]:9.1f}", flush=True)
    if args.report:
        out = root / "report"
        t = time.perf_counter()
        assert main(["report", str(folder), "--out", str(out)]) == 0
        print(f"movinas report of {size} trials: {time.perf_counter() - t:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)

if __name__ == "__main__":
    main_()
