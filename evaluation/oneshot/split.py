"""Few-shot splitting (`supernet: {split: [AXES], split_after: F}`): one sub-supernet per combination of
the split axes' choices.

The first `split_step(config)` steps train one shared supernet; then every combination of the split
axes' choices (a *branch*) gets its own copy of the shared weights and optimizer state and, from then
on, trains only on sub-networks with its choices (the steps go round-robin over the branches, so the
total is the unsplit run's). Every branch keeps the envelope's layout, so one traced graph still
serves every branch; a `SplitSupernet` holds the branches' weights and swaps the matching branch into
its variables before a sub-network reads them (`select`), which is how scoring, extraction and export
use the sub-supernet matching the candidate.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from search_space.supernet import Supernet


def check_split(axes: tuple, space: Any, path: str = "supernet.split") -> None:
    """Raise ValueError (one line naming `path`) unless every axis is a searched axis of `space` that
    every sub-network reads (not a layer slot beyond its stage's smallest depth)."""
    from search_space.supernet import extreme_params

    searched = space.param_choices()
    smallest = extreme_params(space, False)
    for axis in axes:
        if axis not in searched:
            why = "has one choice in" if axis in space._axes else "is not an axis of"
            raise ValueError(f"{path}: {axis!r} {why} space {space.name!r}; searched axes: {', '.join(searched)}")
        specs = [space.decode({**smallest, axis: c}) for c in searched[axis]]
        if any(a == b for i, a in enumerate(specs) for b in specs[:i]):
            raise ValueError(f"{path}: {axis!r} is not read by every sub-network of space {space.name!r} (a layer "
                             "beyond its stage's smallest depth); split on an axis every sub-network has")


def split_step(config: Any) -> int | None:
    """The step at which the branches start (None: no split): round(split_after x steps)."""
    return int(round(config.split_after * config.steps)) if config.split else None


def branches(space: Any, axes: tuple) -> list[dict]:
    """Every combination of the choices of `axes`, in choice order (the last axis fastest)."""
    choices = space.param_choices()
    return [dict(zip(axes, combo)) for combo in itertools.product(*(choices[a] for a in axes))]


class SplitSupernet(Supernet):
    """A `Supernet` whose weights are per branch (see the module docstring). Before `split()` it is the
    shared supernet; after, `select(spec)` (or `activate(i)`) puts the branch's weights into the
    variables, keeping what the previously active branch holds now (training changes it)."""

    def __init__(self, space: Any, num_classes: int, axes: tuple, block_scale_init: float | None = 1.0,
                 cache_size: int = 8):
        super().__init__(space, num_classes, block_scale_init=block_scale_init, cache_size=cache_size)
        check_split(tuple(axes), space)
        self.axes = tuple(axes)
        self.branches = branches(space, self.axes)
        self.states: list[dict] | None = None  # per branch: weight path -> array (None: not split yet)
        self.active: int | None = None

    def branch(self, spec: Any) -> int:
        """The branch whose choices `spec` has."""
        params = self.space.nearest(spec)
        return self.branches.index({a: params[a] for a in self.axes})

    def split(self, states: list[dict] | None = None) -> None:
        """Start the branches: each a copy of the current weights, or the given states."""
        if states is None:
            now = self._current()
            states = [dict(now) for _ in self.branches]
        self.states = states
        self.active = None

    def _current(self) -> dict:
        return {k: np.array(v.numpy()) for k, v in self.variables.items()}

    def activate(self, i: int) -> None:
        """Make branch `i` the one the variables hold (no-op before the split)."""
        if self.states is None or i == self.active:
            return
        if self.active is not None:
            self.states[self.active] = self._current()
        for k, v in self.variables.items():
            v.assign(self.states[i][k])
        self.active = i

    def select(self, spec: Any) -> int | None:
        if self.states is None:
            return None
        i = self.branch(spec)
        self.activate(i)
        return i

    def all_states(self) -> list[dict]:
        """Every branch's weights now (the active one read from the variables)."""
        if self.active is not None:
            self.states[self.active] = self._current()
        return self.states

    def values(self, spec: Any, model: Any, seed: tuple | None = None) -> tuple[list, list]:
        self.select(spec)
        return super().values(spec, model, seed)


__all__ = ["SplitSupernet", "branches", "check_split", "split_step"]
