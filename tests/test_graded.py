"""The graded task: deterministic, balanced, and its labels live in the motion (a single frame
predicts no better than chance, the motion statistic of each pair tells it apart)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evaluation.datasets import DATASET_KINDS, GRADED_CLASSES, graded, load_dataset

SMALL = dict(num_classes=10, clips_per_class=4, frames=8, resolution=16)


def test_same_seed_same_clips_other_seed_other_clips():
    a, b, c = graded(**SMALL, seed=3), graded(**SMALL, seed=3), graded(**SMALL, seed=4)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.val.y, b.val.y)
    assert not np.array_equal(a.train.x, c.train.x)


def test_layout_balance_and_value_range():
    ds = graded(**SMALL, val_fraction=0.5)
    assert ds.train.x.shape == (20, 8, 16, 16, 3) and ds.val.x.shape == (20, 8, 16, 16, 3)
    assert ds.train.x.dtype == np.float32 and 0.0 <= ds.train.x.min() and ds.train.x.max() <= 1.0
    assert np.bincount(ds.val.y).tolist() == [2] * 10
    assert ds.class_names == tuple(name for name, _ in GRADED_CLASSES)
    assert ds.name == "graded-2"


def test_load_dataset_knows_the_graded_kind():
    assert DATASET_KINDS["graded"] is graded
    ds = load_dataset({"kind": "graded", **SMALL, "level": 3})
    assert np.array_equal(ds.train.x, graded(**SMALL, level=3).train.x)
    with pytest.raises(ValueError, match=r"^dataset\.level: 4, must be"):
        load_dataset({"kind": "graded", "level": 4})
    with pytest.raises(ValueError, match=r"^dataset\.frames: 6, must be"):
        load_dataset({"kind": "graded", "frames": 6})


@settings(max_examples=15, deadline=None)
@given(level=st.integers(1, 3), frames=st.integers(8, 12), resolution=st.integers(16, 24),
       num_classes=st.integers(2, 10), seed=st.integers(0, 2**31))
def test_any_valid_arguments_give_clips_in_range(level, frames, resolution, num_classes, seed):
    ds = graded(num_classes=num_classes, clips_per_class=2, frames=frames, resolution=resolution, level=level,
                seed=seed, val_fraction=0.5)
    assert ds.train.x.shape == (num_classes, frames, resolution, resolution, 3)
    assert np.isfinite(ds.train.x).all() and 0.0 <= ds.train.x.min() and ds.train.x.max() <= 1.0


# -- labels live in the motion -------------------------------------------------------------------


def _wrap(d, period):
    return (d + period / 2) % period - period / 2


def _actor_track(x: np.ndarray):
    """Per clip and frame: the actor's centroid on the torus, found as its saturated pixels."""
    n, t, h, w, _ = x.shape
    sat = x.max(-1) - x.min(-1)
    weight = np.clip((sat - 0.45) / 0.2, 0, 1) + 1e-6
    cx = np.angle((weight * np.exp(2j * np.pi * np.arange(w) / w)).sum((-2, -1))) * w / (2 * np.pi)
    cy = np.angle((weight * np.exp(2j * np.pi * np.arange(h) / h)[:, None]).sum((-2, -1))) * h / (2 * np.pi)
    return cx, cy, np.log(weight.sum((-2, -1)))


@pytest.fixture(scope="module")
def level1():
    return graded(clips_per_class=48, frames=12, resolution=32, level=1, seed=5, val_fraction=0.5)


@pytest.fixture(scope="module")
def level3():
    return graded(clips_per_class=48, frames=12, resolution=32, level=3, seed=5, val_fraction=0.5)


def _frame_features(x: np.ndarray, t: int) -> np.ndarray:
    cx, cy, log_area = (a[:, 0] for a in _actor_track(x[:, t : t + 1]))
    res = x.shape[2]
    circ = [f(2 * np.pi * c / res) for c in (cx, cy) for f in (np.cos, np.sin)]
    colours = [*x[:, t].mean((1, 2)).T, *x[:, t].std((1, 2)).T]
    return np.stack([*circ, log_area, *colours], 1)


def _nearest_mean_accuracy(f_train, y_train, f_test, y_test) -> float:
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-9
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    means = np.stack([f_train[y_train == c].mean(0) for c in range(y_train.max() + 1)])
    return float((((f_test[:, None] - means) ** 2).sum(-1).argmin(1) == y_test).mean())


@pytest.mark.parametrize("t", [0, 6, 11])
@pytest.mark.parametrize("which", ["level1", "level3"])
def test_a_single_frame_predicts_no_better_than_chance(which, t, request):
    ds = request.getfixturevalue(which)
    acc = _nearest_mean_accuracy(_frame_features(ds.train.x, t), ds.train.y, _frame_features(ds.val.x, t), ds.val.y)
    assert acc < 1 / ds.num_classes + 0.08, f"{which} frame {t}: {acc:.2f} vs chance {1 / ds.num_classes:.2f}"


def test_each_pair_differs_in_its_motion(level1):
    """Without camera motion a simple statistic of the actor's track tells each pair apart."""
    ds = level1
    cx, cy, _ = _actor_track(ds.val.x)
    res = ds.resolution
    sx, sy = _wrap(np.diff(cx, axis=1), res), _wrap(np.diff(cy, axis=1), res)
    step = np.hypot(sx, sy)
    heading = np.unwrap(np.arctan2(sy, sx), axis=1)
    late = round(2 / 3 * (ds.frames - 1))
    scores = {
        "right_slow/left_slow": np.median(sx, 1),
        "right_fast/left_fast": np.median(sx, 1),
        "left_fast/left_slow": -np.median(sx, 1) - 0.075 * res,
        "vertical_then_horizontal/horizontal_then_vertical": np.abs(sx).argmax(1) - np.abs(sy).argmax(1) + 0.5,
        "periodic/one_off": np.median(step, 1) - 0.01 * res,
        "turns_right_late/turns_left_late": np.median(_wrap(heading[:, late:] - heading[:, : late - 1].mean(1,
                                                            keepdims=True), 2 * np.pi), 1),
    }
    y = ds.val.y
    for pair, score in scores.items():
        first, second = (ds.class_names.index(name) for name in pair.split("/"))
        keep = (y == first) | (y == second)
        acc = float(((score[keep] > 0) == (y[keep] == first)).mean())
        assert acc >= 0.85, f"{pair}: {acc:.2f}"
