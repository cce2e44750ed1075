"""`movinas screen [SPACE]`: sample thousands of architectures, cost each, print the spread of their
costs and where the MoViNet presets fall in it. No training, no TensorFlow: the analytic cost model
only, the first filter before any search.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from search_space import PRESETS, estimate_cost, movinet
from search_space import validate as v
from search_space.space_schema import BUILTIN_SPACES

from ..errors import UsageError
from .flags import flag, input_flags

MAX_SAMPLES = 10_000_000
PERCENTILES = (0, 5, 25, 50, 75, 95, 100)
# (Cost field, label): the spread table's rows, in the report's units (evaluation.results.report.format_value)
METRICS = (
    ("params", "params"),
    ("macs", "MACs"),
    ("activation_bytes", "peak activations"),
    ("state_bytes", "stream state"),
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "screen",
        help="sample many architectures of a search space, cost them, show the spread and the presets' place",
        description=(
            "Draw architectures from a search space with a seeded RNG, cost each with the analytic model "
            "(params, MACs, peak activation memory, stream state; no TensorFlow), and print the spread "
            "of those costs, the rate achieved, and where MoViNet A0-A5 fall within the sample."
        ),
        epilog="examples: movinas screen | movinas screen small --samples 20000 | movinas screen my_space.yaml --json",
    )
    p.add_argument("space", nargs="?", default="paper", metavar="SPACE",
                   help=f"a built-in space ({', '.join(BUILTIN_SPACES)}; default: paper) or a search-space YAML")
    p.add_argument("--samples", type=int, default=5000, help="architectures to draw (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed; the same seed draws the same sample (default: 0)")
    p.add_argument("--frames", type=int, default=None,
                   help="cost every sample at this many frames instead of its sampled frame count")
    p.add_argument("--resolution", type=int, default=None,
                   help="cost every sample at this resolution instead of its sampled one")
    p.add_argument("--profile", default=None, metavar="PROFILE.json",
                   help="a latency profile (movinas latency profile): also predict latency_ms of every sample")
    p.add_argument("--constraint", action="append", default=[], metavar="TEXT",
                   help="report the share of samples meeting it, e.g. 'latency_ms <= 8' (needs --profile) or "
                        "'flops <= 1G'; repeatable")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the report")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class PresetPlace:
    """Where one preset falls in a screening: percentile ranks (0-100) within the sample."""

    name: str
    params: int
    params_pct: float
    frames: int  # the preset's paper input
    resolution: int
    macs: int  # at the paper input
    macs_pct_paper_input: float  # preset at its paper input vs samples at their own inputs
    macs_pct_same_input: float  # preset recosted at each sample's input, compared one to one


@dataclass(frozen=True)
class Screening:
    """The costs of a sample of a search space, and where the presets fall among them."""

    space: str
    size: int  # distinct architectures in the space
    seed: int
    seconds: float  # sampling and costing
    cost_seconds: float  # `estimate_cost` alone
    values: dict  # Cost field or "frames" / "resolution" (or "latency_ms") -> numpy array, one entry per sample
    presets: tuple[PresetPlace, ...]
    latency_seconds: float = 0.0  # `estimate_latency` alone, with a profile
    feasible: dict = dataclasses.field(default_factory=dict)  # constraint text -> share of samples meeting it

    @property
    def samples(self) -> int:
        return len(self.values["params"])


def load_space(name: str):
    """A built-in search space by name, or one from a YAML file."""
    from search_space import SearchSpace, SpecError

    path = Path(name)
    if name not in BUILTIN_SPACES and not (path.suffix.lower() in (".yaml", ".yml") or "/" in name
                                           or v.is_file(name) or v.is_dir(path)):
        raise UsageError(f"SPACE {v.quote(name)}: not a built-in space ({', '.join(BUILTIN_SPACES)}) nor a YAML file")
    try:
        return SearchSpace.from_yaml(name if name in BUILTIN_SPACES else path)
    except SpecError as exc:  # YAML parser messages span lines; the CLI prints one
        raise UsageError(v.one_line(str(exc), 500)) from None


def percentile_rank(sorted_values, x) -> float:
    """Share of the sample below `x`, ties counted half, in percent."""
    import numpy as np

    lo = np.searchsorted(sorted_values, x, side="left")
    hi = np.searchsorted(sorted_values, x, side="right")
    return float(100.0 * (lo + hi) / 2 / len(sorted_values))


def screen(space, name: str, samples: int, seed: int = 0, size: tuple[int | None, int | None] = (None, None),
           progress: bool = True, profile=None, constraints=()) -> Screening:
    """Draw `samples` specs from `space` with `numpy.random.default_rng(seed)` and cost each at `size`
    ((frames, resolution), None: the spec's own), and predict its latency from `profile`, a
    `LatencyProfile`; count those meeting `constraints`."""
    import numpy as np
    from tqdm import tqdm

    from search_space.latency import estimate_latency

    from ..constraints import is_feasible, violations

    frames, resolution = size
    rng = np.random.default_rng(seed)
    rows, latencies, met = [], [], {c.text: 0 for c in constraints}
    cost_seconds = latency_seconds = 0.0
    clock = time.perf_counter
    start = clock()
    for _ in tqdm(range(samples), desc=f"screening {name}", unit="spec", file=sys.stderr,
                  disable=not progress, mininterval=0.25, leave=False):
        spec = space.sample(rng)
        t, r = frames or spec.frames, resolution or spec.resolution
        t0 = clock()
        c = estimate_cost(spec, t, r)
        t1 = clock()
        cost_seconds += t1 - t0
        rows.append((c.params, c.macs, c.activation_bytes, c.state_bytes, t, r))
        if profile is not None:
            latencies.append(estimate_latency(spec, profile, t, r))
            latency_seconds += clock() - t1
        if constraints:
            broken = violations(constraints, {**c._asdict(), "latency_ms": latencies[-1] if latencies else None})
            for text, value in broken.items():
                met[text] += is_feasible({text: value})
    seconds = clock() - start
    table = np.array(rows, dtype=np.int64).reshape(-1, 6)
    names = [m[0] for m in METRICS] + ["frames", "resolution"]
    values = {k: table[:, i] for i, k in enumerate(names)}
    if profile is not None:
        values["latency_ms"] = np.array(latencies)
    return Screening(name, int(space.size()), seed, seconds, cost_seconds, values, place_presets(values),
                     latency_seconds, {k: n / samples for k, n in met.items()})


def place_presets(values: dict) -> tuple[PresetPlace, ...]:
    """Percentile ranks of A0-A5 (base) within a sample's params and MACs."""
    import numpy as np

    params = np.sort(values["params"])
    macs = values["macs"]
    macs_sorted = np.sort(macs)
    inputs = np.stack([values["frames"], values["resolution"]], axis=1)
    uniq, inverse = np.unique(inputs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    places = []
    for key in PRESETS:
        spec = movinet(key)
        paper = estimate_cost(spec)
        # the preset's MACs at each distinct sampled input, then compared sample by sample
        at = np.array([estimate_cost(spec, int(t), int(r)).macs for t, r in uniq], dtype=np.int64)[inverse]
        same = float(100.0 * (np.mean(macs < at) + 0.5 * np.mean(macs == at)))
        places.append(PresetPlace(spec.name, paper.params, percentile_rank(params, paper.params), spec.frames,
                                  spec.resolution, paper.macs, percentile_rank(macs_sorted, paper.macs), same))
    return tuple(places)


def spread(s: Screening) -> dict:
    """Per metric, the values at `PERCENTILES` (raw units)."""
    import numpy as np

    varied = [k for k in ("frames", "resolution") if s.values[k].min() != s.values[k].max()]
    keys = [m[0] for m in METRICS] + (["latency_ms"] if "latency_ms" in s.values else []) + varied
    return {k: dict(zip(_pct_names(), np.percentile(s.values[k], PERCENTILES).tolist())) for k in keys}


def _pct_names() -> list[str]:
    return ["min" if p == 0 else "max" if p == 100 else "median" if p == 50 else f"p{p}" for p in PERCENTILES]


def format_report(s: Screening) -> str:
    """The human report: spread table, rate, presets' percentile ranks with how they were computed."""
    from evaluation.results.report import format_value

    sp = spread(s)
    labels = dict(METRICS, frames="input frames", resolution="input resolution", latency_ms="latency ms (predicted)")
    head = ["", "min", "5%", "25%", "median", "75%", "95%", "max"]
    rows = [head]
    for key, pts in sp.items():
        cells = (f"{v:,.0f}" if key in ("frames", "resolution") else format_value(key, v) for v in pts.values())
        rows.append([labels[key], *cells])
    out = [
        f"screened {s.samples:,} architectures of the {s.space!r} space "
        f"({_size_text(s.size)} distinct), seed {s.seed}",
        _table(rows),
        "",
        f"rate: {s.samples / s.seconds:,.0f} specs/s sampled and costed "
        f"({s.samples / max(s.cost_seconds, 1e-9):,.0f} specs/s for estimate_cost alone, one core)",
    ]
    if s.latency_seconds:
        out.append(f"latency: {s.samples / s.latency_seconds:,.0f} specs/s for estimate_latency alone")
    out += [f"meets {text!r}: {share:.1%} of the sample" for text, share in s.feasible.items()]
    if not s.values["state_bytes"].any():
        out.append("stream state is 0: the sampled specs are not causal (cost a causal spec for its buffers)")
    out += ["", "where the presets fall (percentile = share of the sample below the preset):", ""]
    rows = [["preset", "params", "pct", "paper input", "MACs", "pct", "MACs pct at same input"]]
    for p in s.presets:
        rows.append([p.name, format_value("params", p.params), f"{p.params_pct:.0f}", f"{p.frames}×{p.resolution}²",
                     format_value("macs", p.macs), f"{p.macs_pct_paper_input:.0f}", f"{p.macs_pct_same_input:.0f}"])
    out += [
        _table(rows),
        "",
        "Params do not depend on the input. The MACs 'pct' sets each preset at its paper input against",
        "the samples at their own sampled inputs; 'pct at same input' recosts the preset at each sample's",
        "input and counts the samples below it, so it compares the architectures alone.",
    ]
    return "\n".join(out)


def _size_text(n: int) -> str:
    return f"{n:,}" if n < 10**9 else f"{n:.2e}"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def to_json(s: Screening) -> dict:
    return {
        "space": s.space,
        "size": s.size,
        "samples": s.samples,
        "seed": s.seed,
        "seconds": s.seconds,
        "specs_per_second": s.samples / s.seconds,
        "cost_specs_per_second": s.samples / max(s.cost_seconds, 1e-9),
        "spread": spread(s),
        "presets": [dataclasses.asdict(p) for p in s.presets],
        **({"latency_specs_per_second": s.samples / s.latency_seconds} if s.latency_seconds else {}),
        **({"feasible": s.feasible} if s.feasible else {}),
    }


def run(args: argparse.Namespace) -> int:
    flag(args.samples, "--samples", 1, MAX_SAMPLES)
    flag(args.seed, "--seed", 0)
    input_flags(args)
    space = load_space(args.space)
    profile = screen_profile(args.profile, space)
    constraints = screen_constraints(args.constraint, profile)
    s = screen(space, args.space, args.samples, args.seed, (args.frames, args.resolution), profile=profile,
               constraints=constraints)
    print(json.dumps(to_json(s), indent=2) if args.json else format_report(s))
    return 0


def screen_profile(path: str | None, space):
    """The latency profile of --profile, checked to cover the space (None without one)."""
    if path is None:
        return None
    from search_space.latency import ProfileError, read_profile, space_kinds

    try:
        profile = read_profile(path)
    except ProfileError as exc:
        raise UsageError(f"--profile: {exc}") from None
    missing = profile.missing(space_kinds(space, profile.mode))
    if missing:
        raise UsageError(f"--profile: {profile.describe()} has no fit for op kind(s) {', '.join(missing)} that the "
                         f"space needs; profile it with movinas latency profile --space SPACE")
    return profile


def screen_constraints(texts: list[str], profile) -> tuple:
    """--constraint texts parsed; a latency_ms one needs --profile."""
    from ..constraints import parse_constraint

    out = tuple(parse_constraint(t, f"--constraint {i + 1}") for i, t in enumerate(texts))
    if profile is None and any(c.name == "latency_ms" for c in out):
        raise UsageError("--constraint: latency_ms needs a latency profile: add --profile PROFILE.json")
    return out
