"""Keep TensorFlow's native start-up chatter off the terminal.

TensorFlow's C++ runtime writes lines such as ``oneDNN custom operations are on`` or ``failed call
to cuInit`` straight to file descriptor 2 before its log level applies, so
``TF_CPP_MIN_LOG_LEVEL`` cannot hide them. `filtered_stderr` routes descriptor 2 through a pipe
and a thread that drops exactly those known lines and passes everything else through at once
(progress bars included). Set ``TF_CPP_MIN_LOG_LEVEL=0`` to see everything.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

NOISE = (
    b"All log messages before absl::InitializeLog() is called",
    b"oneDNN custom operations are on",
    b"Could not find cuda drivers on your machine",
    b"failed call to cuInit",
    b"cpu_feature_guard.cc",
    b"To enable the following instructions:",
    b"Unable to register cuDNN factory",
    b"Unable to register cuFFT factory",
    b"Unable to register cuBLAS factory",
    b"computation placer already registered",
    b"TF-TRT Warning",
    b"Created TensorFlow Lite XNNPACK delegate",  # LiteRT / tf.lite, once per interpreter
    b"WARNING:absl:Importing a function",  # tf.saved_model.load of functions saved without gradients
    b"WARNING:absl:Fingerprint not found",
)
# a line that may still turn out to be noise once the rest of it arrives; LiteRT writes its
# "INFO: " prefix and the message in separate writes
_MAYBE = re.compile(rb"^(?:[IWE]\d{0,4}(?: .*)?|W(?:A(?:R(?:N(?:I(?:N(?:G(?::.*)?)?)?)?)?)?)?|I(?:N(?:F(?:O(?::.*)?)?)?)?"
                    rb"|T(?:o(?: .*)?)?)$", re.S)


def is_noise(line: bytes) -> bool:
    return any(pattern in line for pattern in NOISE)


def split_lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    """(complete segments, each ending in \\n or \\r; the unfinished rest)."""
    parts = re.split(rb"(?<=[\r\n])", buffer)
    return [p for p in parts[:-1] if p], parts[-1]


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Within the block, descriptor 2 (this process and its children) drops TensorFlow's noise."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        original = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError):  # no descriptor 2 (e.g. embedded interpreters): nothing to filter
        yield
        return
    os.dup2(write_end, 2)
    os.close(write_end)
    thread = threading.Thread(target=_pump, args=(read_end, original), daemon=True, name="stderr-filter")
    thread.start()
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last write end in this process closes: the pump sees EOF
        thread.join(timeout=5)
        os.close(original)


def _pump(read_end: int, out: int) -> None:
    pending = b""
    while True:
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            break
        if not chunk:
            break
        lines, pending = split_lines(pending + chunk)
        keep = b"".join(line for line in lines if not is_noise(line))
        if pending and not _MAYBE.match(pending):
            keep, pending = keep + pending, b""
        _write(out, keep)
    if pending and not is_noise(pending):
        _write(out, pending)
    os.close(read_end)


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return
