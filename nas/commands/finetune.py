"""`movinas finetune MODEL DATA --out DIR`: fine-tune an imported or exported model on your videos.

MODEL is an export folder (`movinas import`, `export` or `finetune` wrote it) or a released MoViNet
checkpoint / SavedModel. DATA is a folder of class sub-folders, a CSV (`path,label` rows, or a Kinetics CSV
with `label,youtube_id,time_start,time_end,split`), a UCF101-style split list (.txt), a YAML file with a
`dataset:` mapping (any `kind` of docs/datasets.md, HMDB51 included), or `synthetic` / `graded` (the
built-in motion data). The result is an export folder with the data's classes (labels.txt), a model card
and finetune.json (history and validation report), written beside --out and moved into place at the end.
A checkpoint beside --out after every epoch lets a killed run resume: run the same command again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

from ..errors import UsageError
from .flags import flag, input_flags, out_folder, staged

EXAMPLES = """examples:
  movinas finetune a0/ videos/ --out a0-mine/                        (class sub-folders)
  movinas finetune a0-stream/ ucfTrainTestlist/trainlist01.txt --val ucfTrainTestlist/testlist01.txt \\
      --root UCF-101 --class-index ucfTrainTestlist/classInd.txt --train last-stages --out a0-ucf/
  movinas finetune a0/ kinetics/train.csv --template "{split}/{label}/{youtube_id}.mp4" --out a0-k/
  movinas finetune a0/ data.yaml --epochs 10 --format yaml,keras,tflite --out a0-phone/
  movinas predict a0-mine/ clip.mp4"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "finetune",
        help="fine-tune an imported or exported model on a video dataset; writes an export folder",
        description=(
            "Start from MODEL's weights, give it a new classifier for DATA's classes when they differ, and "
            "train (the head, the last stages or everything) with random crops and flips and a cosine "
            "schedule with warm-up, in mixed precision on a GPU. Checkpoints after every epoch: rerun the "
            "same command to resume a killed run. Writes an export folder (spec.yaml, model.keras, "
            "labels.txt, model_card.md, finetune.json; stream.keras for stream models)."),
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="export folder, or a released MoViNet checkpoint / SavedModel")
    p.add_argument("data", metavar="DATA",
                   help="class folders, CSV, split list (.txt), dataset YAML, or synthetic / graded")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder, new or empty")
    p.add_argument("--epochs", type=int, default=5, help="passes over the training clips (default 5)")
    p.add_argument("--train", choices=("head", "last-stages", "all"), default="all",
                   help="what trains: the classifier, the last --last-stages stages and the head, or all (default)")
    p.add_argument("--last-stages", type=int, default=2, metavar="N", help="stages --train last-stages trains")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--learning-rate", type=float, default=1e-3, help="peak learning rate (default 1e-3)")
    p.add_argument("--frames", type=int, default=8, help="frames per training clip (default 8)")
    p.add_argument("--resolution", type=int, default=None, help="clip size in pixels (default: the model's)")
    p.add_argument("--fps", type=float, default=5.0, help="sampling rate of the clips (default 5, as MoViNet)")
    p.add_argument("--val", default=None, metavar="LIST", help="validation split list (with a .txt DATA)")
    p.add_argument("--root", default=None, metavar="DIR", help="folder the list or CSV paths start from")
    p.add_argument("--class-index", default=None, metavar="FILE", help="class-index file of a split list")
    p.add_argument("--template", default=None, help="path template of a Kinetics CSV's clips")
    p.add_argument("--val-fraction", type=float, default=0.2, help="validation share when DATA has no split")
    p.add_argument("--no-augment", action="store_true", help="no random crops or flips")
    p.add_argument("--no-flip", action="store_true", help="random crops only (labels that change in a mirror)")
    p.add_argument("--format", default="yaml,keras", metavar="F,...",
                   help="export formats as for `movinas export` (default yaml,keras); tflite-int8 is "
                        "calibrated on validation clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--restart", action="store_true", help="discard a checkpoint left by an earlier run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .export import parse_formats

    formats = parse_formats(args.format)
    out = out_folder(args.out)
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: exists and is not empty; give a new or empty folder")
    for name in ("epochs", "last_stages", "batch_size"):
        flag(getattr(args, name), "--" + name.replace("_", "-"))
    input_flags(args)  # --frames and --resolution within a spec's bounds
    config = _config(args)
    pretrained = _pretrained(args.model)
    resolution = args.resolution or int(pretrained.manifest.get("resolution") or pretrained.spec.resolution)
    dataset = load_data(args, resolution)
    if config.flip and dataset.name.startswith(("synthetic", "graded-")):  # left and right are its classes
        config = dataclasses.replace(config, flip=False)
        print("the built-in motion data tells left from right: no flips", file=sys.stderr)
    print(f"model {pretrained.source}: {pretrained.spec.name}, {pretrained.num_classes} classes; data {dataset!r}"
          + (f", {len(dataset.skipped)} unreadable files skipped" if dataset.skipped else ""), file=sys.stderr)
    from evaluation.deploy.finetune import finetune

    checkpoint = out.parent / f".{out.name}.finetune.npz"
    if args.restart:
        checkpoint.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*"):  # an export a killed run left half-written beside --out
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    result = finetune(pretrained, dataset, config, checkpoint, report=lambda line: print(line, file=sys.stderr))
    paths = write_export(result, pretrained, dataset, out, formats)
    checkpoint.unlink(missing_ok=True)
    v = result.validation
    print(f"validation: accuracy {v['val_accuracy']:.3f}, loss {v['val_loss']:.4f} on {v['clips']} clips",
          file=sys.stderr)
    for key, path in paths.items():
        print(f"{key:18s} {path}")
    return 0


def _config(args):
    from evaluation.deploy.finetune import FinetuneConfig

    try:
        return FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                              train=args.train, last_stages=args.last_stages, augment=not args.no_augment,
                              flip=not args.no_flip, seed=args.seed)
    except ValueError as exc:
        raise UsageError(f"--{str(exc).replace('_', '-')}") from None


