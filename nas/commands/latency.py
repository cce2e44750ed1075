"""`movinas latency profile|show`: measure a device latency profile, or read one and check it covers a
space. See docs/latency.md."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from search_space.latency import MODES, RUNTIMES, ProfileError, read_profile, size_coverage, space_kinds
from search_space.space_schema import BUILTIN_SPACES

from ..errors import UsageError
from .flags import flag

MAX_THREADS = 256


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "latency",
        help="measure a device latency profile (per-op-kind times) or show one",
        description="Latency profiles: per-op-kind latencies of one runtime on one device, from which "
                    "estimate_latency predicts ms per frame without TensorFlow (docs/latency.md).",
    )
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    prof = sub.add_parser(
        "profile", help="time every op kind of a space's models on this machine (or via --command)",
        description="Time one small model per op kind and shape that the space's stream (or clip) models "
                    "use, fit each kind's time on its shape, write PROFILE.json. Progress is kept beside "
                    "--out (OUT.parts/) and resumed; it is removed when the profile is written.",
        epilog="examples: movinas latency profile --runtime tflite --threads 2 --out cpu2.json | "
               "movinas latency profile --runtime tflite --threads 4 --out phone.json "
               "--command 'adb push {model} /data/local/tmp/m.tflite >/dev/null && adb shell "
               "/data/local/tmp/benchmark_model --graph=/data/local/tmp/m.tflite --num_threads=4'")
    prof.add_argument("--runtime", required=True, choices=RUNTIMES, help="what runs the models")
    prof.add_argument("--threads", type=int, default=1, help="threads of the runtime (default: 1)")
    prof.add_argument("--mode", choices=MODES, default="stream",
                      help="stream: ms per frame of the one-frame stream model; clip: ms per clip (default: stream)")
    prof.add_argument("--out", required=True, metavar="PROFILE.json", help="the profile file to write")
    prof.add_argument("--space", default="paper",
                      help=f"the space whose shapes are timed: {', '.join(BUILTIN_SPACES)} or a YAML (default: paper)")
    prof.add_argument("--per-kind", type=int, default=10, help="shapes timed per op kind (default: 10)")
    prof.add_argument("--rounds", type=int, default=3,
                      help="times each model is timed, in rounds apart in time; the fastest counts (default: 3)")
    prof.add_argument("--samples", type=int, default=300,
                      help="architectures drawn from the space to find its shapes (default: 300)")
    prof.add_argument("--networks", type=int, default=4,
                      help="whole stream models of the space timed to scale the ops' sum (default: 4; 0: none)")
    prof.add_argument("--resolutions", type=int, nargs="+", default=(), metavar="PX",
                      help="input sizes of those whole models, in turn: the sizes you deploy at (default: each "
                           "sampled architecture's own)")
    prof.add_argument("--command", dest="template", default=None, metavar="TEMPLATE",
                      help="time each model file elsewhere: a shell command with {model} (the file's path) "
                           "that prints a time (ms, or benchmark_model's 'Inference (avg): N' in us)")
    prof.add_argument("--work", default=None, metavar="DIR",
                      help="folder of the progress file and model files (default: OUT.parts, removed when the "
                           "profile is written); a folder named here is kept, so that profiling another thread "
                           "count reuses its model files")
    prof.add_argument("--timeout", type=float, default=120.0, help="seconds per --command run (default: 120)")
    prof.add_argument("--no-progress", action="store_true", help="no progress bar")
    prof.set_defaults(func=run_profile)
    show = sub.add_parser("show", help="print a profile; with --space, check that it covers the space")
    show.add_argument("profile", metavar="PROFILE.json")
    show.add_argument("--space", default=None, help="a space the profile must cover (built-in name or YAML)")
    show.add_argument("--runtime", choices=RUNTIMES, default=None, help="the runtime the profile must be of")
    show.set_defaults(func=run_show)


def check_covers(profile, space, where: str) -> None:
    """`UsageError` naming the op kinds `space` needs that `profile` has no fit for."""
    missing = profile.missing(space_kinds(space, profile.mode))
    if missing:
        raise UsageError(f"{where}: the profile ({profile.describe()}) has no fit for op kind(s) "
                         f"{', '.join(missing)} that the space needs; profile with --space naming this space")


def run_profile(args: argparse.Namespace) -> int:
    from .screen import load_space

    flag(args.threads, "--threads", 1, MAX_THREADS)
    flag(args.per_kind, "--per-kind", 1, 100)
    flag(args.rounds, "--rounds", 1, 20)
    flag(args.networks, "--networks", 0, 100)
    flag(args.samples, "--samples", 1, 100_000)
    if not args.timeout > 0:
        raise UsageError(f"--timeout: {args.timeout}, must be a positive number of seconds")
    if args.template is not None and "{model}" not in args.template:
        raise UsageError(f"--command: {args.template!r} has no {{model}} placeholder for the model file's path")
    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out: {out} is a folder; name the profile file to write")
    space = load_space(args.space)
    from evaluation.deploy.profile import Profiler, calibration_networks, choose_shapes, fit_profile

    work = Path(args.work) if args.work else out.with_name(out.name + ".parts")
    if work.is_file():
        raise UsageError(f"--work: {work} is a file; name a folder")
    profiler = Profiler(args.runtime, args.mode, args.threads, work, command=args.template, timeout=args.timeout)
    profiler.done()  # refuse another runtime's partial progress before measuring anything
    shapes = choose_shapes(space, args.mode, args.per_kind, args.samples)
    for r in args.resolutions:
        flag(r, "--resolutions", 8, 4096)
    networks = calibration_networks(space, args.networks, args.mode, tuple(args.resolutions))
    results = profiler.run(shapes, rounds=args.rounds, progress_bar=not args.no_progress, networks=networks)
    profile = fit_profile(results, profiler.header, space=space.name, networks=networks)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(profile.to_json())
    tmp.replace(out)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{out}: {profile.describe()}; {len(profile.kinds)} op kinds from {profile.samples} timed models; "
          f"call overhead {profile.overhead_ms:.3f} ms; leave-one-out interpolation error median "
          f"{profile.spread['interpolation_error_median']:.1%}; scale {profile.scale:.3f} from {len(networks)} "
          f"whole models")
    return 0


def run_show(args: argparse.Namespace) -> int:
    try:
        profile = read_profile(args.profile, runtime=args.runtime)
    except ProfileError as exc:
        raise UsageError(str(exc)) from None
    print(f"{args.profile}: {profile.describe()}; space {profile.space or '?'}; measured {profile.created}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in profile.versions.items()))
    print("spread: " + ", ".join(f"{k} {v:.1%}" for k, v in profile.spread.items()))
    print(f"overhead: {profile.overhead_ms:.4f} ms a call; scale {profile.scale:.3f} (whole models / sum of ops)")
    print(f"{'kind':22s} {'points':>6s} {'sizes (work + moved)':>22s} {'ms':>17s}")
    for kind, points in sorted(profile.kinds.items()):
        (x0, m0), (x1, m1) = points[0], points[-1]
        print(f"{kind:22s} {len(points):6d} {x0:10.3g} – {x1:9.3g} {m0:8.4f} – {m1:7.3f}")
    if args.space:
        from .screen import load_space

        space = load_space(args.space)
        check_covers(profile, space, "--space")
        below, above, total = size_coverage(profile, space, profile.mode)
        print(f"covers every op kind of space {args.space}; of its ops (200 sampled architectures), "
              f"{below / total:.0%} are smaller and {above / total:.0%} larger than the sizes the profile timed"
              + ("" if below + above <= total // 4 else
                 f": predictions extrapolate, profile this space (movinas latency profile --space {args.space})"))
    return 0
