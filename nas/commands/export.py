"""`movinas export RESULTS --trial N | --best RULE`: a searched architecture as deployable files.

Picks a COMPLETE trial, rebuilds its `ArchSpec` from the storage, optionally retrains it from
scratch on the study's dataset, and writes it with `evaluation.export.export_model` plus a
`model_card.md` saying what it costs, how it scored and how it was found.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from ..errors import UsageError

RULE_HELP = (
    "RULE: [max|min] COLUMN [under|with CONDITION[, CONDITION...]], CONDITION: COLUMN OP NUMBER[UNIT] with OP "
    "one of <= >= < > == != and UNIT one of K M G T KB MB GB KiB MiB GiB. The direction defaults to the study's "
    "for its objectives, else max for accuracies and zero-cost scores and min otherwise. Only COMPLETE trials "
    "qualify; ties go to the lower trial number."
)
EXAMPLES = """examples:
  movinas export results/demo --best "val_accuracy under flops<=1e9" --out exported/
  movinas export results/demo --best "min params with val_accuracy>=0.5" --format yaml,tflite --out small/
  movinas export results/demo --trial 7 --train-epochs 10 --out trial7/
  movinas export results/demo --trial 7 --stream --out trial7-stream/      (causal architectures)"""


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
                   help="comma-separated: yaml, keras, weights, savedmodel, tflite (default: yaml,keras,savedmodel,tflite)")
    p.add_argument("--stream", action="store_true", help="also write the stream model (causal architectures only)")
    p.add_argument("--train-epochs", type=int, default=None, metavar="E",
                   help="retrain from scratch for E epochs on the study's dataset with its proxy settings first")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.set_defaults(func=run)


def pick_trial(df, trial: int | None, rule: str | None):
    """The row to export; UsageError when the trial is missing, not COMPLETE, or the rule is bad."""
    from evaluation.pareto import best_trial

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
    from evaluation.export import ALL_FORMATS

    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in ALL_FORMATS]
    if bad or not formats:
        raise UsageError(f"--format: {', '.join(bad) or 'empty'}, must be a comma-separated list of "
                         f"{', '.join(ALL_FORMATS)}")
    return formats


def run(args: argparse.Namespace) -> int:
    from evaluation.results import ResultsError, load_results

    formats = parse_formats(args.format)
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
    if args.stream and not spec.causal:
        raise UsageError(f"--stream: trial {number} is not causal (causal: false); the stream model needs a "
                         "causal architecture, search a space with causal: true")
    attrs = df.attrs
    num_classes = int(attrs.get("num_classes") or 600)
    print(f"trial {number} of study {attrs['study']} ({how}): {spec.num_layers} blocks, "
          f"{row['flops'] / 1e6:.3g} MFLOPs, {int(row['params']):,} params", file=sys.stderr)
    training, labels, model = _weights(args, spec, attrs, num_classes)
    from evaluation.export import export_model

    out = Path(args.out)
    paths = export_model(spec.replace(name=f"{attrs['study']}-{number}"), model, out, formats,
                         stream=args.stream, labels=labels, num_classes=num_classes)
    card = out / "model_card.md"
    card.write_text(model_card(row, attrs, how, training, paths, num_classes))
    for key, path in paths.items():
        print(f"{key:18s} {path}")
    print(f"{'model_card':18s} {card}")
    if training is None:
        print("WARNING: the exported weights are RANDOMLY INITIALIZED (not trained); pass --train-epochs E to "
              "train them on the study's dataset first", file=sys.stderr)
    return 0


def _weights(args, spec, attrs: dict, num_classes: int):
    """(training record or None, labels or None, Keras model) for the export."""
    import keras

    config = attrs.get("config") or {}
    seed = int(config.get("seed") or 0)
    if args.train_epochs is None:
        from search_space import build_model

        keras.utils.set_random_seed(seed)
        return None, None, build_model(spec, num_classes)
    from evaluation.datasets import load_dataset
    from evaluation.proxy import Budget, train_proxy

    from ..config import dataset_for

    data_config = dataset_for(config.get("dataset") or {"kind": "synthetic"}, spec)
    try:
        dataset = load_dataset(data_config, base_dir=Path.cwd())
        proxy = dict(config.get("proxy") or {})
        proxy.update(epochs=args.train_epochs, steps=None, seconds=None)
        budget = Budget.from_dict(proxy, path="proxy")
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(f"--train-epochs: the study's {' '.join(str(exc).split())}") from None
    if dataset.num_classes != num_classes:
        raise UsageError(f"--train-epochs: the dataset has {dataset.num_classes} classes, the study costed "
                         f"{num_classes}")
    print(f"training from scratch for {args.train_epochs} epochs on {dataset!r} ...", file=sys.stderr)
    result = train_proxy(spec, dataset, budget, seed=seed, num_classes=num_classes, return_model=True)
    if result.status == "failed":
        raise UsageError(f"--train-epochs: training failed ({result.reason})")
    training = {"epochs": args.train_epochs, "dataset": data_config, "budget": budget.to_dict(), "seed": seed,
                "metrics": dict(result.metrics)}
    labels = list(dataset.class_names) if len(dataset.class_names) == num_classes else None
    return training, labels, result.model


# ---------------------------------------------------------------------------------------------
# model card


def model_card(row, attrs: dict, how: str, training: dict | None, paths: dict, num_classes: int) -> str:
    """Markdown: weights status, provenance, architecture, costs, search metrics, files."""
    import yaml

    from evaluation.report import format_value

    spec, number = row["spec"], int(row["number"])
    config = attrs.get("config") or {}
    lines = [f"# Model card: {attrs['study']}-{number}", ""]
    if training is None:
        lines += ["> **WARNING: the weights in these files are RANDOMLY INITIALIZED, not trained.** They are fit for "
                  "checking size, speed and conversion, not for predictions. Re-export with `--train-epochs E` to "
                  "train on the study's dataset, or train the spec yourself.", ""]
    else:
        m = training["metrics"]
        lines += [f"Weights: trained from scratch for {training['epochs']} epochs on "
                  f"`{yaml.safe_dump(training['dataset'], default_flow_style=True, width=1000).strip()}` (seed {training['seed']}): "
                  f"validation accuracy {m.get('val_accuracy', float('nan')):.4g}, "
                  f"validation loss {m.get('val_loss', float('nan')):.4g}.", ""]
    lines += ["## How it was found", "",
              f"- study `{attrs['study']}`, storage `{attrs['storage']}`, trial {number} (selected by `{how}`)",
              f"- objectives: {', '.join(o['direction'] + ' ' + o['name'] for o in attrs.get('objectives', []))}",
              f"- constraints: {', '.join(c['text'] for c in attrs.get('constraints', [])) or 'none'}",
              f"- sampler: {_inline(config.get('sampler', 'tpe'))}, seed {config.get('seed', 0)}",
              f"- dataset: {_inline(config.get('dataset', {'kind': 'synthetic'}))}",
              f"- proxy training budget: {_inline(config.get('proxy', {}))}",
              f"- exported {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')} by `movinas export`", ""]
    lines += ["## Architecture", "",
              f"{spec.num_layers} blocks in {len(spec.stages)} stages; {spec.conv_type} conv, SE {spec.se_type}, "
              f"{spec.activation}{', causal' if spec.causal else ''}; input {spec.frames} frames × "
              f"{spec.resolution}² RGB in [0, 1]; {num_classes} classes.", "",
              "| stage | blocks | filters | kernels (t×h×w) | expansion widths | first stride |", "|---|---|---|---|---|---|"]
    for i, stage in enumerate(spec.stages, 1):
        kernels = ", ".join("×".join(map(str, b.kernel)) for b in stage.blocks)
        expands = ", ".join(str(b.expand) for b in stage.blocks)
        lines.append(f"| {i} | {len(stage.blocks)} | {stage.filters} | {kernels} | {expands} | "
                     f"{'×'.join(map(str, stage.blocks[0].strides))} |")
    lines += ["", f"Stem {spec.stem.filters} filters; head {spec.head.filters} filters, classifier hidden "
              f"{spec.head.hidden}. The full spec is `spec.yaml` (`ArchSpec.from_yaml`).", ""]
    lines += [f"## Costs (analytic, {spec.frames}×{spec.resolution}², batch 1)", "", "| cost | value |", "|---|---|"]
    for col in ("params", "macs", "flops", "activation_bytes", "state_bytes"):
        if col in row and row[col] == row[col]:
            lines.append(f"| {col} | {format_value(col, row[col])} ({int(row[col]):,}) |")
    metrics = [c for c in ("val_accuracy", "val_loss", "train_accuracy", "train_loss", "epochs", "latency_ms",
                           "grad_norm", "snip", "synflow", "naswot") if c in row and row[c] == row[c]]
    if metrics:
        lines += ["", "## Metrics measured during the search (proxy training, not these weights)", "",
                  "| metric | value |", "|---|---|"] + [f"| {c} | {format_value(c, row[c])} |" for c in metrics]
    lines += ["", "## Files", ""] + [f"- `{Path(p).name}` ({key})" for key, p in paths.items()]
    lines += ["", "Run it: `movinas predict THIS_FOLDER video.mp4`" + (" (add `--stream` for the stream model)"
                                                                      if "stream_tflite" in paths or
                                                                      "stream_keras" in paths else ""), ""]
    return "\n".join(lines)


def _inline(value) -> str:
    import yaml

    if isinstance(value, str):
        return value
    return "`" + yaml.safe_dump(value, default_flow_style=True, width=1000).strip() + "`"
