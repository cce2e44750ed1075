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


_TERMINATED = threading.Event()  # set by the SIGTERM handler, cleared when a block starts


@contextlib.contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises `Terminated` in the main thread (elsewhere: no change);
    the previous handler is restored after. Python ignores an exception raised while it runs a
    weakref callback or `__del__` (TensorFlow runs many), so the handler also sets a flag that
    `raise_if_terminated` turns into `Terminated` at the next safe point."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        _TERMINATED.set()
        raise Terminated()

    _TERMINATED.clear()
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def raise_if_terminated() -> None:
    """Raise `Terminated` if SIGTERM arrived within `sigterm_interrupts` and its exception was
    swallowed (see there). Called between trials and after every epoch."""
    if _TERMINATED.is_set():
        raise Terminated()


def interrupt_reason(interrupt: KeyboardInterrupt) -> str:
    """The reason an interrupted trial records."""
    return "terminated (SIGTERM)" if isinstance(interrupt, Terminated) else "interrupted by the user (Ctrl-C)"
