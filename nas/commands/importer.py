"""`movinas import PATH [--preset a0] [--stream] [--out DIR]`: the released MoViNet weights as an export folder.

PATH is a TF Model Garden checkpoint of the classifier (folder, `ckpt-1` prefix or its `.index`) or a
TF Hub / Kaggle SavedModel of MoViNet. The folder written is the one `movinas export` writes (spec.yaml,
model.keras, export.json, stream files for stream models, labels.txt for Kinetics-600 models) plus
model_card.md; `movinas predict` and `movinas export`'s readers take it. It is written beside --out and
renamed into place at the end, so a refused or interrupted import leaves nothing in --out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from ..errors import UsageError
from .flags import out_folder, staged

EXAMPLES = """examples:
  movinas import movinet_a0_base/ --out a0/                     (a Model Garden checkpoint folder)
  movinas import movinet_a2_stream/ckpt-1 --preset a2 --stream --out a2-stream/
  movinas import movinet-a0-stream-kinetics-600-classification/ --out a0-stream/   (a TF Hub SavedModel)
  movinas predict a0/ video.mp4 --top-k 5"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import",
        help="import released MoViNet weights (Model Garden checkpoint or TF Hub SavedModel) as an export folder",
        description=(
            "Read the released MoViNet A0-A5 weights, base or stream, from a TF Model Garden checkpoint or a TF "
            "Hub / Kaggle SavedModel, and write them as an export folder (spec.yaml, model.keras, export.json, "
            "model_card.md; stream.keras too for stream models) that predict reads. The "
            "preset and variant are read from the checkpoint when not given. A checkpoint that does not match "
            "(another preset, truncated, not MoViNet) is refused, naming the first offending variable."),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="checkpoint folder, checkpoint prefix (ckpt-1), or SavedModel folder")
    p.add_argument("--preset", choices=("a0", "a1", "a2", "a3", "a4", "a5"), default=None,
                   help="MoViNet preset (default: read from the checkpoint)")
    p.add_argument("--stream", action="store_true", default=None,
                   help="the checkpoint is a stream model (default: read from the checkpoint)")
    p.add_argument("--format", default="yaml,keras", metavar="F,...",
                   help="comma-separated formats as for `movinas export`: yaml, keras, weights, savedmodel, tflite "
                        "(default: yaml,keras)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder, new or empty (default: ./movinet-PRESET[-stream])")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .export import parse_formats

    formats = parse_formats(args.format)
    if "tflite-int8" in formats:
        raise UsageError("--format: tflite-int8 needs calibration clips of your videos; import, then call "
                         "evaluation.deploy.export.export_model(..., formats=('tflite-int8',), representative=clips)")
    if args.out is not None:
        _check_out(out_folder(args.out))
    if not Path(args.path).exists():
        raise UsageError(f"PATH {args.path}: no such file or folder")
    from search_space.official import OfficialError, load_official

    try:
        imported = load_official(args.path, args.preset, args.stream)
    except OfficialError as exc:
        raise UsageError(str(exc)) from None
    spec = imported.spec
    out = Path(args.out) if args.out is not None else Path(spec.name)
    _check_out(out_folder(out))
    print(f"{args.path}: {spec.name}, {imported.num_classes} classes ({imported.source})", file=sys.stderr)
    paths = write_folder(imported, out, formats, str(args.path))
    for key, path in paths.items():
        print(f"{key:18s} {path}")
    return 0


def _check_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"--out {out}: exists and is not empty; give a new or empty folder")


def write_folder(imported, out: Path, formats, source: str) -> dict[str, Path]:
    """Export `imported` into a temporary folder beside `out`, add the model card, then move it to `out`."""
    from evaluation.deploy.export import ExportOptions, export_model
    from evaluation.deploy.inference import LABEL_SETS

    labels = None
    if imported.num_classes == 600:
        labels = LABEL_SETS["kinetics600"].read_text().split("\n")[:600]
    with staged(out) as stage:
        paths = export_model(imported.spec, imported.model, stage, formats, stream=imported.spec.causal,
                             labels=labels, options=ExportOptions(num_classes=imported.num_classes))
        (stage / "model_card.md").write_text(model_card(imported, source, paths))
    return {key: out / Path(p).name for key, p in {**paths, "model_card": stage / "model_card.md"}.items()}


def model_card(imported, source: str, paths: dict) -> str:
    """Markdown: where the weights came from, the architecture, its costs, the files."""
    from search_space.cost import estimate_cost

    spec = imported.spec
    cost = estimate_cost(spec, spec.frames, spec.resolution, imported.num_classes)
    variant = ("stream (causal, 2+1D, positional encoding)" if spec.positional_encoding else "stream (causal, 2+1D)") \
        if spec.causal else "base"
    lines = [f"# Model card: {spec.name}", "",
             f"Weights: the released MoViNet {spec.name.split('-')[1].upper()} {variant} weights, imported from "
             f"`{source}` ({imported.source}, {imported.path.name}) by `movinas import` on "
             f"{_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}. Every variable of the official classifier was "
             "matched by name and shape; none was left at its initial value.", "",
             f"- classes: {imported.num_classes}" + (" (Kinetics-600, labels.txt)" if imported.num_classes == 600
                                                      else ""),
             f"- input: RGB in [0, 1], designed for {spec.frames} frames at {spec.resolution}×{spec.resolution}",
             f"- {spec.num_layers} blocks in {len(spec.stages)} stages; conv {spec.conv_type}, SE {spec.se_type}, "
             f"activation {spec.activation}",
             f"- costs at that input: {cost.params:,} parameters, {cost.flops / 1e9:.2f} GFLOPs"
             + (f", stream state {cost.state_bytes / 1e6:.2f} MB" if spec.causal else ""), "",
             "## Files", ""]
    lines += [f"- `{Path(p).name}` ({key})" for key, p in paths.items()]
    lines += ["", "Run it: `movinas predict THIS_FOLDER video.mp4`" + (" (add `--stream` to stream frame by frame)"
                                                                      if spec.causal else ""),
              "More: docs/pretrained.md", ""]
    return "\n".join(lines)
