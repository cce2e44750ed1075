"""The synthetic motion dataset: determinism, layout, balance, and the claim it exists for: labels
live in the motion, not in any single frame (nor in an unordered bag of frames within a pair)."""

import subprocess
import sys

import numpy as np
import pytest

from evaluation.datasets import DATASET_KINDS, SYNTHETIC_CLASSES, VideoDataset, load_dataset, synthetic

SMALL = dict(num_classes=4, clips_per_class=4, frames=8, resolution=32)


def test_same_seed_gives_bit_identical_clips():
    a, b = synthetic(**SMALL, seed=7), synthetic(**SMALL, seed=7)
    for part in ("train", "val"):
        assert np.array_equal(getattr(a, part).x, getattr(b, part).x)
        assert np.array_equal(getattr(a, part).y, getattr(b, part).y)


def test_other_seed_gives_other_clips():
    a, b = synthetic(**SMALL, seed=0), synthetic(**SMALL, seed=1)
    assert not np.array_equal(a.train.x, b.train.x)


def test_shapes_dtypes_range_and_names():
    ds = synthetic(**SMALL, val_fraction=0.25)
    assert isinstance(ds, VideoDataset)
    assert ds.train.x.shape == (12, 8, 32, 32, 3) and ds.val.x.shape == (4, 8, 32, 32, 3)
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int32
    assert 0.0 <= ds.train.x.min() and ds.train.x.max() <= 1.0
    assert ds.class_names == ("right", "left", "clockwise", "counterclockwise")
    assert ds.num_classes == 4 and ds.frames == 8 and ds.resolution == 32 and ds.skipped == ()
    assert {ds: "usable as a cache key"}[ds]  # compared and hashed by identity


def test_classes_are_balanced_in_train_and_val():
    ds = synthetic(num_classes=6, clips_per_class=8, frames=4, resolution=16, val_fraction=0.25)
    assert np.bincount(ds.train.y, minlength=6).tolist() == [6] * 6
    assert np.bincount(ds.val.y, minlength=6).tolist() == [2] * 6


def test_noise_and_distractors_change_the_clips_but_not_the_labels():
    plain = synthetic(**SMALL, noise=0.0, distractors=0)
    busy = synthetic(**SMALL, noise=0.2, distractors=3)
    assert np.array_equal(plain.train.y, busy.train.y)
    assert np.abs(busy.train.x - plain.train.x).mean() > 0.05


@pytest.mark.parametrize("num_classes", [1, len(SYNTHETIC_CLASSES) + 1])
def test_num_classes_out_of_range_names_the_range(num_classes):
    with pytest.raises(
        ValueError, match=rf"num_classes: {num_classes}, must be an integer in \[2, {len(SYNTHETIC_CLASSES)}\]"
    ):
        synthetic(num_classes=num_classes)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="clips_per_class"):
        synthetic(clips_per_class=1)
    with pytest.raises(ValueError, match="noise"):
        synthetic(noise=-0.1)
    with pytest.raises(ValueError, match="val_fraction"):
        synthetic(val_fraction=1.0)
    with pytest.raises(ValueError, match="frames: 8.0, must be an integer"):
        synthetic(frames=8.0)


def test_import_does_not_load_tensorflow_or_opencv():
    code = "import sys, evaluation.datasets; print('tensorflow' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- labels live in the motion -------------------------------------------------------------------


