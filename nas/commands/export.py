"""`movinas export RESULTS --trial N | --best RULE`: a searched architecture as deployable files.

Picks a COMPLETE trial, rebuilds its `ArchSpec` from the storage, optionally retrains it from
scratch on the study's dataset, and writes it with `evaluation.deploy.export.export_model` plus a
`model_card.md` saying what it costs, how it scored and how it was found.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from evaluation.results.record import VAL_ACCURACY, VAL_LOSS

from ..errors import UsageError
from .flags import out_folder

RULE_HELP = (
    "RULE: [max|min] COLUMN [under|with CONDITION[, CONDITION...]], CONDITION: COLUMN OP NUMBER[UNIT] with OP "
    "one of <= >= < > == != and UNIT one of K M G T KB MB GB KiB MiB GiB. The direction defaults to the study's "
    "for its objectives, else max for accuracies and zero-cost scores and min otherwise. Only COMPLETE trials "
    "qualify; ties go to the lower cost (flops, then params), then to the lower trial number."
)
EXAMPLES = """examples:
  movinas export results/demo --best "val_accuracy under flops<=1e9" --out exported/
  movinas export results/demo --best "min params with val_accuracy>=0.5" --format yaml,tflite --out small/
  movinas export results/demo --trial 7 --train-epochs 10 --out trial7/
  movinas export results/demo --trial 7 --stream --out trial7-stream/      (causal architectures)
  movinas export results/demo --trial 7 --stream --format tflite,tflite-int8 --gpu-compatible --out phone/

