"""Outputs of the one-shot path under a fixed seed, recorded once and compared after a refactor.

    python benchmarks/oneshot_golden.py record [--out FILE]   # write the reference (default below)
    python benchmarks/oneshot_golden.py check  [--out FILE]   # rerun, compare with the reference

Four tiny spaces: `tiny` (every pass runs as masks), `sliced` (1x1x1 kernels: sub-networks train in
the sliced step) and `causal` (positional encoding, most-recent taps), each trained for 2 supernet
steps (seed 0) on synthetic clips; `mixed` (2+1D, 2plus3d SE, skip projections the envelope lacks)
with seeded random weights.
Then, for the largest, the smallest and three sampled specs: the masked score (`Scorer`, which falls
back to the extracted model when a spec cannot run as masks), the extracted model's score, the sliced
and masked forward logits on a fixed clip, the masks, the extracted weights and the recalibrated
export weights. `check` prints per quantity whether it is bit-identical, else the largest relative
difference, and exits 1 when anything differs by more than float32 rounding (1e-5 relative).

The committed reference (oneshot_golden.json) was recorded on commit 069d121, before the weight map
(search_space/weight_map.py) and the one training step; on the 2-core AMD EPYC CPU (TF 2.21) the run
repeats bit for bit, and the code after the change gave 267 of 267 quantities bit-identical. Another
machine or TensorFlow version may differ in the last bits: record there first, on the old code.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REFERENCE = Path(__file__).with_name("oneshot_golden.json")

TINY = """
name: tiny
frames: 4
resolution: 16
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 8, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2.0, 3.0]}
  - {width: 16, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3], expand_ratios: [2.0, 3.0]}
head: {ratio: 2.0, hidden: 16}
"""

MIXED = """
name: mixed
frames: 6
resolution: [16, 24]
width_mult: [0.5, 1.0]
conv_type: 2plus1d
se_type: 2plus3d
se_ratio: [0.25, 0.5]
stem: {width: 8, width_mult: [0.75, 1.0], kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 16, width_mult: [0.75, 1.0], depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x1x1, 3x5x5],
     expand_ratios: [1.5, 3.0]}
  - {width: 16, width_mult: [0.75, 1.0], depth: [1, 2], strides: 1x1x1, kernels: [1x1x1, 5x3x3],
     expand_ratios: [2.0, 4.0]}
head: {ratio: 2.0, hidden: 16}
"""

CAUSAL = """
name: causal
frames: 6
resolution: 16
causal: true
positional_encoding: true
stem: {width: 8, kernel: 1x3x3, strides: 1x2x2}
stages:
  - {width: 8, depth: [1, 2], strides: 1x2x2, kernels: [1x3x3, 3x3x3, 5x5x5], expand_ratios: [2.0, 3.0]}
  - {width: 16, depth: [1, 2], strides: 1x2x2, kernels: [1x5x5, 3x3x3], expand_ratios: [2.0, 3.0]}
