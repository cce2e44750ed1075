"""The `movinas` command line. Each subcommand lives in `nas/commands/<name>.py` and exposes
`register(subparsers)`; command modules import TensorFlow only inside their run function so that
`movinas --help` and `movinas cost` stay fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from search_space.spec import SpecError
from search_space.validate import one_line

from .commands import ALL
from .errors import UsageError, exit_status, sigterm_interrupts

MAX_MESSAGE = 1000  # characters of an error line
# a path the user named that is missing, a folder, a file, or not readable: their mistake, not a crash
USER_OS_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


class Parser(argparse.ArgumentParser):
    """argparse with its errors on one bounded line (`movinas cmd: error: ...`), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {one_line(message, 300)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="movinas",
        description="Neural architecture search for MoViNet-class video networks.",
        epilog="Run `movinas COMMAND --help` for the options of each command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in ALL:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        with sigterm_interrupts():  # like Ctrl-C: a running trial is marked interrupted and re-queued
            return int(args.func(args) or 0)
    except (UsageError, SpecError, ValueError, *USER_OS_ERRORS) as exc:  # library ValueErrors name the bad input
        message = one_line(str(exc), MAX_MESSAGE)  # one line, even for multi-line YAML errors
        print(f"movinas {args.command}: error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `movinas ... | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as exc:
        print(f"movinas {args.command}: interrupted", file=sys.stderr)
        return exit_status(exc)


def run() -> None:
    """Console entry point: `main` with TensorFlow's start-up chatter filtered out of stderr."""
    from .quiet import filtered_stderr

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with filtered_stderr():
        code = main()
    sys.exit(code)


if __name__ == "__main__":
    run()