def _pretrained(model: str):
    from evaluation.deploy.pretrained import load_pretrained

    if not Path(model).exists():
        raise UsageError(f"MODEL {model}: no such export folder or checkpoint")
    try:
        return load_pretrained(model)
    except ValueError as exc:
        raise UsageError(f"MODEL {exc}") from None


def load_data(args: argparse.Namespace, resolution: int):
    """The `VideoDataset` DATA names (see the module docstring), clips of --frames at `resolution`."""
    from evaluation.datasets import load_dataset

    sizes = {"frames": args.frames, "resolution": resolution}
    config, base = data_config(args, sizes)
    try:
        return load_dataset(config, where="DATA", base_dir=base)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def data_config(args: argparse.Namespace, sizes: dict) -> tuple[dict, Path | None]:
    """(dataset mapping, base folder of its relative paths) for DATA and the data flags."""
    data, path = args.data, Path(args.data)
    sampling = {**sizes, "fps": args.fps, "val_fraction": args.val_fraction, "seed": args.seed}
    misplaced = [f for f in ("val", "class_index") if getattr(args, f) is not None and path.suffix.lower() != ".txt"]
    misplaced += ["template"] if args.template is not None and path.suffix.lower() != ".csv" else []
    if misplaced:
        kind = ".csv" if misplaced[0] == "template" else ".txt split list"
        raise UsageError(f"--{misplaced[0].replace('_', '-')}: only with a {kind} DATA; DATA {data} is not one")
    if data in ("synthetic", "graded") and not path.exists():
        return {"kind": data, **sizes, "seed": args.seed}, None
    if not path.exists():
        raise UsageError(f"DATA {data}: no such folder or file (or give synthetic / graded)")
    if path.suffix.lower() in (".yaml", ".yml"):
        return _yaml_config(path, sizes), path.parent
    if path.is_dir():
        return {"kind": "video_folder", "source": str(path), **sampling}, None
    suffix = path.suffix.lower()
    if suffix == ".csv" and _is_kinetics(path):
        extra = {"template": args.template} if args.template else {}
        return {"kind": "kinetics_csv", "source": str(path), "root": args.root, **extra, **sampling}, None
    if suffix == ".csv":
        return {"kind": "video_folder", "source": str(path), **sampling}, None
    if suffix == ".txt":
        return {"kind": "split_list", "train": str(path), "val": args.val, "root": args.root,
                "classes": args.class_index, **sampling}, None
    raise UsageError(f"DATA {data}: not a folder, .csv, .txt split list or .yaml dataset (or synthetic / graded)")


