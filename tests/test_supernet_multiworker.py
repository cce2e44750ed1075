"""`movinas supernet train --strategy multi_worker` as two local worker processes (TF_CONFIG, one CPU
each, collective ops over gRPC on loopback): the weights equal a two-device MirroredStrategy run's,
the chief alone writes the checkpoint, and both workers resume from it at the same step."""

import json
import os
import re
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from evaluation.oneshot.supernet import read_checkpoint

SPACE = """
name: tiny
frames: 4
resolution: 16
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 8, depth: 1, strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2.0, 3.0]}
head: {ratio: 2.0, hidden: 16}
"""

CONFIG = """
study: tiny
space: space.yaml
dataset: {kind: synthetic, num_classes: 3, clips_per_class: 4, frames: 4, resolution: 16}
objectives: [maximize: val_accuracy, minimize: flops]
proxy: {kind: supernet}
supernet: {steps: 2, batch_size: 4, random_subnets: 0, checkpoint_every: 2}
"""

# the reference: the same run under MirroredStrategy on 2 logical CPUs of one process
MIRRORED = textwrap.dedent("""
    import sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from nas.cli import main
    sys.exit(main(["supernet", "train", "tiny.yaml", "--quiet", "--strategy", "mirrored"]))
""")

TIMEOUT = 240  # seconds per run: a worker waiting for a dead peer must not hang the suite


def _free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("localhost", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _folder(path):
    path.mkdir(parents=True, exist_ok=True)
    (path / "space.yaml").write_text(SPACE)
    (path / "tiny.yaml").write_text(CONFIG)
    return path


def _env(tf_config=None):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env.update(PYTHONPATH=os.getcwd(), CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    if tf_config is not None:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return env


def _start_workers(folder, *extra):
    try:
        ports = _free_ports(2)
    except OSError as exc:  # no loopback to bind: TF's collective ops cannot run here
        pytest.skip(f"cannot bind a port on localhost for TF's gRPC collectives ({exc})")
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    return [subprocess.Popen([sys.executable, "-m", "nas", "supernet", "train", "tiny.yaml", "--quiet",
                              "--strategy", "multi_worker", *extra], cwd=folder, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=_env({"cluster": cluster, "task": {"type": "worker", "index": i}}))
            for i in range(2)]


def _finish(procs):
    """(returncode, stdout, stderr) of each process; all are killed if one overruns TIMEOUT."""
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return out


def _losses(stdout):
    found = re.search(r"; losses ([\d. ]+)$", stdout.strip().splitlines()[-1])
    assert found, stdout
    return found[1]


def test_two_worker_processes_match_a_two_device_mirrored_run_and_resume_together(tmp_path):
    folder, reference = _folder(tmp_path / "workers"), _folder(tmp_path / "mirrored")
    mirrored = subprocess.Popen([sys.executable, "-c", MIRRORED], cwd=reference, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        first = _finish(_start_workers(folder))
    except BaseException:
        mirrored.kill()
        mirrored.wait()
        raise
    [(code, _, stderr)] = _finish([mirrored])
    assert code == 0, stderr[-3000:]
    for code, _, stderr in first:
        assert code == 0, stderr[-3000:]
    study = folder / "results" / "tiny"
    chief, other = (run[1].strip().splitlines()[-1] for run in first)
    assert "step 2 of 2 (2 now" in chief and f"checkpoint {os.path.join('results', 'tiny', 'supernet.npz')}" in chief
    assert "worker 1: checkpoint written by the chief" in other
    assert _losses(first[0][1]) == _losses(first[1][1])
    assert sorted(p.name for p in study.iterdir()) == ["supernet.json", "supernet.npz"]  # no stray temp file
    assert json.loads((study / "supernet.json").read_text())["replicas"] == 2
    meta, ours = read_checkpoint(study / "supernet.npz")
    _, theirs = read_checkpoint(reference / "results" / "tiny" / "supernet.npz")
    assert meta["step"] == 2 and set(ours) == set(theirs)
    for key in theirs:  # each worker fed its own half of the global batch, as each replica does
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-5, atol=1e-6, err_msg=key)

    resumed = _finish(_start_workers(folder, "--steps", "3"))  # both read the chief's step-2 checkpoint
    for code, stdout, stderr in resumed:
        assert code == 0, stderr[-3000:]
        assert "step 3 of 3 (1 now" in stdout
    assert _losses(resumed[0][1]) == _losses(resumed[1][1])
    assert sorted(p.name for p in study.iterdir()) == ["supernet.json", "supernet.npz"]
    assert read_checkpoint(study / "supernet.npz")[0]["step"] == 3
