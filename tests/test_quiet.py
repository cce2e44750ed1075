"""The command line's stderr filter drops TensorFlow's native start-up lines and nothing else."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nas.quiet import is_noise, split_lines

ROOT = str(Path(__file__).resolve().parents[1])

SCRIPT = textwrap.dedent(
    """
    import os, sys
    from nas.quiet import filtered_stderr
    with filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
        os.write(2, b"I0000 00:00:1.5   16 port.cc:153] oneDNN custom operations are on. You may see\\n")
        os.write(2, b"progress 1/2\\r")          # a progress bar redraws without a newline
        os.write(2, b"E0000 00:00:1.5  16 cuda_platform.cc:52] failed ")   # noise split over writes
        os.write(2, b"call to cuInit: UNKNOWN ERROR (303)\\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"INFO: ")                 # LiteRT writes its prefix apart from the message
        os.write(2, b"Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"WARNING:absl:Importing a function (__inference_serve_42) with ops with unsaved custom gradients.\\n")
        print("movinas demo: error: a real message", file=sys.stderr)
        os.write(2, b"I am not noise\\n")
    print("after", file=sys.stderr)
    """
)


def test_filter_drops_tensorflow_noise_and_keeps_everything_else():
    env_run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=60,
                             env={"PATH": "", "PYTHONPATH": ROOT})
    assert env_run.returncode == 0, env_run.stderr
    err = env_run.stderr.decode()
    assert err == "progress 1/2\rmovinas demo: error: a real message\nI am not noise\nafter\n"


LITERT = textwrap.dedent(
    """
    import sys, tempfile
    import numpy as np
    import tensorflow as tf
    from nas.quiet import filtered_stderr
    from evaluation.deploy.export import load_tflite
    model = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])
    path = tempfile.mkdtemp() + "/tiny.tflite"
    open(path, "wb").write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    with filtered_stderr():
        runner = load_tflite(path)
        name = next(iter(runner.get_input_details()))
        print("logits", runner(**{name: np.ones((1, 4), np.float32)})["output_0"].shape, file=sys.stderr)
    """
)


def test_filter_drops_the_xnnpack_line_of_a_real_tflite_interpreter():
    run = subprocess.run([sys.executable, "-c", LITERT], capture_output=True, timeout=300,
                         env={"PATH": "", "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert run.returncode == 0, run.stderr[-2000:]
    err = run.stderr.decode()
    assert "logits (1, 2)" in err and "XNNPACK" not in err and "INFO:" not in err, err


def test_filter_is_off_when_tensorflow_logging_is_asked_for():
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=60,
                         env={"PATH": "", "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert b"oneDNN custom operations are on" in run.stderr and b"a real message" in run.stderr


@pytest.mark.parametrize("text, lines, rest", [
    (b"a\nb\rc", [b"a\n", b"b\r"], b"c"),
    (b"a\n", [b"a\n"], b""),
    (b"", [], b""),
])
def test_split_lines_keeps_terminators(text, lines, rest):
    assert split_lines(text) == (lines, rest)


def test_noise_is_only_known_tensorflow_lines():
    assert is_noise(b"I0000 00:00:17.1 1 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
    assert not is_noise(b"trial 3 failed: loss became NaN at epoch 1 step 3\n")
