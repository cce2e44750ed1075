"""`movinas videos OUT`: write a folder of real video files (the synthetic motion classes, one
sub-folder per class), the layout a search config's `dataset: {kind: video_folder}` reads."""

from __future__ import annotations

import argparse
import textwrap

from ..errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "videos",
        help="write a folder of video files (synthetic motion classes, one sub-folder per class)",
        description=textwrap.fill(
            "Write CLIPS video files of each of the first CLASSES synthetic motion classes (right, left, "
            "clockwise, counterclockwise, ...; docs/datasets.md) to OUT/<class>/: the layout a search "
            "config's video_folder dataset reads. nas/configs/example.yaml reads nas/configs/videos.",
            width=100,
        ),
        epilog="example:\n  movinas videos nas/configs/videos      # the example config's dataset",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("out", metavar="OUT", help="folder to write (created; files of the same names are replaced)")
    p.add_argument("--classes", type=int, default=4, metavar="N", help="motion classes, 2 to 11 (default: 4)")
    p.add_argument("--clips", type=int, default=24, metavar="N", help="videos per class (default: 24)")
    p.add_argument("--frames", type=int, default=16, metavar="F", help="frames per video (default: 16)")
    p.add_argument("--resolution", type=int, default=112, metavar="PX", help="frame width and height (default: 112)")
    p.add_argument("--fps", type=float, default=5.0, metavar="R",
                   help="frame rate written in the files (default: 5, the example config's sampling rate)")
    p.add_argument("--format", choices=("mp4", "avi"), default="mp4", help="container (default: mp4)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from evaluation.datasets.synthetic_folder import Encoding, write_synthetic_folder

    out = Path(args.out)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise UsageError(f"OUT {args.out}: must be a folder ({p} is a file)")
    try:
        done = write_synthetic_folder(out, num_classes=args.classes, clips_per_class=args.clips,
                                      frames=args.frames, resolution=args.resolution, seed=args.seed,
                                      encoding=Encoding(args.fps, "." + args.format))
    except ValueError as exc:  # name the flag, not the keyword argument
        flags = {"num_classes": "--classes", "clips_per_class": "--clips", "frames": "--frames",
                 "resolution": "--resolution", "fps": "--fps", "seed": "--seed"}
        message = str(exc)
        name = message.split(":", 1)[0]
        raise UsageError(flags.get(name, name) + message[len(name):]) from None
    print(f"wrote {done.videos} videos ({len(done.classes)} classes × {args.clips}, {args.frames} frames of "
          f"{args.resolution}×{args.resolution} at {args.fps:g} fps) to {out}/: {', '.join(done.classes)}")
    return 0
