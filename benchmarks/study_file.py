"""What a self-contained study file costs per trial: Optuna trials of search-like size (10 suggested
parameters, 35 attributes, about 50 commits) written side by side in one run through

1. WAL, no checkpoint (movinas before 2026-12-07: the trials could stay in `study.db-wal`);
2. WAL, checkpointed before each new trial (`nas.storage.open_storage` now);
3. a rollback journal with SQLite's defaults (no WAL at all: a disk flush per commit);
4. a rollback journal without flushes (`synchronous=OFF`: fast, but a power cut can corrupt the file);

plus the switch back to a rollback journal at the end of a run (`nas.storage.release_sqlite`).

    python benchmarks/study_file.py [--trials 40] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nas.storage import open_storage, release_sqlite  # noqa: E402

MODES = {"wal, no checkpoint": ("WAL", "NORMAL"), "wal + checkpoint before each trial (now)": None,
         "rollback journal, defaults": ("DELETE", "FULL"), "rollback journal, synchronous=OFF": ("DELETE", "OFF")}


def storage(url: str, pragmas):
    """movinas' storage (pragmas None) or a plain RDBStorage with the given journal and sync modes."""
    if pragmas is None:
        return open_storage(url)
    from sqlalchemy import event

    st = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})

    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA journal_mode={pragmas[0]}")
        cursor.execute(f"PRAGMA synchronous={pragmas[1]}")
        cursor.close()

    event.listen(st.engine, "connect", on_connect)
    st.engine.dispose()
    return st


def seconds_per_trial(folder: Path, name: str, pragmas, trials: int) -> float:
    url = f"sqlite:///{folder / name.replace(' ', '_').replace(',', '').replace('+', '')}.db"
    study = optuna.create_study(storage=storage(url, pragmas), directions=["maximize", "minimize"])
    start = time.perf_counter()
    for i in range(trials):
        trial = study.ask()
        for p in range(10):
            trial.suggest_categorical(f"p{p}", [1, 2, 3])
        for a in range(35):
            trial.set_user_attr(f"a{a}", {"value": i * a})
        study.tell(trial, [i / trials, 1.0])
    return (time.perf_counter() - start) / trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    times: dict[str, list[float]] = {name: [] for name in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):  # interleaved, so that the machine's load falls on every mode alike
            for name, pragmas in MODES.items():
                folder = Path(tmp) / f"{r}"
                folder.mkdir(exist_ok=True)
                times[name].append(seconds_per_trial(folder, name, pragmas, args.trials))
        st = open_storage(f"sqlite:///{Path(tmp) / 'release.db'}")
        seconds_per_trial(Path(tmp), "release", None, 1)
        start = time.perf_counter()
        release_sqlite(st)
        release = time.perf_counter() - start
    base = statistics.median(times["wal, no checkpoint"])
    print(f"{args.trials} trials x {args.rounds} rounds, median ms per trial (about 50 commits each)")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:36s} {1000 * med:8.1f} ms   {med / base:6.2f}x")
    print(f"  switch to a rollback journal at the end of a run: {1000 * release:.1f} ms, once")


if __name__ == "__main__":
    main()
