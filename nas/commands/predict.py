"""`movinas predict MODEL VIDEO`: classify a video file, a camera or raw frames on stdin, as a clip,
a stream in constant memory, or a temporal ensemble of two models."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap

from search_space import validate as v

from ..errors import UsageError

MAX_FRAME_SIDE = 8192  # pixels of a raw stdin frame's side

OUTPUT_HELP = """output (stdout, one line each):
  running top-1 (--stream --every N):  frame N: LABEL  PROBABILITY
  final top-k:                         RANK. LABEL  PROBABILITY
LABEL may contain spaces; PROBABILITY (softmax, 4 decimals) is the last field.

examples:
  movinas predict exported/ video.mp4 --top-k 3
  movinas predict exported/ video.mp4 --stream --every 25
  movinas predict model_a/ video.mp4 --ensemble model_b/
  ffmpeg -i in.mp4 -f rawvideo -pix_fmt rgb24 - | movinas predict exported/ - --size 320x240 --stream"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict",
        help="classify a video with an exported or saved model (clip, stream or temporal ensemble)",
        description=textwrap.fill(
            "Classify a video like the MoViNet inference pipeline: frames are read with OpenCV, resized to "
            "the model's resolution, converted to RGB in [0, 1] and run; the softmax top-k is printed. "
            "MODEL is a folder written by `movinas export`, a .keras file, a spec YAML with its weights "
            "beside it (NAME.weights.h5 or model.weights.h5, classes from a labels.txt beside it, else 600), "
            "a TF SavedModel whose signature takes {'image': float32[batch, frames, height, width, 3]} "
            "(as TF Hub's MoViNets), or a .tflite file.",
            width=100,
        ),
        epilog=OUTPUT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="export folder, .keras, spec YAML, SavedModel folder or .tflite")
    p.add_argument("video", metavar="VIDEO",
                   help="a video file, a camera index (0, 1, ...), or - for raw RGB24 frames on stdin (needs --size)")
    p.add_argument("--stream", action="store_true",
                   help="feed frames one at a time through the stream model (causal models; constant memory)")
    p.add_argument("--every", type=int, default=None, metavar="N",
                   help="with --stream: print the running top-1 every N frames")
    p.add_argument("--ensemble", metavar="MODEL2", default=None,
                   help="temporal ensemble: MODEL sees frames 0, 2, 4, ..., MODEL2 frames 1, 3, 5, ...; "
                        "logits averaged before the softmax")
    p.add_argument("--labels", metavar="FILE", default=None,
                   help="class names, one a line in class order, or kinetics600 for the Kinetics-600 names "
                        "shipped with movinas (default: the export's labels, else class_<i>)")
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="labels to print (default: 5)")
    p.add_argument("--frames", type=int, default=None, metavar="F",
                   help="frames to use (default: the model's fixed clip length if any, else every frame)")
    p.add_argument("--fps", type=float, default=None, metavar="R",
                   help="sample the video at R frames per second (default: its own rate)")
    p.add_argument("--resolution", type=int, default=None, metavar="PX",
                   help="input height and width (default: the model's, else 172)")
    p.add_argument("--size", default=None, metavar="WxH", help="frame size of raw stdin frames (VIDEO -)")
    p.add_argument("--backend", choices=("keras", "savedmodel", "tflite", "tflite-int8"), default=None,
                   help="which artifact of an export folder runs (default: keras for clips; for --stream "
                        "its stream.tflite when present, else keras)")
    p.set_defaults(func=run)


def parse_video(text: str, size: str | None):
    """`-` (stdin, with --size), a camera index, or a file path."""
    if text == "-":
        if not size:
            raise UsageError("VIDEO -: raw stdin frames need --size WxH (e.g. --size 320x240)")
        match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", size)
        if not match or not all(1 <= int(x) <= MAX_FRAME_SIDE for x in match.groups()):
            raise UsageError(f"--size: {v.quote(size)}, expected WIDTHxHEIGHT such as 320x240, "
                             f"each in [1, {MAX_FRAME_SIDE}]")
        from evaluation.deploy.predict import raw_frames

        return raw_frames(sys.stdin.buffer, int(match[1]), int(match[2]))
    if size:
        raise UsageError("--size: only for VIDEO - (raw frames on stdin)")
    if text.isdigit() and len(text) < 4 and not v.is_file(text):
        return int(text)
    if v.is_dir(text):
        raise UsageError(f"video {v.one_line(text, 200)}: a directory, must be a video file")
    if not v.is_file(text):  # before the (slow) model load
        raise UsageError(f"video {v.one_line(text, 200)}: no such file")
    return text


def format_line(rank: int, label: str, prob: float) -> str:
    return f"{rank}. {label}  {prob:.4f}"


def run(args: argparse.Namespace) -> int:
    from search_space.spec import MAX_FRAMES

    from .flags import flag, input_flags

    input_flags(args)  # absurd sizes are refused before any video is decoded
    flag(args.top_k, "--top-k")
    flag(args.every, "--every", 1, MAX_FRAMES)
    if args.fps is not None:
        v.number(args.fps, "--fps", 0, 1000, lo_open=True, error=UsageError)
    if args.every and not args.stream:
        raise UsageError("--every: only with --stream")
    video = parse_video(args.video, args.size)

    from evaluation.deploy.predict import Sampling, Updates, load_for_inference, predict_video

    def show(pred) -> None:
        label, prob = pred.top_k[0]
        print(f"frame {pred.frames_seen}: {label}  {prob:.4f}", flush=True)

    try:
        models = [load_for_inference(m, stream=args.stream, backend=args.backend)
                  for m in (args.model, args.ensemble) if m is not None]
        pred = predict_video(
            models[0], video, stream=args.stream, ensemble=models[1] if len(models) > 1 else None,
            labels=args.labels, top_k=args.top_k, sampling=Sampling(args.frames, args.fps, args.resolution),
            updates=Updates(args.every, show) if args.every else None)
    except ValueError as exc:
        raise UsageError(" ".join(str(exc).split())) from None
    for rank, (label, prob) in enumerate(pred.top_k, 1):
        print(format_line(rank, label, prob))
    return 0
