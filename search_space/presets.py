"""MoViNet A0–A5 as data: the block tables of the paper / TF Model Garden, base and stream.

Each stage is `(out_filters, "expand/TxHxW[/sTxHxW] ...")`, the notation of
`shared/reference/movinet.md`.
"""

from __future__ import annotations

from . import validate as v
from .spec import ArchSpec, Block, Head, SpecError, Stage, Stem

# name: (stem filters, stages, head filters, base dropout, stream dropout, paper frames, resolution)
_TABLES: dict[str, tuple] = {
    "a0": (8, [
        (8, "24/1x5x5/s1x2x2"),
        (32, "80/3x3x3/s1x2x2 80/3x3x3 80/3x3x3"),
        (56, "184/5x3x3/s1x2x2 112/3x3x3 184/3x3x3"),
        (56, "184/5x3x3 184/3x3x3 184/3x3x3 184/3x3x3"),
        (104, "384/5x3x3/s1x2x2 280/1x5x5 280/1x5x5 344/1x5x5"),
    ], 480, 0.2, 0.2, 50, 172),
    "a1": (16, [
        (16, "40/1x5x5/s1x2x2 40/3x3x3"),
        (40, "96/3x3x3/s1x2x2 120/3x3x3 96/3x3x3 96/3x3x3"),
        (64, "216/5x3x3/s1x2x2 128/3x3x3 216/3x3x3 168/3x3x3 216/3x3x3"),
        (64, "216/5x3x3 216/3x3x3 216/3x3x3 128/3x3x3 128/1x5x5 216/3x3x3"),
        (136, "456/5x3x3/s1x2x2 360/1x5x5 360/1x5x5 360/1x5x5 456/1x5x5 456/3x3x3 544/1x3x3"),
    ], 600, 0.5, 0.2, 50, 172),
    "a2": (16, [
        (16, "40/1x5x5/s1x2x2 40/3x3x3 64/3x3x3"),
        (40, "96/3x3x3/s1x2x2 120/3x3x3 96/3x3x3 96/3x3x3 120/3x3x3"),
        (72, "240/5x3x3/s1x2x2 160/3x3x3 240/3x3x3 192/3x3x3 240/3x3x3"),
        (72, "240/5x3x3 240/3x3x3 240/3x3x3 240/3x3x3 144/1x5x5 240/3x3x3"),
        (144, "480/5x3x3/s1x2x2 384/1x5x5 384/1x5x5 480/1x5x5 480/1x5x5 480/3x3x3 576/1x3x3"),
    ], 640, 0.5, 0.5, 50, 224),
    "a3": (16, [
        (16, "40/1x5x5/s1x2x2 40/3x3x3 64/3x3x3 40/3x3x3"),
        (48, "112/3x3x3/s1x2x2 144/3x3x3 112/3x3x3 112/1x5x5 144/3x3x3 144/3x3x3"),
        (80, "240/5x3x3/s1x2x2 152/3x3x3 240/3x3x3 192/3x3x3 240/3x3x3"),
        (88, "264/5x3x3 264/3x3x3 264/3x3x3 264/3x3x3 160/1x5x5 264/3x3x3 264/3x3x3 264/3x3x3"),
        (168, "560/5x3x3/s1x2x2 448/1x5x5 448/1x5x5 560/1x5x5 560/1x5x5 560/3x3x3 448/1x5x5"
              " 448/1x5x5 560/3x3x3 672/1x3x3"),
    ], 744, 0.5, 0.5, 120, 256),
    "a4": (24, [
        (24, "64/1x5x5/s1x2x2 64/3x3x3 96/3x3x3 64/3x3x3 96/3x3x3 64/3x3x3"),
        (56, "168/3x3x3/s1x2x2 168/3x3x3 136/3x3x3 136/3x3x3 168/3x3x3 168/3x3x3 168/3x3x3"
             " 136/1x5x5 136/3x3x3"),
        (96, "320/5x3x3/s1x2x2 160/3x3x3 320/3x3x3 192/3x3x3 320/3x3x3 160/3x3x3 320/3x3x3"
             " 256/3x3x3 320/3x3x3"),
        (96, "320/5x3x3 320/3x3x3 320/3x3x3 320/3x3x3 192/1x5x5 320/3x3x3 320/3x3x3 192/3x3x3"
             " 320/3x3x3 320/3x3x3"),
        (192, "640/5x3x3/s1x2x2 512/1x5x5 512/1x5x5 640/1x5x5 640/1x5x5 640/3x3x3 512/1x5x5"
              " 512/1x5x5 640/1x5x5 768/1x5x5 640/1x5x5 640/3x3x3 768/3x3x3"),
    ], 856, 0.5, 0.5, 80, 290),
    "a5": (24, [
        (24, "64/1x5x5/s1x2x2 64/1x5x5 96/3x3x3 64/3x3x3 96/3x3x3 64/3x3x3"),
        (64, "192/5x3x3/s1x2x2 152/3x3x3 152/3x3x3 152/3x3x3 192/3x3x3 192/3x3x3 192/3x3x3"
             " 152/3x3x3 152/3x3x3 192/3x3x3 192/3x3x3"),
        (112, "376/5x3x3/s1x2x2 224/3x3x3 376/3x3x3 376/3x3x3 296/3x3x3 376/3x3x3 224/3x3x3"
              " 376/3x3x3 376/3x3x3 296/3x3x3 376/3x3x3 376/3x3x3 376/3x3x3"),
        (120, "376/5x3x3 376/3x3x3 376/3x3x3 376/3x3x3 224/1x5x5 376/3x3x3 376/3x3x3 224/3x3x3"
              " 376/3x3x3 376/3x3x3 376/3x3x3"),
        (224, "744/5x3x3/s1x2x2 744/3x3x3 600/1x5x5 600/1x5x5 744/1x5x5 744/1x5x5 744/3x3x3"
              " 896/1x5x5 600/1x5x5 600/1x5x5 896/1x5x5 744/1x5x5 744/3x3x3 896/1x5x5 600/1x5x5"
              " 600/1x5x5 744/1x5x5 744/3x3x3"),
    ], 992, 0.5, 0.5, 120, 320),
}

