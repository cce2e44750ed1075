"""The README's typical session runs as written on a fresh checkout: every command, in order, in a
clean folder holding only the example config, with the sizes made small (the same config fields
and flags, smaller values)."""

import re
import shlex
from pathlib import Path

import yaml

from nas.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL_FLAGS = {"movinas videos": ["--clips", "3", "--frames", "8", "--resolution", "32"]}
SMALL_TRIALS = "1"


def readme_session() -> list[list[str]]:
    """The commands of the README's "A typical session" block, comments dropped."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"A typical session.*?```bash\n(.*?)```", text, re.S).group(1)
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def small(command: list[str]) -> list[str]:
    args = command[1:]
    if "--trials" in args:
        args[args.index("--trials") + 1] = SMALL_TRIALS
    return args + SMALL_FLAGS.get(" ".join(command[:2]), [])


def test_readme_session_runs_as_written(tmp_path, monkeypatch, capsys):
    commands = readme_session()
    assert [c[:2] for c in commands] == [["movinas", "videos"], ["movinas", "search"], ["movinas", "report"],
                                         ["movinas", "export"], ["movinas", "predict"]]
    config = yaml.safe_load((ROOT / "nas/configs/example.yaml").read_text())
    config["space"] = "small"
    config["dataset"].update(frames=8, resolution=32)
    config["proxy"].update(epochs=1)
    (tmp_path / "nas/configs").mkdir(parents=True)
    (tmp_path / "nas/configs/example.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    for command in commands:
        code = main(small(command))
        out, err = capsys.readouterr()
        assert code == 0, f"{shlex.join(command)}: exit {code}\n{err[-2000:]}"
    assert (tmp_path / "results/movinet-mobile/report.html").is_file()  # where the README says
    assert (tmp_path / "a_model/export.json").is_file()
    lines = out.splitlines()
    assert lines and all(re.match(r"^\d+\. .+  [01]\.\d{4}$", line) for line in lines)
