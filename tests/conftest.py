"""Shared fixtures: a throwaway PostgreSQL server for the multi-machine storage tests."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # one of several test processes (pytest-xdist, `-n` in pyproject.toml): each TensorFlow, and each
    # command a test starts, keeps to one thread, so the processes share the cores instead of spinning
    # against each other (set before any test module imports TensorFlow)
    for _name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ.setdefault(_name, "1")

# The edit loop runs `python -m pytest -m "not slow" -n 0` (about 40 s on a 2-core machine); CI runs everything.
# Modules outside FAST_MODULES, and the tests named in SLOW_TESTS, carry the `slow` marker; a test module
# joins the fast set only when all of its tests (bar the named ones) take well under a second or two.
FAST_MODULES = {
    "test_cli", "test_cli_cost", "test_compat", "test_cost", "test_dataset_lists", "test_depthwise",
    "test_fuzz_config", "test_fuzz_space", "test_fuzz_spec", "test_large_space", "test_latency", "test_layout",
    "test_pareto",
    "test_presets", "test_properties", "test_space", "test_spec", "test_videos_cli",
}
SLOW_TESTS = {
    "test_demo_runs_a_real_search_and_writes_the_report",
    "test_optuna_trials_suggest_the_same_parameter_names_and_decode_to_the_sampled_spec",
    "test_broken_stream_spec_yaml_is_a_spec_or_one_spec_error_line",
    "test_broken_paper_space_yaml_is_a_space_or_one_spec_error_line",
    "test_size_equals_the_number_of_distinct_decoded_specs",
    "test_small_space_size_equals_its_enumerated_distinct_specs",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        if module not in FAST_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def _pg_bin() -> str | None:
    """The newest Debian `postgresql` server binaries, e.g. /usr/lib/postgresql/15/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a fresh PostgreSQL server on a free local port, stopped and deleted after the session.

    initdb refuses to run as root, so as root the server runs as the `postgres` user (the Debian
    package creates it) on a directory handed to that user.
    """
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no `postgres` user to run the PostgreSQL server as")
        prefix = ["runuser", "-u", "postgres", "--"] if shutil.which("runuser") else None
        if prefix is None:
            pytest.skip("running as root without runuser to start PostgreSQL as the postgres user")
    root = tempfile.mkdtemp(prefix="movinas-pg-")
    os.chmod(root, 0o755)
    if as_root:
        os.chown(root, user.pw_uid, user.pw_gid)
    data, log = os.path.join(root, "data"), os.path.join(root, "server.log")
    port = _free_port()

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120)

    done = run(f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    if done.returncode:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {done.stderr[-2000:]}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root} -c fsync=off"
    done = run(f"{bindir}/pg_ctl", "-D", data, "-l", log, "-o", options, "-w", "-t", "60", "start")
    if done.returncode:
        text = open(log).read()[-2000:] if os.path.exists(log) else ""
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"pg_ctl start failed: {done.stderr[-2000:]} {text}")
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        _wait_ready(url)
        yield url
    finally:
        run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, seconds: float = 30) -> None:
    import sqlalchemy

    from nas.storage import normalize_url

    engine = sqlalchemy.create_engine(normalize_url(url))
    deadline = time.monotonic() + seconds
    while True:
        try:
            with engine.connect():
                break
        except sqlalchemy.exc.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    engine.dispose()


@pytest.fixture
def write_config(tmp_path):
    """Write a search config (a dict) as YAML under tmp_path; returns its path."""
    import yaml

    def write(data: dict, name: str = "search.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return write
