"""The layers run on every CPU kernel set TensorFlow may pick, not only the one this machine uses.

TensorFlow turns its oneDNN kernels on by itself only on some x86 CPUs (and never on a GPU); elsewhere
it runs its own kernels, which refuse some arguments oneDNN accepts (a depthwise stride along one axis
only, once the cause of 12 failures on a fresh AMD machine). The kernel set is fixed when TensorFlow
starts, so the depthwise layer and builder tests run again in a fresh process with oneDNN switched the
other way from this one: on a machine where it is on, they run without it, and the other way round
(TFLite conversions, which do not run TensorFlow's kernels, and the presets' parameter counts, which
run none, are left out of the second run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.compat import onednn_enabled

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_depthwise.py", "tests/test_builder.py"]
NESTED = "MOVINAS_NESTED_PORTABILITY"


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get(NESTED) == "1", reason="already the nested run")
def test_layer_tests_pass_with_onednn_switched_the_other_way():
    other = "0" if onednn_enabled() else "1"
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": other, NESTED: "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0", "-x", "-k", "not tflite and not preset_params", *FILES],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"with TF_ENABLE_ONEDNN_OPTS={other}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"


@pytest.mark.slow
def test_onednn_switch_is_read_at_start_up():
    """The check the nested run relies on: the environment variable decides, in a fresh process."""
    code = "from evaluation.compat import onednn_enabled; print(onednn_enabled())"
    seen = {}
    for value in ("0", "1"):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": value, "TF_CPP_MIN_LOG_LEVEL": "3"}
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300, check=True)
        seen[value] = done.stdout.strip().splitlines()[-1]
    assert seen["0"] == "False"
    assert seen["1"] in ("True", "False")  # True on x86 builds with oneDNN; some builds have none


@pytest.mark.parametrize("first", ["search_space.layers", "search_space.pooling", "keras"])
def test_custom_layers_register_whichever_module_loads_tensorflow(first):
    """`.keras` files load after any import order, with no warning (importing the layers module first
    once fired the registration hook while that module was half loaded)."""
    code = (f"import {first}, search_space, keras; "
            "print(keras.saving.get_registered_object('movinas>FrameConv3D') is not None, "
            "keras.saving.get_registered_object('movinas>SqueezeExcite') is not None)")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "True"]
