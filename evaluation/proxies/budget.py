"""`Budget`: how long and how a proxy trains (read by `evaluation.proxies.train.train_proxy`).

Numpy-free and TensorFlow-free, so configuration code can validate budgets without loading either.
The reasons behind the defaults, with measurements, are in docs/proxies.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from search_space import validate


@dataclass(frozen=True)
class Budget:
    """How long and how a proxy trains. At least one of `epochs`, `steps`, `seconds` must be set;
    the run stops at whichever limit comes first.

    - `epochs`: passes over the training clips; `steps`: optimizer steps overall; `seconds`:
      wall-clock cap on training plus validation, checked between steps (the last validation
      still runs after the cap).
    - Optimizer: AdamW with `weight_decay` (decoupled), gradients clipped to a global norm of
      `grad_clip`, learning rate warmed up linearly over the first `warmup_fraction` of the run
      then cosine-decayed to 0. The run's length is known from `epochs`/`steps`; with `seconds`
      alone the schedule follows elapsed time.
    - `label_smoothing` applies to the training loss; reported validation loss is plain
      cross-entropy.
    - `mixed_precision`: float16 compute with loss scaling on a GPU, bfloat16 on CPU.
    - `jit_compile`: XLA for the train and eval steps; None = on when a GPU is present (on this
      project's CPU it made training slower, see benchmarks/RESULTS.md).
    - `augment`: per-clip brightness and contrast jitter. No flips or time reversal, which would
      change the label of motion-direction classes.
    - `bn_recalibration`: training clips over which BatchNorm statistics are recomputed (a plain
      average, "precise BN") before each validation; 0 keeps the moving averages. With MoViNet's
      momentum of 0.99 the moving averages of a run of a few dozen steps still mostly hold their
      initial values, and validation in inference mode then lands near chance.
    - `stochastic_depth`: the drop-path rate of the run, replacing the spec's (None keeps it). Off
      by default: at MoViNet's 0.2 a small network needed about twice the epochs to start learning
      the motion classes, and a proxy run has no epochs to spare.
    - `block_scale_init`: starting value of every block's ReZero scale (None keeps the builder's
      0). At 0 each block starts as its skip path, and the temporal kernels, which only sit on the
      main branch, reach the output only once the scales have grown: the same small network did
      not start learning the motion classes within 4 epochs from 0, and did from 1.
    """

    epochs: int | None = 3
    steps: int | None = None
    seconds: float | None = None
    batch_size: int = 8
    learning_rate: float = 3e-3
    warmup_fraction: float = 0.1
    weight_decay: float = 0.05
    grad_clip: float | None = 1.0
    label_smoothing: float = 0.1
    mixed_precision: bool = False
    jit_compile: bool | None = None
    augment: bool = False
    bn_recalibration: int = 64
    stochastic_depth: float | None = 0.0
    block_scale_init: float | None = 1.0

    def __post_init__(self) -> None:
        check_budget(dataclasses.asdict(self), "budget")

    @classmethod
    def from_dict(cls, data: Any, path: str = "budget") -> Budget:
        """A budget from a mapping (e.g. parsed YAML); unknown or bad fields raise ValueError naming
        `path.field` and what is allowed."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError(f"{path}: {data!r}, must be a mapping of budget fields")
        defaults = {f.name: f.default for f in fields(cls)}
        for key in data:
            if key not in defaults:
                raise ValueError(f"{path}.{key}: unknown field, allowed: {', '.join(defaults)}")
        check_budget({**defaults, **data}, path)
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_budget(v: dict[str, Any], path: str) -> None:
    """Raise ValueError naming `path.field` for the first bad value among Budget's fields `v`."""

    def fail(name: str, allowed: str, optional: bool) -> None:
        raise ValueError(f"{path}.{name}: {v[name]!r}, must be {allowed}{' or null' if optional else ''}")

    def integer(name: str, lo: int, optional: bool = False) -> None:
        validate.integer(v[name], f"{path}.{name}", lo, optional=optional)

    def number(name: str, lo: float, hi: float | None = None, optional: bool = False, open_lo: bool = False,
               open_hi: bool = False) -> None:
        validate.number(v[name], f"{path}.{name}", lo, hi, lo_open=open_lo, hi_open=open_hi, optional=optional)

    def flag(name: str, optional: bool = False) -> None:
        if not (isinstance(v[name], bool) or (optional and v[name] is None)):
            fail(name, "true or false", optional)

    integer("epochs", 1, optional=True)
    integer("steps", 1, optional=True)
    number("seconds", 0, optional=True, open_lo=True)
    if v["epochs"] is None and v["steps"] is None and v["seconds"] is None:
        raise ValueError(f"{path}: no limit, set at least one of epochs, steps, seconds")
    check_optimizer(v, path)
    flag("mixed_precision")
    flag("jit_compile", optional=True)
    flag("augment")
    integer("bn_recalibration", 0)
    number("stochastic_depth", 0, 1, optional=True, open_hi=True)


OPTIMIZER_FIELDS = ("batch_size", "learning_rate", "warmup_fraction", "weight_decay", "grad_clip", "label_smoothing",
                    "block_scale_init")  # shared by Budget and the supernet's SupernetConfig, defaults on Budget


def check_optimizer(v: dict[str, Any], path: str) -> None:
    """Raise ValueError naming `path.field` for the first bad value among the training fields a
    proxy budget and a supernet share (`OPTIMIZER_FIELDS`): one set of bounds for both."""
    validate.integer(v["batch_size"], f"{path}.batch_size", 1)
    for name, lo, hi, lo_open, hi_open, optional in (
            ("learning_rate", 0, None, True, False, False), ("warmup_fraction", 0, 1, False, True, False),
            ("weight_decay", 0, None, False, False, False), ("grad_clip", 0, None, True, False, True),
            ("label_smoothing", 0, 1, False, False, False), ("block_scale_init", 0, None, False, False, True)):
        validate.number(v[name], f"{path}.{name}", lo, hi, lo_open=lo_open, hi_open=hi_open, optional=optional)


def learning_rate_at(budget: Budget, progress: float) -> float:
    """Linear warm-up then cosine decay to 0, as a function of run progress in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    w = budget.warmup_fraction
    if w > 0 and p < w:
        return budget.learning_rate * p / w
    return budget.learning_rate * 0.5 * (1.0 + math.cos(math.pi * (p - w) / (1.0 - w)))
