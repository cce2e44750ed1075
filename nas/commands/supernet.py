"""`movinas supernet train CONFIG`: train (or resume) the weight-sharing supernet of a search config's
space; a search with `proxy: {kind: supernet}` then scores sub-networks on it (docs/oneshot.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import UsageError, raise_if_interrupted


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "supernet",
        help="one-shot search: train a weight-sharing supernet of a config's space",
        description=(
            "Train the supernet of the search config's space on its dataset (sandwich rule: largest, smallest "
            "and random sub-networks per step, in-place distillation), settings from its `supernet:` section. "
            "Checkpoints every supernet.checkpoint_every steps to RESULTS_DIR/STUDY/supernet.npz (or "
            "supernet.checkpoint); running it again resumes from the last checkpoint. Then `movinas search "
            "CONFIG` with `proxy: {kind: supernet}` scores sub-networks on it in seconds."
        ),
        epilog="example: movinas supernet train nas/configs/oneshot.yaml --steps 400",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    t = sub.add_parser("train", help="train or resume the supernet of CONFIG",
                       description="Train or resume the supernet of CONFIG's space (see movinas supernet --help).")
    t.add_argument("config", metavar="CONFIG", help="search config YAML with a supernet: section")
    t.add_argument("--steps", type=int, default=None, help="total steps (overrides supernet.steps)")
    t.add_argument("--strategy", choices=("default", "mirrored", "multi_worker"), default=None,
                   help="tf.distribute strategy (overrides supernet.strategy)")
    t.add_argument("--results-dir", default="results", help="results root; the checkpoint goes to RESULTS_DIR/STUDY")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=run_train)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from search_space import validate as v

    from ..config import load_config
    from ..study import load_space, resolve_num_classes
    from ..trial import Datasets

    config = load_config(args.config)
    v.integer(args.steps, "--steps", optional=True, error=UsageError)
    space = load_space(config)
    from evaluation.oneshot.proxy import checkpoint_path
    from evaluation.oneshot.supernet import SupernetConfig
    from search_space.supernet import check_space, envelope

    try:
        check_space(space)
    except ValueError as exc:
        raise UsageError(f"{config.source}: space: {exc}") from None
    cfg = config.supernet or SupernetConfig()
    cfg = dataclasses.replace(cfg, **{k: val for k, val in (("steps", args.steps), ("strategy", args.strategy))
                                      if val is not None})
    datasets = Datasets(config, space)
    data = datasets(envelope(space))  # the largest input; smaller sub-networks get it resized
    num_classes = resolve_num_classes(config, lambda: data)
    path = checkpoint_path(config.replace(supernet=cfg), Path(args.results_dir) / config.study)
    from evaluation.oneshot.train import Progress, make_strategy, train_supernet

    try:
        strategy = make_strategy(cfg.strategy)
    except ValueError as exc:  # a malformed TF_CONFIG
        where = "TF_CONFIG" if cfg.strategy == "multi_worker" else f"strategy {cfg.strategy}"
        raise UsageError(f"{where}: {' '.join(str(exc).split())}") from None
    try:
        summary = train_supernet(space, data, cfg, path, seed=config.seed or 0, num_classes=num_classes,
                                 strategy=strategy, progress=Progress(  # a SIGTERM or Ctrl-C TensorFlow swallowed
                                     bar=not args.quiet, on_step=lambda _: raise_if_interrupted()))
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    net = summary.pop("net")
    per = f", {summary['seconds_per_step']:.2f} s/step" if summary["seconds_per_step"] else ""
    done = f"supernet of space {space.name!r}: step {summary['step']} of {cfg.steps} ({summary['steps_run']} now{per})"
    losses = f"; losses {' '.join(f'{v:.4f}' for v in summary['losses'])}" if summary["losses"] else ""
    if not summary["chief"]:  # another worker of a MultiWorkerMirroredStrategy: the chief writes
        print(f"{done}, {summary['worker']}: checkpoint written by the chief to {path}{losses}")
        return 0
    record = {k: summary[k] for k in ("step", "steps_run", "seconds", "seconds_per_step", "losses", "sizes",
                                      "replicas")}
    record.update(checkpoint=str(path), space=space.name, shared_weights=sum(int(w.numpy().size)
                                                                              for w in net.variables.values()))
    (path.parent / "supernet.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{done}, checkpoint {path}{losses}")
    return 0
