"""`movinas cost SPEC`: analytic costs of a preset or a spec YAML, per block and in total."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from search_space import PRESETS, ArchSpec, Cost, SpecError, estimate_cost, preset_from_name
from search_space import validate as v
from search_space.spec import MAX_CHANNELS, NUM_CLASSES

from ..errors import UsageError
from .flags import flag, input_flags

PRESET_NAMES = (*PRESETS, *(f"{p}-stream" for p in PRESETS))


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "cost",
        help="params, MACs, FLOPs, activation memory and stream state of a preset or spec YAML",
        description=(
            "Analytic costs of one architecture, per block and in total: parameters (exactly Keras' "
            "count_params), multiply-accumulates of every conv and dense layer, FLOPs (2 x MACs), peak "
            "activation memory (float32, batch 1), stream-state size and element-wise work. "
            "No TensorFlow is loaded."
        ),
        epilog="examples: movinas cost a0 | movinas cost a2-stream --frames 1 | movinas cost my_spec.yaml --json",
    )
    p.add_argument("spec", metavar="SPEC",
                   help=f"a preset ({', '.join(PRESET_NAMES)}) or the path of a spec YAML file")
    p.add_argument("--frames", type=int, default=None, help="input frames (default: the spec's own)")
    p.add_argument("--resolution", type=int, default=None,
                   help="input height and width in pixels (default: the spec's own)")
    p.add_argument("--classes", type=int, default=NUM_CLASSES, help=f"classifier outputs (default: {NUM_CLASSES})")
    p.add_argument("--profile", default=None, metavar="PROFILE.json",
                   help="a latency profile (movinas latency profile): adds predicted ms per block and in total "
                        "(per frame for a stream profile, at --resolution)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.set_defaults(func=run)


def load_spec(text: str) -> ArchSpec:
    """A preset name (`a0`, `a2-stream`, `movinet-a3-stream`) or the path of a spec YAML file."""
    path = Path(text)
    if path.suffix.lower() not in (".yaml", ".yml") and "/" not in text:
        try:
            return preset_from_name(text)
        except SpecError:
            if not (v.is_file(text) or v.is_dir(path)):
                raise UsageError(
                    f"SPEC {v.quote(text)}: not a preset nor a YAML file; presets: {', '.join(PRESET_NAMES)}"
                ) from None
    try:
        return ArchSpec.from_yaml(path)
    except SpecError as exc:  # YAML parser messages span lines; the CLI prints one
        raise UsageError(v.one_line(str(exc), 500)) from None


def run(args: argparse.Namespace) -> int:
    input_flags(args)
    flag(args.classes, "--classes", 1, MAX_CHANNELS)
    spec = load_spec(args.spec)
    frames = args.frames or spec.frames
    resolution = args.resolution or spec.resolution
    cost = estimate_cost(spec, frames, resolution, num_classes=args.classes, breakdown=True)
    latency = predicted_latency(spec, args.profile, frames, resolution, args.classes) if args.profile else None
    if args.json:
        out = {"spec": spec.name, "frames": frames, "resolution": resolution, "classes": args.classes}
        out.update(cost.as_dict())
        for b in out["blocks"]:
            b["out_shape"] = list(b["out_shape"])
        if latency is not None:
            out["latency_ms"] = sum(latency)
            out["latency_profile"] = args.profile
            for b, ms in zip(out["blocks"], latency):
                b["latency_ms"] = ms
        print(json.dumps(out, indent=2))
    else:
        print(format_table(spec, cost, frames, resolution, args.classes, latency))
        if latency is not None:
            print(f"{'latency'.ljust(16)}  {sum(latency):,.3f} ms per {_unit(args.profile)} predicted "
                  f"(profile {args.profile})")
    return 0


def predicted_latency(spec: ArchSpec, path: str, frames: int, resolution: int, classes: int) -> list[float]:
    """ms per `Cost.blocks` entry predicted from the profile at `path` (one line on a bad profile)."""
    from search_space.latency import ProfileError, latency_breakdown, read_profile

    try:
        return latency_breakdown(spec, read_profile(path), frames, resolution, classes)
    except ProfileError as exc:
        raise UsageError(f"--profile: {exc}") from None


def _unit(path: str) -> str:
    from search_space.latency import read_profile

    return "frame" if read_profile(path).mode == "stream" else "clip"


def layer_labels(spec: ArchSpec, classes: int) -> list[str]:
    """One short description per `Cost.blocks` entry, in the notation of the preset tables."""

    def triple(v) -> str:
        return "x".join(map(str, v))

    def conv(filters: int, kernel, strides) -> str:
        s = "" if tuple(strides) == (1, 1, 1) else f"/s{triple(strides)}"
        return f"{filters}/{triple(kernel)}{s}"

    labels = [conv(spec.stem.filters, spec.stem.kernel, spec.stem.strides)]
    labels += [conv(b.expand, b.kernel, b.strides) for stage in spec.stages for b in stage.blocks]
    labels += [f"1x1x1 to {spec.head.filters}, pool", f"{spec.head.hidden} -> {classes}"]
    return labels


def format_table(spec: ArchSpec, cost: Cost, frames: int, resolution: int, classes: int,
                 latency: list[float] | None = None) -> str:
    """The human report: one row per block (with predicted ms when `latency` is given), then the totals."""
    head = ("block", "layer (e/kernel/stride)", "output t×h×w×c", "params", "MMACs", "peak act MB", "state KB")
    extra = ("latency ms",) if latency is not None else ()
    rows = [head + extra]
    for i, (b, label) in enumerate(zip(cost.blocks, layer_labels(spec, classes))):
        rows.append((b.name, label, "×".join(map(str, b.out_shape)), f"{b.params:,}", f"{b.macs / 1e6:,.1f}",
                     f"{b.activation_bytes / 1e6:,.2f}", f"{b.state_bytes / 1e3:,.1f}",
                     *((f"{latency[i]:,.3f}",) if latency is not None else ())))
    head = rows[0]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    right = (False, False, False, True, True, True, True, True)

    def line(r) -> str:
        return "  ".join(c.rjust(w) if ra else c.ljust(w) for c, w, ra in zip(r, widths, right)).rstrip()

    out = [
        f"{spec.name}: {frames} frames × {resolution}×{resolution} pixels, {classes} classes, "
        f"conv {spec.conv_type}, SE {spec.se_type}, {'causal' if spec.causal else 'not causal'}",
        "",
        line(head),
        "  ".join("-" * w for w in widths),
        *(line(r) for r in rows[1:]),
        "",
    ]
    if spec.causal:
        counters = cost.state_bytes // 4 - cost.state_floats
        state = (f"{cost.state_bytes / 1e6:,.2f} MB ({cost.state_floats:,} floats and {counters} frame "
                 f"counters in {cost.state_tensors} tensors)")
    else:
        state = "0 MB (not causal: no stream buffers)"
    totals = [
        ("params", f"{cost.params:,}"),
        ("MACs", f"{cost.macs / 1e9:,.3f} G ({cost.macs:,}; convs and dense layers, BN folded)"),
        ("FLOPs", f"{cost.flops / 1e9:,.3f} G (2 × MACs)"),
        ("element-wise ops", f"{cost.elementwise / 1e9:,.3f} G (activations, SE pool and gating, adds)"),
        ("peak activations", f"{cost.activation_bytes / 1e6:,.2f} MB (float32, batch 1)"),
        ("stream state", state),
    ]
    width = max(len(k) for k, _ in totals)
    out += [f"{k.ljust(width)}  {v}" for k, v in totals]
    return "\n".join(out)