FORMATS (--format; TFLite ones for the base model, and with --stream for the one-frame stream model):
  yaml            spec.yaml, the architecture alone
  keras           model.keras (and stream.keras): for Python, fine-tuning, movinas predict
  weights         model.weights.h5, the weights alone
  savedmodel      TF SavedModel (and the stream one with TF Hub's init_states/call signatures): TF Serving
  tflite          float32: the reference file, every op of the stream file inside XNNPACK; pick it
                  by default on CPUs, and when logits must equal the Keras model's
  tflite-fp16     float16 weights: half the file, logits within ~1e-3; XNNPACK on CPU unpacks the
                  weights to float32 at load (float's speed); pick it to ship a smaller float file
                  or for the GPU delegate, which computes in float16 anyway
  tflite-dynamic  int8 weights, float activations, no calibration: a quarter of the file, but XNNPACK
                  leaves its depthwise convs to slower kernels; pick it only for size without data
  tflite-int8     full-integer int8 calibrated on the study's clips (stream: each clip streamed from
                  zero states): a quarter of the file, for integer-only accelerators and CPUs with
                  fast int8 kernels; on the 2-core x86 of benchmarks/RESULTS.md it runs at float's
                  speed; top-1 agreement with float is measured there (check it on your data)
  --gpu-compatible (with --stream) adds stream_gpu.tflite: float, no tensor above rank 4, for the
                  LiteRT GPU delegate; same logits as stream.tflite"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a trial's architecture: spec YAML, .keras, SavedModel, TFLite (base and stream), model card",
        description=(
            "Pick a completed trial of a study (--trial or --best), rebuild its architecture from the storage, "
            "optionally retrain it from scratch on the study's dataset (--train-epochs), and write it in each "
            "requested format with export.json and model_card.md. Without --train-epochs the weights are "
            "RANDOMLY INITIALIZED: the files are for deployment checks (size, speed, conversion), not for use. "
            + RULE_HELP
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", metavar="RESULTS",
                   help="results folder (results/STUDY), study.db file, or storage URL (sqlite:///..., postgresql://...)")
    pick = p.add_mutually_exclusive_group(required=True)
    pick.add_argument("--trial", type=int, metavar="N", help="trial number (a COMPLETE trial)")
    pick.add_argument("--best", metavar="RULE", help='selection rule, e.g. "val_accuracy under flops<=1e9"')
    p.add_argument("--study", default=None, help="study name, when the storage holds several")
    p.add_argument("--format", default="yaml,keras,savedmodel,tflite", metavar="F,...",
                   help="comma-separated formats (default: yaml,keras,savedmodel,tflite); see FORMATS below")
    p.add_argument("--stream", action="store_true", help="also write the stream model (causal architectures only)")
    p.add_argument("--gpu-compatible", action="store_true",
                   help="with --stream: also write stream_gpu.tflite, the float stream file with no tensor of more "
                        "than 4 dimensions (image [1, H, W, 3], states included), for the LiteRT GPU delegate")
    p.add_argument("--train-epochs", type=int, default=None, metavar="E",
                   help="retrain from scratch for E epochs on the study's dataset with its proxy settings first")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def pick_trial(df, trial: int | None, rule: str | None):
    """The row to export; UsageError when the trial is missing, not COMPLETE, or the rule is bad."""
    from evaluation.results.pareto import best_trial

    study = df.attrs.get("study")
    complete = df.loc[df["state"] == "COMPLETE", "number"].tolist() if len(df) else []
    listed = _numbers(complete)
    if rule is not None:
        try:
            return best_trial(df, rule), f'--best "{rule}"'
        except ValueError as exc:
            raise UsageError(f"--best: {exc}") from None
    rows = df[df["number"] == trial] if len(df) else df
    if rows.empty:
        last = int(df["number"].max()) if len(df) else None
        span = f"trials 0 to {last}" if last is not None else "no trials"
        raise UsageError(f"--trial {trial}: no such trial in study {study!r} ({span}); COMPLETE trials: {listed}")
    row = rows.iloc[0]
    if row["state"] != "COMPLETE":
        why = f" ({row['reason']})" if isinstance(row.get("reason"), str) and row["reason"] else ""
        raise UsageError(f"--trial {trial}: trial is {row['state']}{why}, only COMPLETE trials can be exported; "
                         f"COMPLETE trials: {listed}")
    return row, f"--trial {trial}"


def _numbers(values: list) -> str:
    if not values:
        return "none"
    shown = ", ".join(str(int(v)) for v in values[:30])
    return shown + (f", ... ({len(values)} in all)" if len(values) > 30 else "")


def parse_formats(text: str) -> tuple[str, ...]:
    from evaluation.deploy.export import ALL_FORMATS

    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad or not formats:
        raise UsageError(f"--format: {', '.join(bad) or 'empty'}, must be a comma-separated list of "
                         f"{', '.join(ALL_FORMATS)}")
    return formats


def run(args: argparse.Namespace) -> int:
    from evaluation.deploy.export import ExportOptions, export_model
    from evaluation.deploy.export_trial import model_card
    from evaluation.results.frames import ResultsError, load_results
    from evaluation.results.report import format_value

    formats = parse_formats(args.format)
    out_folder(args.out)  # before any work: --out may not name a file
    if args.train_epochs is not None and args.train_epochs < 1:
        raise UsageError(f"--train-epochs: {args.train_epochs}, must be >= 1")
    try:
        df = load_results(args.results, args.study)
    except ResultsError as exc:
        raise UsageError(str(exc)) from None
    row, how = pick_trial(df, args.trial, args.best)
    spec = row["spec"]
    number = int(row["number"])
    if spec is None:
        raise UsageError(f"trial {number}: its architecture is not stored (no spec attribute nor decodable params)")
    if args.gpu_compatible and not args.stream:
        raise UsageError("--gpu-compatible: writes the stream file for the GPU delegate; add --stream")
    if args.stream and not spec.causal:
        raise UsageError(f"--stream: trial {number} is not causal (causal: false); the stream model needs a "
                         "causal architecture, search a space with causal: true")
    attrs = df.attrs
    from search_space.spec import NUM_CLASSES

    num_classes = int(attrs.get("num_classes") or NUM_CLASSES)
    print(f"trial {number} of study {attrs['study']} ({how}): {spec.num_layers} blocks, "
          f"{format_value('flops', row['flops'])} FLOPs, {format_value('params', row['params'])} params", file=sys.stderr)
    weights = _weights(args, spec, row, attrs, num_classes)
    out = Path(args.out)
    paths = export_model(spec.replace(name=f"{attrs['study']}-{number}"), weights.model, out, formats,
                         stream=args.stream, labels=weights.labels,
                         representative=_calibration(attrs, spec) if "tflite-int8" in formats else None,
                         options=ExportOptions(num_classes=num_classes, gpu_compatible=args.gpu_compatible))
    card = out / "model_card.md"
    card.write_text(model_card(row, attrs, how, weights, paths, num_classes))
    for key, path in paths.items():
        print(f"{key:18s} {path}")
    print(f"{'model_card':18s} {card}")
    if weights.source == "random":
        print("WARNING: the exported weights are RANDOMLY INITIALIZED (not trained); pass --train-epochs E to "
              "train them on the study's dataset first", file=sys.stderr)
    elif weights.source == "kept":
        print(f"weights: trial {number}'s proxy run during the search ({weights.detail['file']})", file=sys.stderr)
    if args.train_epochs is not None:
        m = weights.detail.get("metrics") or {}
        print(f"trained {args.train_epochs} epoch{'s' if args.train_epochs != 1 else ''}: validation accuracy "
              f"{m.get(VAL_ACCURACY, float('nan')):.4g}, validation loss {m.get(VAL_LOSS, float('nan')):.4g}",
              file=sys.stderr)
    return 0


def _weights(args, spec, row, attrs: dict, num_classes: int):
    """The export's weights: retrained with --train-epochs, else those the search kept, else fresh."""
    from evaluation.deploy.export_trial import kept_weights, random_weights, retrain, study_labels
    from evaluation.evaluator import SupernetProxy, study_proxy, training_budget

    config = attrs.get("config") or {}
    seed = int(config.get("seed") or 0)
    labels = study_labels(attrs, num_classes)
    try:
        proxy = study_proxy(config)  # the study's evaluator, as the search parsed it
    except ValueError as exc:
        raise UsageError(f"the study's stored config: {' '.join(str(exc).split())}") from None
    if isinstance(proxy, SupernetProxy):  # inherited weights (--train-epochs: fine-tuned), docs/oneshot.md
        from evaluation.oneshot.export import supernet_weights

        try:
            budget = None if args.train_epochs is None else training_budget(proxy, args.train_epochs)
            chosen = supernet_weights(spec, proxy.supernet, attrs, num_classes, seed, budget,
                                      progress=lambda line: print(line, file=sys.stderr))
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(f"trial {int(row['number'])}: {' '.join(str(exc).split())}") from None
        return chosen if chosen.labels else dataclasses.replace(chosen, labels=labels)
    if args.train_epochs is None:
        metrics = {k: row[k] for k in (VAL_ACCURACY, VAL_LOSS, "epochs") if k in row and row[k] == row[k]}
        try:
            kept = kept_weights(spec, attrs.get("folder"), row.get("weights"), num_classes, seed, metrics)
        except ValueError as exc:
            raise UsageError(f"trial {int(row['number'])}: {exc}") from None
        chosen = kept or random_weights(spec, num_classes, seed)
        return dataclasses.replace(chosen, labels=labels)
    from ..config import dataset_for

    data_config = dataset_for(config.get("dataset") or {"kind": "synthetic"}, spec)
    try:
        weights = retrain(spec, data_config, training_budget(proxy, args.train_epochs), num_classes, seed,
                          progress=lambda line: print(line, file=sys.stderr))
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(f"--train-epochs: the study's {' '.join(str(exc).split())}") from None
    return weights if weights.labels else dataclasses.replace(weights, labels=labels)


def _calibration(attrs: dict, spec):
    """Clips of the study's dataset (at the spec's sizes) that an int8 export calibrates on."""
    from evaluation.deploy.quantize import calibration_clips

    from ..config import dataset_for

    config = attrs.get("config") or {}
    try:
        return calibration_clips(dataset_for(config.get("dataset") or {"kind": "synthetic"}, spec))
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(f"--format tflite-int8: the study's {' '.join(str(exc).split())}") from None
