"""MO-ASHA: asynchronous successive halving for multi-objective studies (Schmucker et al., 2021).

Rungs sit at `min_epoch * eta**k` epochs below the budget's last epoch. When a trial has been
evaluated at a rung, it is compared with every other trial of the study that has reported a
curve value at that epoch (finished, early-stopped or still running): each is a point of the
curve value there and the objectives known before training (costs, latency, zero-cost scores).
The points are ordered by non-dominated sorting (rank 0: the Pareto front of the rung), and within
a rank by crowding distance (NSGA-II's: the less crowded first; a front's end points first). The
trial goes on when fewer than `max(1, n // eta)` of the n points come strictly before it, i.e. when
it is in the top 1/eta of its rung; otherwise it stops there. Ties go to the trial deciding.

The decision is made once, when the trial reaches the rung, from whoever has reported there so
far: no worker ever waits for a rung to fill. Everything is read from the stored curves, so a
resumed study, or another worker, sees the same rung as this process did. Pure functions over
plain numbers; `nas.pruning.should_stop` dispatches here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from evaluation.compat import pareto_front_mask


def is_rung(epoch: int, min_epoch: int, eta: int) -> bool:
    """Whether `epoch` is `min_epoch * eta**k` for some k >= 0."""
    rung = min_epoch
    while rung < epoch:
        rung *= eta
    return rung == epoch


def rungs(min_epoch: int, eta: int, last_epoch: int) -> tuple[int, ...]:
    """The rung epochs below `last_epoch` (the top rung, where every run that got there ends)."""
    out, rung = [], min_epoch
    while rung < last_epoch:
        out.append(rung)
        rung *= eta
    return tuple(out)


def ranks(loss: np.ndarray) -> np.ndarray:
    """Non-domination rank of each row of `loss` (every column minimized): 0 for the Pareto front,
    1 for the front of the rest, and so on; equal rows share a rank."""
    loss = np.asarray(loss, dtype=float)
    out = np.full(len(loss), -1, dtype=int)
    rank = 0
    while (out < 0).any():
        left = np.flatnonzero(out < 0)
        out[left[pareto_front_mask(loss[left])]] = rank
        rank += 1
    return out


def crowding(loss: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row among `loss` (one front): the sum over objectives of
    the normalized gap between its two neighbours; the ends of each objective's range are infinite."""
    loss = np.asarray(loss, dtype=float)
    n = len(loss)
    out = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for column in loss.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        out[order[0]] = out[order[-1]] = math.inf
        if span > 0:
            out[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return out


def ahead_of(loss: np.ndarray, me: int) -> int:
    """How many rows come strictly before row `me` in the promotion order: a lower rank, or the
    same rank and a larger crowding distance within it."""
    rank = ranks(loss)
    same = np.flatnonzero(rank == rank[me])
    distance = crowding(loss[same])
    mine = distance[list(same).index(me)]
    return int((rank < rank[me]).sum() + (distance > mine).sum())


def promoted(loss: np.ndarray, me: int, eta: int) -> bool:
    """Whether row `me` is in the top 1/eta of the rung `loss` (rows: the trials at the rung, every
    column minimized): fewer than max(1, n // eta) rows come strictly before it."""
    return ahead_of(loss, me) < max(1, len(loss) // eta)


def rung_loss(value: float, known: dict, others: Sequence[tuple[float, dict]], directions: dict,
              maximize: bool) -> np.ndarray:
    """The rung as minimization losses, the deciding trial first: its curve value and known
    objectives, then each other trial's (`others`: (curve value, known) pairs holding every name of
    `directions`)."""
    names = list(directions)
    sign = [-1.0 if directions[n] == "maximize" else 1.0 for n in names]
    rows = [(value, known), *others]
    return np.array([[(-v if maximize else v), *(s * k[n] for s, n in zip(sign, names))] for v, k in rows],
                    dtype=float)


__all__ = ["ahead_of", "crowding", "is_rung", "promoted", "ranks", "rung_loss", "rungs"]
