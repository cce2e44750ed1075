"""The one exception type for user errors (the CLI prints its message on one line and exits 2), and
SIGTERM as an interrupt."""

import contextlib
import signal
import threading


class UsageError(ValueError):
    """Bad input from a user (file, field, preset, storage, budget). The message names what was
    wrong and what is allowed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what job schedulers and container runtimes send before SIGKILL), raised like Ctrl-C
    so that a running trial is marked interrupted and re-queued the same way."""


EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


def exit_status(interrupt: KeyboardInterrupt) -> int:
    """The shell's exit status for an interrupt: 143 after SIGTERM, 130 after Ctrl-C."""
    return EXIT_TERMINATED if isinstance(interrupt, Terminated) else EXIT_INTERRUPTED


_RAISES = {signal.SIGTERM: Terminated, signal.SIGINT: KeyboardInterrupt}  # SIGTERM first: it wins
_PENDING = {signum: threading.Event() for signum in _RAISES}  # set by the handlers, cleared per block


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere: no change);
    the previous handler is restored after. Python ignores an exception raised while it runs a
    weakref callback or `__del__` (TensorFlow runs many), so the SIGTERM handler, and Ctrl-C's
    while Python's default one is installed, also set a flag that `raise_if_interrupted` turns
    into the interrupt at the next safe point."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _PENDING[signum].set()
        raise _RAISES[signum]()

    for flag in _PENDING.values():
        flag.clear()
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not one a host (IPython) set
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def raise_if_interrupted() -> None:
    """Raise `Terminated` (SIGTERM) or KeyboardInterrupt (Ctrl-C) if one arrived within
    `sigterm_interrupts` and its exception was swallowed (see there). Called between trials,
    after every epoch and after every supernet step."""
    for signum, flag in _PENDING.items():
        if flag.is_set():
            raise _RAISES[signum]()


def interrupt_reason(interrupt: KeyboardInterrupt) -> str:
    """The reason an interrupted trial records."""
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted by the user (Ctrl-C)"
