"""A graded synthetic video task: the ground truth that benchmark tables are trained on.

Ten classes, in five pairs of rising difficulty, each pair telling apart something only a video
network sees: the direction and the speed of a motion, the order of two events more than a
3-frame kernel apart, a periodic against a one-off motion, and trajectories that differ only in
their last frames. `level` (1-3) adds distractors, a global (camera-like) motion of the whole scene
and pixel noise. As in `motion.py`, every single frame has the same distribution for every class
(the frame is a torus, start positions are uniform, angles uniform, sizes log-uniform), so a
single frame tells nothing. See docs/datasets.md ("The graded task").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .clips import Clips, VideoDataset, check_float, check_int, stratified_split
from .motion import (
    SHAPES,
    SIZE,
    blend,
    blend_actors,
    disc_mask,
    distractor_tracks,
    draw_distractors,
    draw_uniform,
    hsv_to_rgb,
    render_scene,
)

# (name, what moves): the first `num_classes` entries are used, in this order.
GRADED_CLASSES: tuple[tuple[str, str], ...] = (
    ("right_slow", "the actor translates rightwards (heading within ±20°), 2.5-4.5 % of the frame per frame"),
    ("left_slow", "the same, leftwards"),
    ("right_fast", "rightwards at 7-11 % of the frame per frame"),
    ("left_fast", "leftwards at 7-11 % of the frame per frame"),
    ("vertical_then_horizontal", "a still actor jumps up or down for one frame, >= 4 frames later left or right"),
    ("horizontal_then_vertical", "the same two events in the other order"),
    ("periodic", "the actor oscillates along a random axis all clip long (period 3.5-5 frames)"),
    ("one_off", "the same oscillation for one period only, at a random time; still otherwise"),
    ("turns_left_late", "the actor travels in a random direction and turns 90° left in the last third"),
    ("turns_right_late", "the same, turning right"),
)
MAX_GRADED_CLASSES = len(GRADED_CLASSES)


@dataclass(frozen=True)
class Level:
    """How hard the nuisances make the task: pixel noise (sd), grey distractor discs per clip and the
    largest camera speed (fraction of the frame per frame; each clip pans at a uniform speed in
    [0, camera] in a uniform direction, the background texture, the distractors and the actor with it)."""

    noise: float
    distractors: int
    camera: float


LEVELS = {1: Level(0.03, 1, 0.0), 2: Level(0.06, 2, 0.03), 3: Level(0.10, 3, 0.06)}

SLOW, FAST = (0.025, 0.045), (0.07, 0.11)  # translation speeds, fraction of the frame per frame
JITTER = np.deg2rad(20.0)
HOP = (0.10, 0.18)  # jump distance of an event, fraction of the frame
ORDER_GAP = 4  # frames between the two events at least: more than one 3-frame kernel spans
OSC_AMPLITUDE, OSC_PERIOD = (0.06, 0.10), (3.5, 5.0)
TURN_SPEED = (0.04, 0.08)
TURN_AT = 2 / 3  # the turn happens at frame round(TURN_AT * (frames - 1))
TEXTURE = 0.08  # amplitude of each of the background's three periodic texture waves
# distractors: motion.py's (`draw_distractors`)


def graded(
    num_classes: int = MAX_GRADED_CLASSES,
    clips_per_class: int = 64,
    frames: int = 12,
    resolution: int = 32,
    level: int = 2,
    seed: int = 0,
    val_fraction: float = 0.25,
) -> VideoDataset:
    """Generate the graded task: `clips_per_class` clips of each of the first `num_classes` classes
    of `GRADED_CLASSES` at difficulty `level` (`LEVELS`), split per class into train and validation.
    The same arguments give bit-identical arrays; another `seed` gives other clips."""
    num_classes = check_int(num_classes, "num_classes", 2, MAX_GRADED_CLASSES)
    clips_per_class = check_int(clips_per_class, "clips_per_class", 2)
    frames = check_int(frames, "frames", 8)
    resolution = check_int(resolution, "resolution", 16)
    level = check_int(level, "level", 1, max(LEVELS))
    seed = check_int(seed, "seed", 0)
    val_fraction = check_float(val_fraction, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), clips_per_class)
    train, val = stratified_split(labels, val_fraction, seed)
    y = labels[np.concatenate([train, val])].astype(np.int32)
    x = render_graded(y, frames, resolution, LEVELS[level], rng)
    n = len(train)
    return VideoDataset(
        name=f"graded-{level}",
        class_names=tuple(name for name, _ in GRADED_CLASSES[:num_classes]),
        train=Clips(x[:n], y[:n]),
        val=Clips(x[n:], y[n:]),
        frames=frames,
        resolution=resolution,
    )


def render_graded(labels: np.ndarray, frames: int, res: int, level: Level, rng: np.random.Generator) -> np.ndarray:
    """Clips [N, T, H, W, 3] float32 in [0, 1] for class indices `labels`, drawing from `rng`."""
    return render_scene(_scene(labels, frames, res, level, rng), res, _render_chunk, level.noise, rng)


def _scene(labels: np.ndarray, frames: int, res: int, level: Level, rng: np.random.Generator) -> dict:
    """Per-clip, per-frame actor state, camera track, colours and distractor tracks. Every clip
    draws the same random numbers in the same order whatever its class."""
    n, t = len(labels), np.arange(frames, dtype=np.float64)
    d = _draws(n, frames, res, level, rng)
    others = draw_distractors(rng, n, level.distractors, res)
    dx, dy = _actor_path(labels, d, t)
    cam = d["cam_speed"][:, None, None] * np.stack([np.cos(d["cam_heading"]), np.sin(d["cam_heading"])], -1)[:, None] * t[:, None]
    d_track = distractor_tracks(others, t) + cam[:, None]  # [n, D, T, 2]
    f32 = np.float32
    return {
        "cx": (d["x0"][:, None] + dx + cam[..., 0]).astype(f32), "cy": (d["y0"][:, None] + dy + cam[..., 1]).astype(f32),
        "angle": np.repeat(d["angle"][:, None], frames, 1).astype(f32),
        "size": np.repeat(d["size"][:, None], frames, 1).astype(f32),
        "shape": d["shape"], "colour": d["colour"].astype(f32), "background": d["background"].astype(f32),
        "cam": cam.astype(f32), "waves": d["waves"].astype(f32), "wave_phase": d["wave_phase"].astype(f32),
        "wave_amp": d["wave_amp"].astype(f32),
        "d_x": d_track[..., 0].astype(f32), "d_y": d_track[..., 1].astype(f32),
        "d_radius": others["radius"].astype(f32), "d_grey": others["grey"].astype(f32),
    }  # fmt: skip


def _draws(n: int, frames: int, res: int, level: Level, rng: np.random.Generator) -> dict:
    """The actor's, the camera's and the background's random draws of `n` clips, in their fixed order."""
    d = {"x0": rng.uniform(0, res, n), "y0": rng.uniform(0, res, n), "angle": rng.uniform(0, 2 * np.pi, n),
         "size": np.exp(rng.uniform(np.log(SIZE[0] * res), np.log(SIZE[1] * res), n)),
         "shape": rng.integers(0, len(SHAPES), n)}
    d["colour"] = hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.7, 1.0, n), rng.uniform(0.75, 1.0, n))
    d["slow"], d["fast"] = draw_uniform(rng, SLOW, n, res), draw_uniform(rng, FAST, n, res)
    d["jitter"] = rng.uniform(-JITTER, JITTER, n)
    d["hop"] = draw_uniform(rng, HOP, n, res) * rng.choice([-1.0, 1.0], (2, n))  # (vertical, horizontal)
    pairs = np.array([(a, b) for a in range(frames) for b in range(a + ORDER_GAP, frames)])
    d["hop_t"] = pairs[rng.integers(0, len(pairs), n)]
    d["osc_axis"] = rng.uniform(0, 2 * np.pi, n)
    d["osc_amp"] = draw_uniform(rng, OSC_AMPLITUDE, n, res)
    d["osc_period"] = draw_uniform(rng, OSC_PERIOD, n)
    d["osc_phase"] = rng.uniform(0, 2 * np.pi, n)
    d["osc_start"] = rng.uniform(0, 1, n) * (frames - 1 - d["osc_period"])
    d["heading"] = rng.uniform(0, 2 * np.pi, n)
    d["turn_speed"] = draw_uniform(rng, TURN_SPEED, n, res)
    d["cam_speed"] = rng.uniform(0, level.camera * res, n)
    d["cam_heading"] = rng.uniform(0, 2 * np.pi, n)
    d["background"] = hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0, 0.4, n), rng.uniform(0.15, 0.4, n))
    d["waves"] = rng.integers(-3, 4, (n, 3, 2))
    d["waves"][(d["waves"] == 0).all(-1)] = (1, 2)  # no constant wave
    d["wave_phase"] = rng.uniform(0, 2 * np.pi, (n, 3))
    d["wave_amp"] = rng.uniform(-TEXTURE, TEXTURE, (n, 3, 3))  # [clip, wave, channel]
    return d