def _yaml_config(path: Path, sizes: dict) -> dict:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UsageError(f"DATA {path}: not readable YAML ({' '.join(str(exc).split())[:200]})") from None
    config = doc.get("dataset", doc) if isinstance(doc, dict) else doc
    if not isinstance(config, dict) or "kind" not in config:
        raise UsageError(f"DATA {path}: expected a dataset mapping with a kind (or a dataset: section)")
    return {**config, **{k: v for k, v in sizes.items() if config.get(k) in (None, "spec")}}


def _is_kinetics(path: Path) -> bool:
    from evaluation.datasets.lists import KINETICS_COLUMNS

    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            header = {c.strip().lower() for c in f.readline().split(",")}
    except OSError:
        return False
    return set(KINETICS_COLUMNS) <= header


def write_export(result, pretrained, dataset, out: Path, formats) -> dict[str, Path]:
    """The export folder of the fine-tuned model, written beside `out` and renamed into place."""
    from evaluation.deploy.export import export_model

    representative = dataset.val.x[:16] if "tflite-int8" in formats else None
    with staged(out) as stage:
        stream = bool(pretrained.manifest.get("stream", result.spec.causal))  # as the model came
        paths = export_model(result.spec, result.model, stage, formats, stream=stream,
                             labels=list(result.class_names), representative=representative)
        record = {"source": pretrained.source, "data": repr(dataset), "skipped": len(dataset.skipped),
                  "history": result.history, "validation": result.validation}
        (stage / "finetune.json").write_text(json.dumps(record, indent=2) + "\n")
        (stage / "model_card.md").write_text(model_card(result, pretrained, dataset, paths))
    extra = {"finetune": stage / "finetune.json", "model_card": stage / "model_card.md"}
    return {key: out / Path(p).name for key, p in {**paths, **extra}.items()}


def model_card(result, pretrained, dataset, paths: dict) -> str:
    """Markdown: the model started from, the data, the training, the validation report, the files."""
    v, spec = result.validation, result.spec
    last = result.history[-1] if result.history else {}
    lines = [f"# Model card: {spec.name}, fine-tuned", "",
             f"Started from `{pretrained.source}` ({pretrained.spec.name}, {pretrained.num_classes} classes)"
             + (", with a new classifier" if result.head_replaced else "") + f"; fine-tuned on {dataset!r} "
             f"for {len(result.history)} epochs ({result.trainable_params:,} trainable parameters).", "",
             f"- input: RGB in [0, 1], {spec.frames} frames at {spec.resolution}×{spec.resolution}",
             f"- classes: {len(result.class_names)} (labels.txt)",
             f"- last epoch: training loss {last.get('loss', float('nan')):.4f}, "
             f"accuracy {last.get('accuracy', float('nan')):.3f}",
             f"- validation: accuracy {v['val_accuracy']:.3f}, loss {v['val_loss']:.4f} on {v['clips']} clips"
             + (f", top-5 {v['val_top5_accuracy']:.3f}" if "val_top5_accuracy" in v else ""),
             "", "| class | clips | accuracy |", "|---|---|---|"]
    lines += [f"| {c['class']} | {c['clips']} | {'' if c['accuracy'] is None else format(c['accuracy'], '.3f')} |"
              for c in v["per_class"]]
    lines += ["", "## Files", ""] + [f"- `{Path(p).name}` ({key})" for key, p in paths.items()]
    lines += ["", "Run it: `movinas predict THIS_FOLDER video.mp4`", "More: docs/pretrained.md", ""]
    return "\n".join(lines)
