"""`movinas`: help for the program and for every registered command; no command is a usage error."""

import argparse
import shutil
import subprocess
import sys

import pytest

from nas.cli import build_parser, main


def registered_commands() -> list[str]:
    parser = build_parser()
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(subs[0].choices) if subs else []


COMMANDS = registered_commands()


def test_cost_screen_and_demo_are_registered():
    assert {"cost", "screen", "demo"} <= set(COMMANDS)


def test_console_script_help_lists_every_command():
    exe = shutil.which("movinas")
    argv = [exe] if exe else [sys.executable, "-m", "nas"]
    done = subprocess.run([*argv, "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage: movinas" in done.stdout
    for name in COMMANDS:
        assert name in done.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: movinas {name}")
    assert len(out.splitlines()) > 3  # a description or options, not just the usage line


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: movinas" in capsys.readouterr().out


def test_unknown_command_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["no-such-command"])
    assert exit_.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