PRESETS = tuple(_TABLES)


def parse_block(code: str) -> Block:
    """`"184/5x3x3/s1x2x2"` → `Block(expand=184, kernel=(5, 3, 3), strides=(1, 2, 2))`."""
    parts = code.split("/")
    strides = v.triple(parts[2][1:], "strides", what="stride") if len(parts) > 2 else (1, 1, 1)
    return Block(expand=int(parts[0]), kernel=v.triple(parts[1], "kernel"), strides=strides)


def movinet(name: str, stream: bool = False, positional_encoding: bool | None = None) -> ArchSpec:
    """The MoViNet preset `name` (`a0` … `a5`); `stream=True` gives the causal stream variant.

    Stream variants use 2+1D convs, 2plus3d SE, hard-swish and hard-sigmoid as the official stream
    configs do; `positional_encoding` defaults to on for A3–A5 stream, as there.
    """
    key = str(name).lower().removeprefix("movinet-").removeprefix("movinet_") if isinstance(name, str) else None
    if key not in _TABLES:
        raise SpecError(f"preset {v.quote(name)}: unknown, allowed: {', '.join(PRESETS)}")
    stem, stages, head, drop_base, drop_stream, frames, res = _TABLES[key]
    spec_stages = tuple(
        Stage(filters=out, blocks=tuple(parse_block(c) for c in codes.split())) for out, codes in stages
    )
    common = dict(stem=Stem(filters=stem), stages=spec_stages, head=Head(filters=head), frames=frames,
                  resolution=res)
    if not stream:
        return ArchSpec(name=f"movinet-{key}", dropout=drop_base, **common)
    if positional_encoding is None:
        positional_encoding = key in ("a3", "a4", "a5")
    return ArchSpec(
        name=f"movinet-{key}-stream",
        conv_type="2plus1d",
        se_type="2plus3d",
        causal=True,
        activation="hard_swish",
        gating_activation="hard_sigmoid",
        classifier_activation="hard_swish" if key in ("a1", "a4") else "swish",
        positional_encoding=positional_encoding,
        dropout=drop_stream,
        **common,
    )


def preset_from_name(text: str) -> ArchSpec:
    """`a0`, `a2-stream`, `movinet-a3-stream` → the preset spec."""
    if not isinstance(text, str):
        raise SpecError(f"preset {v.quote(text)}: unknown, allowed: {', '.join(PRESETS)} (or NAME-stream)")
    key = text.lower().removeprefix("movinet-")
    stream = key.endswith("-stream") or key.endswith("_stream")
    if stream:
        key = key[: -len("-stream")]
    return movinet(key, stream=stream)