head: {ratio: 2.0, hidden: 16}
"""

SPACES = {"tiny": TINY, "sliced": TINY.replace("kernels: [1x3x3, 3x3x3]", "kernels: [1x1x1, 1x3x3]"),
          "mixed": MIXED, "causal": CAUSAL}
TRAINED = ("tiny", "sliced", "causal")  # mixed: seeded random weights (see _perturbed)


def _digest(arrays) -> dict:
    """sha256 of the arrays (bit identity) and their float64 sums per array (closeness)."""
    h = hashlib.sha256()
    sums = []
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float32))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
        sums.append(float(np.abs(a).astype(np.float64).sum()))
    return {"sha256": h.hexdigest(), "abs_sums": sums}


def _weights(model) -> list:
    return [w.numpy() for w in model.weights if "seed_generator" not in w.path]


def _perturbed(space, data):
    """A supernet with seeded random weights and BN statistics (for a space the masked step could not
    train before the weight map: its skip projections outside the envelope model failed the ZERO fill)."""
    from evaluation.compat import seeded
    from search_space.supernet import Supernet

    with seeded(0):
        net = Supernet(space, 3)
    rng = np.random.default_rng(7)
    for path, v in net.variables.items():
        value = rng.normal(0, 0.5 if path.endswith("scale") else 0.2, v.shape)
        if path.endswith(("moving_variance", "gamma")):
            value = 1 + np.abs(value)
        v.assign(value.astype("float32"))
    return net


def run_space(name: str, text: str) -> dict:
    from evaluation.datasets import synthetic
    from evaluation.oneshot.score import Scorer, recalibrated_model, recalibration_clips, score_extracted
    from evaluation.oneshot.supernet import SupernetConfig, fit_input
    from evaluation.oneshot.train import train_supernet
    from search_space import SearchSpace
    from search_space.supernet import extract

    space = SearchSpace.from_yaml(text)
    data = synthetic(num_classes=3, clips_per_class=4, frames=max(space.frames), resolution=max(space.resolution))
    cfg = SupernetConfig(steps=2, batch_size=4, random_subnets=1, checkpoint_every=2, recalibration_clips=4)
    if name in TRAINED:
        with tempfile.TemporaryDirectory() as tmp:
            summary = train_supernet(space, data, cfg, Path(tmp) / "ck.npz", seed=0, progress=False)
        net, out = summary["net"], {"losses": summary["losses"]}
    else:
        net, out = _perturbed(space, data), {}
    out["supernet"] = _digest(v.numpy() for v in net.variables.values())
    scorer = Scorer(net, batch_size=4)
    specs = {"largest": net.largest, "smallest": net.smallest, **{f"sample{i}": space.sample(i) for i in range(3)}}
    for label, spec in specs.items():
        def fit(x, spec=spec):
            return fit_input(x.astype(np.float32), spec.frames, spec.resolution).numpy()

        recal = fit(recalibration_clips(data.train.x, 8))
        val_x, val_y = fit(data.val.x), data.val.y.astype("int64")
        masks = net.masks(spec)
        clip = val_x[:2]
        row = {"maskable": masks is not None,
               "score": scorer.score(spec, recal, val_x, val_y),
               "score_extracted": score_extracted(net, spec, recal, val_x, val_y, 4, time.perf_counter()),
               "sliced_logits": net.forward(spec, clip)[0].numpy().tolist(),
               "extracted": _digest(_weights(extract(net, spec))),
               "export": _digest(_weights(recalibrated_model(net, spec, fit(data.train.x), 4, batch_size=4)))}
        if masks is not None:
            row["masks"] = _digest(masks)
            row["masked_logits"] = net.masked_forward(masks, clip)[0].numpy().tolist()
        for key in ("score", "score_extracted"):
            row[key].pop("seconds")
        out[label] = row
    return out


def _leaves(d, path=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(d, list) and d and isinstance(d[0], list):
        for i, v in enumerate(d):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, d


def compare(ref: dict, now: dict) -> tuple[bool, list[str]]:
    """(within float32 rounding, report lines) of two runs' outputs."""
    a, b = dict(_leaves(ref)), dict(_leaves(now))
    lines, ok = [], True
    if set(a) != set(b):
        return False, [f"different quantities: {sorted(set(a) ^ set(b))}"]
    exact = 0
    for k in a:
        if a[k] == b[k]:
            exact += 1
            continue
        if isinstance(a[k], str) or isinstance(a[k], bool):
            lines.append(f"{k}: {a[k]} -> {b[k]}")
            continue  # a checksum: judged by the sums beside it
        x, y = np.asarray(a[k], float), np.asarray(b[k], float)
        rel = float(np.max(np.abs(x - y) / np.maximum(np.abs(x), 1e-6)))
        ok &= rel <= 1e-5
        lines.append(f"{k}: max relative difference {rel:.2e}")
    return ok, [f"{exact} of {len(a)} quantities bit-identical", *lines]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=("record", "check"))
    p.add_argument("--out", default=str(REFERENCE))
    p.add_argument("--spaces", default=",".join(SPACES))
    args = p.parse_args()
    t0 = time.perf_counter()
    now = {name: run_space(name, SPACES[name]) for name in args.spaces.split(",")}
    print(f"ran in {time.perf_counter() - t0:.0f} s")
    if args.action == "record":
        Path(args.out).write_text(json.dumps(now, indent=1) + "\n")
        print(f"wrote {args.out}")
        return
    ref = json.loads(Path(args.out).read_text())
    ok, lines = compare({k: ref[k] for k in now}, now)
    print("\n".join(lines))
    print("SAME (within float32 rounding)" if ok else "DIFFERENT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