def _actor_path(labels: np.ndarray, d: dict, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The actor's displacement (dx, dy) [n, T] from its start: how its class moves it."""
    n, frames = len(labels), len(t)
    dx, dy = np.zeros((n, frames)), np.zeros((n, frames))
    is_ = {name: labels == i for i, (name, _) in enumerate(GRADED_CLASSES)}
    jitter, hop, hop_t = d["jitter"], d["hop"], d["hop_t"]
    for name, base, speed in (("right_slow", 0.0, d["slow"]), ("left_slow", np.pi, d["slow"]),
                              ("right_fast", 0.0, d["fast"]), ("left_fast", np.pi, d["fast"])):
        m = is_[name]
        dx[m] = np.outer(speed[m] * np.cos(base + jitter[m]), t)
        dy[m] = np.outer(speed[m] * np.sin(base + jitter[m]), t)
    for name, (vertical_at, horizontal_at) in (("vertical_then_horizontal", (0, 1)),
                                               ("horizontal_then_vertical", (1, 0))):
        rows = np.flatnonzero(is_[name])
        dy[rows, hop_t[rows, vertical_at]] += hop[0, rows]
        dx[rows, hop_t[rows, horizontal_at]] += hop[1, rows]
    period, amp, axis = d["osc_period"], d["osc_amp"], d["osc_axis"]
    for name in ("periodic", "one_off"):
        m = is_[name]
        if name == "periodic":
            wave = np.sin(2 * np.pi * t / period[m, None] + d["osc_phase"][m, None])
        else:  # one period starting at a random time, still before and after
            local = t - d["osc_start"][m, None]
            inside = (local >= 0) & (local <= period[m, None])
            wave = np.where(inside, np.sin(2 * np.pi * local / period[m, None]), 0.0)
        dx[m] = amp[m, None] * np.cos(axis[m, None]) * wave
        dy[m] = amp[m, None] * np.sin(axis[m, None]) * wave
    turn = round(TURN_AT * (frames - 1))
    heading, turn_speed = d["heading"], d["turn_speed"]
    for name, sign in (("turns_left_late", -1.0), ("turns_right_late", 1.0)):  # image y points down
        m = is_[name]
        before, after = np.minimum(t, turn), np.maximum(t - turn, 0)
        h2 = heading[m] + sign * np.pi / 2
        dx[m] = turn_speed[m, None] * (np.outer(np.cos(heading[m]), before) + np.outer(np.cos(h2), after))
        dy[m] = turn_speed[m, None] * (np.outer(np.sin(heading[m]), before) + np.outer(np.sin(h2), after))
    return dx, dy


def _render_chunk(p: dict, res: int, dest: np.ndarray) -> None:
    """Background (moving with the camera), distractors and actor of a chunk of clips into `dest`.

    The background texture is three plane waves with integer wave numbers, so it tiles the torus
    and a camera shift by any sub-pixel amount is exact; composition runs on planar frames."""
    k, frames = p["cx"].shape
    grid = np.arange(res, dtype=np.float32)
    out = np.empty((k, frames, 3, res, res), np.float32)
    out[:] = p["background"][:, None, :, None, None]
    two_pi = np.float32(2 * np.pi / res)
    for w in range(p["waves"].shape[1]):
        kx, ky = p["waves"][:, w, 0, None, None], p["waves"][:, w, 1, None, None]  # [k, 1, 1]
        ax = two_pi * kx * (grid - p["cam"][..., 0, None]) + p["wave_phase"][:, w, None, None]  # [k, T, W]
        ay = two_pi * ky * (grid - p["cam"][..., 1, None])  # [k, T, H]
        wave = np.cos(ay)[..., :, None] * np.cos(ax)[..., None, :] - np.sin(ay)[..., :, None] * np.sin(ax)[..., None, :]
        out += p["wave_amp"][:, w, None, :, None, None] * wave[:, :, None]

    for d in range(p["d_radius"].shape[1]):
        blend(out, disc_mask(p, d, grid, res), p["d_grey"][:, d, None, None, None, None])

    blend_actors(out, p, grid, res, dest)