def _actor_track(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per clip and frame: centroid (x, y) on the torus, orientation (mod π) and log area of the
    actor, found as the saturated pixels (background and distractors are nearly grey)."""
    n, t, h, w, _ = x.shape
    sat = x.max(-1) - x.min(-1)
    sat = (sat + sum(np.roll(sat, s, axis) for s in (-1, 1) for axis in (-2, -1))) / 5  # less noisy
    weight = np.clip((sat - 0.3) / 0.2, 0, 1) + 1e-6
    cx = np.angle((weight * np.exp(2j * np.pi * np.arange(w) / w)).sum((-2, -1))) * w / (2 * np.pi)
    cy = np.angle((weight * np.exp(2j * np.pi * np.arange(h) / h)[:, None]).sum((-2, -1))) * h / (2 * np.pi)
    dx = _wrap(np.arange(w) - cx[..., None], w)[..., None, :]
    dy = _wrap(np.arange(h) - cy[..., None], h)[..., :, None]
    area = weight.sum((-2, -1))
    mxx, myy, mxy = ((weight * m).sum((-2, -1)) / area for m in (dx * dx, dy * dy, dx * dy))
    return cx, cy, 0.5 * np.arctan2(2 * mxy, mxx - myy), np.log(area)


def _wrap(d, period):
    return (d + period / 2) % period - period / 2


def _frame_features(x: np.ndarray, t: int) -> np.ndarray:
    """What one frame shows: where the actor is, its orientation and size, the frame's colours."""
    cx, cy, theta, log_area = (a[:, 0] for a in _actor_track(x[:, t : t + 1]))
    res = x.shape[2]
    circ = [f(2 * np.pi * c / res) for c in (cx, cy) for f in (np.cos, np.sin)]
    colours = [*x[:, t].mean((1, 2)).T, *x[:, t].std((1, 2)).T]
    return np.stack([*circ, np.cos(2 * theta), np.sin(2 * theta), log_area, *colours], 1)


def _nearest_mean_accuracy(f_train, y_train, f_test, y_test) -> float:
    mu, sd = f_train.mean(0), f_train.std(0) + 1e-9
    f_train, f_test = (f_train - mu) / sd, (f_test - mu) / sd
    means = np.stack([f_train[y_train == c].mean(0) for c in range(y_train.max() + 1)])
    return float((((f_test[:, None] - means) ** 2).sum(-1).argmin(1) == y_test).mean())


@pytest.fixture(scope="module")
def all_classes():
    return synthetic(
        num_classes=len(SYNTHETIC_CLASSES),
        clips_per_class=48,
        frames=8,
        resolution=32,
        seed=3,
        val_fraction=0.5,
    )


@pytest.mark.parametrize("t", [0, 4, 7])
def test_a_single_frame_predicts_no_better_than_chance(all_classes, t):
    ds = all_classes
    acc = _nearest_mean_accuracy(
        _frame_features(ds.train.x, t), ds.train.y, _frame_features(ds.val.x, t), ds.val.y
    )
    assert acc < 1 / ds.num_classes + 0.1, f"frame {t}: {acc:.2f} vs chance {1 / ds.num_classes:.2f}"


def _motion_scores(x: np.ndarray) -> dict[str, np.ndarray]:
    """One signed motion statistic per class pair, positive for the first class of the pair."""
    cx, cy, theta, log_area = _actor_track(x)
    res = x.shape[2]
    step_x, step_y = _wrap(np.diff(cx, axis=1), res), _wrap(np.diff(cy, axis=1), res)
    return {
        "right/left": np.median(step_x, 1),
        "clockwise/counterclockwise": np.median(_wrap(np.diff(theta, axis=1), np.pi), 1),
        "approaching/receding": np.median(np.diff(log_area, axis=1), 1),
        "vertical_hop_first/horizontal_hop_first": np.abs(step_x).argmax(1) - np.abs(step_y).argmax(1) + 0.5,
        "down/up": np.median(step_y, 1),
    }


def _pair_accuracies(ds: VideoDataset, shuffle: bool) -> dict[str, float]:
    x, y = ds.val.x, ds.val.y
    if shuffle:  # the same frames in a random order, per clip
        rng = np.random.default_rng(0)
        x = np.stack([clip[rng.permutation(len(clip))] for clip in x])
    scores, out = _motion_scores(x), {}
    for pair, score in scores.items():
        first, second = (ds.class_names.index(name) for name in pair.split("/"))
        keep = (y == first) | (y == second)
        out[pair] = float(((score[keep] > 0) == (y[keep] == first)).mean())
    return out


def test_motion_tells_each_pair_apart(all_classes):
    for pair, acc in _pair_accuracies(all_classes, shuffle=False).items():
        assert acc >= 0.9, f"{pair}: {acc:.2f}"


def test_frame_order_carries_the_label_within_each_pair(all_classes):
    for pair, acc in _pair_accuracies(all_classes, shuffle=True).items():
        assert acc <= 0.75, f"{pair}: {acc:.2f} on shuffled frames"


def test_out_and_back_returns_where_one_way_motion_does_not(all_classes):
    ds = all_classes
    cx = _actor_track(ds.val.x)[0]
    steps = _wrap(np.diff(cx, axis=1), ds.resolution)
    returns = np.abs(steps.sum(1)) < 0.5 * np.abs(steps).sum(1)
    for name, expected in (("out_and_back", True), ("right", False), ("left", False)):
        rate = returns[ds.val.y == ds.class_names.index(name)].mean()
        assert (rate >= 0.9) if expected else (rate <= 0.1), f"{name}: {rate:.2f}"


# -- load_dataset --------------------------------------------------------------------------------


def test_load_dataset_maps_a_yaml_dict_onto_synthetic():
    config = {"kind": "synthetic", **SMALL, "noise": 0.05, "seed": 0}
    ds = load_dataset(config)
    assert np.array_equal(ds.train.x, synthetic(**SMALL, noise=0.05, seed=0).train.x)
    assert set(DATASET_KINDS) == {"synthetic", "graded", "video_folder", "split_list", "hmdb51", "kinetics_csv"}


def test_load_dataset_names_a_misspelled_field_and_the_allowed_ones():
    with pytest.raises(
        ValueError, match=r"^dataset\.clips_per_clas: unknown field .*allowed: .*clips_per_class"
    ):
        load_dataset({"kind": "synthetic", "clips_per_clas": 4})


def test_load_dataset_names_the_path_of_a_bad_value_and_kind():
    with pytest.raises(ValueError, match=r"^search\.data\.num_classes: 40, must be an integer in \[2, 11\]"):
        load_dataset({"kind": "synthetic", "num_classes": 40}, where="search.data")
    with pytest.raises(ValueError, match=r"^dataset\.kind: 'kinetics', allowed: synthetic, graded, video_folder"):
        load_dataset({"kind": "kinetics"})
    with pytest.raises(ValueError, match=r"^dataset\.kind: missing"):
        load_dataset({"num_classes": 4})
