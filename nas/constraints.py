"""Hard constraints on analytic costs: `flops <= 1.5e9`, `activation_bytes <= 200MB`, `latency_ms <= 8`.

A constraint is checked on `search_space.estimate_cost` before anything is trained; `latency_ms` on
`search_space.latency.estimate_latency` with the latency profile the config names (`profile:`), the
predicted ms per frame (stream profile) or per clip on that profile's device. Its
*violation* is `value - limit` for `<=` (and `limit - value` for `>=`): positive means broken,
zero or negative means satisfied. That is the sign convention of Optuna's `Trial.set_constraint`.

Units (case-insensitive): `K`, `M`, `G`, `T` multiply by 10^3, 10^6, 10^9, 10^12; `KB`, `MB`,
`GB`, `TB` are decimal bytes (1 MB = 10^6 bytes, as `estimate_cost` figures are printed);
`KiB`, `MiB`, `GiB` are binary (1 MiB = 2^20 bytes). Byte units are only accepted on byte
quantities (`activation_bytes`, `state_bytes`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from evaluation.results.record import BYTE_COLUMNS, LATENCY_MS, is_feasible  # noqa: F401  (is_feasible re-exported)
from search_space import validate as v
from search_space.cost import COST_NAMES  # the fields of `search_space.Cost` a constraint may name

from .errors import UsageError

MAX_TEXT = 200  # characters of a constraint
CONSTRAINT_NAMES = (*COST_NAMES, LATENCY_MS)  # latency_ms: predicted from a latency profile
OPERATORS = ("<=", ">=")

_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_BYTES = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
          "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40}
_PATTERN = re.compile(r"^\s*([a-z_]+)\s*(<=|>=|<|>|==|=)\s*([0-9.eE+\-_]+)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class Constraint:
    """`name op limit`, e.g. flops <= 1.5e9."""

    name: str
    op: str
    limit: float
    text: str
    profile: Any = field(default=None, compare=False, repr=False)  # latency_ms: its LatencyProfile

    def violation(self, value: float) -> float:
        """> 0 when broken (by how much), <= 0 when satisfied."""
        return float(value - self.limit) if self.op == "<=" else float(self.limit - value)

    def to_dict(self) -> dict:
        return {"name": self.name, "op": self.op, "limit": self.limit, "text": self.text}


def parse_constraint(text: object, path: str = "constraints[0]") -> Constraint:
    """Parse `NAME <= NUMBER[UNIT]` or `NAME >= NUMBER[UNIT]`; errors name `path`."""
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        raise UsageError(f"{path}: {v.quote(text)}, must be a string like 'flops <= 1.5e9'")
    match = _PATTERN.match(text)
    if not match:
        raise UsageError(f"{path}: {v.quote(text)}, must look like 'NAME <= NUMBER[UNIT]', "
                         f"e.g. 'flops <= 1.5G' or 'activation_bytes <= 200MB'")
    name, op, number, unit = match.groups()
    if name not in CONSTRAINT_NAMES:
        raise UsageError(f"{path}: {v.quote(name)} in {v.quote(text)}, must be one of {', '.join(CONSTRAINT_NAMES)}")
    if op not in OPERATORS:
        raise UsageError(f"{path}: operator {op!r} in {v.quote(text)}, must be one of {', '.join(OPERATORS)}")
    try:
        value = float(number.replace("_", ""))
    except ValueError:
        raise UsageError(f"{path}: {v.quote(number)} in {v.quote(text)} is not a number") from None
    limit = value * _unit_scale(unit, name, text, path)
    if not math.isfinite(limit):
        raise UsageError(f"{path}: {v.quote(number + unit)} in {v.quote(text)}, must be a finite number")
    return Constraint(name=name, op=op, limit=limit, text=" ".join(text.split()))


def _unit_scale(unit: str, name: str, text: str, path: str) -> float:
    key = unit.lower()
    if name == LATENCY_MS:
        if key not in ("", "ms"):
            raise UsageError(f"{path}: unit {v.quote(unit)} in {v.quote(text)}; latency_ms is in milliseconds "
                             "(write no unit, or ms)")
        return 1.0
    if key in _SCALE:
        return _SCALE[key]
    if key in _BYTES:
        if name not in BYTE_COLUMNS:
            raise UsageError(f"{path}: byte unit {v.quote(unit)} on {name!r} in {v.quote(text)}; byte units apply to "
                             f"{', '.join(BYTE_COLUMNS)}; use K, M, G or T")
        return _BYTES[key]
    allowed = "K, M, G, T, KB, MB, GB, TB, KiB, MiB, GiB"
    raise UsageError(f"{path}: unit {v.quote(unit)} in {v.quote(text)}, must be one of {allowed}")


def analytic_costs(spec, num_classes: int, profile=None) -> dict[str, Any]:
    """`estimate_cost` of `spec` at its own input as a dict (no blocks), with `latency_ms` predicted
    from `profile` (a `LatencyProfile`) when one is given: everything known before training."""
    from search_space import estimate_cost

    cost = estimate_cost(spec, num_classes=num_classes)._asdict()
    cost.pop("blocks")
    if profile is not None:
        from search_space.latency import estimate_latency

        cost[LATENCY_MS] = estimate_latency(spec, profile, num_classes=num_classes)
    return cost


def latency_profile(constraints: tuple[Constraint, ...]):
    """The latency profile a `latency_ms` constraint carries, or None."""
    return next((c.profile for c in constraints if c.profile is not None), None)


def violations(constraints: tuple[Constraint, ...], cost) -> dict[str, float]:
    """Violation of each constraint (keyed by its text) for a `Cost` or a mapping of cost values."""
    values = cost if isinstance(cost, dict) else cost._asdict()
    return {c.text: c.violation(values[c.name]) for c in constraints}


def describe(constraints: tuple[Constraint, ...], violation_values: dict[str, float]) -> str:
    """One line naming the broken constraints and by how much, e.g. `flops 2.1e9 > 1.5e9`."""
    parts = []
    for c in constraints:
        v = violation_values[c.text]
        if v > 0:
            value = c.limit + v if c.op == "<=" else c.limit - v
            sign = ">" if c.op == "<=" else "<"
            parts.append(f"{c.name} {value:.4g} {sign} {c.limit:.4g}")
    return "; ".join(parts)


def screen_budget(space, constraints: tuple[Constraint, ...], num_classes: int, samples: int = 2000,
                  seed: int = 0) -> float:
    """Cost `samples` random architectures of `space`; return the feasible fraction.

    Raises UsageError when none is feasible, reporting for each constraint the best value reached
    against its limit, so the user sees how far the budget is from the space.
    """
    import numpy as np

    if not constraints:
        return 1.0
    rng = np.random.default_rng(seed)
    best = {c.text: float("inf") for c in constraints}
    feasible = 0
    profile = latency_profile(constraints)
    for _ in range(samples):
        spec = space.sample(rng)
        broken = violations(constraints, analytic_costs(spec, num_classes, profile))
        feasible += is_feasible(broken)
        for key, value in broken.items():
            best[key] = min(best[key], value)
    if feasible:
        return feasible / samples
    parts = []
    for c in constraints:
        reached = c.limit + best[c.text] if c.op == "<=" else c.limit - best[c.text]
        word = "smallest" if c.op == "<=" else "largest"
        parts.append(f"{c.text}: {word} {c.name} reached {reached:.4g} (limit {c.limit:.4g})")
    together = " (each is met by some samples, never all at once)" if all(b <= 0 for b in best.values()) else ""
    raise UsageError(f"constraints: none of {samples:,} architectures sampled from the space meets them all"
                     f"{together}; " + "; ".join(parts) + ". Loosen the constraints or change the space")
