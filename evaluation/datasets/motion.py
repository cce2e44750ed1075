"""A built-in video dataset whose classes differ only in motion.

Every clip shows one coloured, elongated shape (the actor) on a dark textured background, with
optional grey discs drifting past (distractors) and gaussian pixel noise. The class decides how
the actor's position, angle or size change over time; nothing else depends on the class.

Why a single frame tells nothing: for every class and every frame index the actor's position is
uniform over the frame (the frame is a torus: shapes leaving one edge re-enter at the opposite
one), its angle is uniform over the circle, its size log-uniform over the same range (growing and
shrinking sizes run through that range as a sawtooth), and its shape and colour come from the same
distribution. So the distribution of any one frame is the same for all classes. Classes come in
time-reversed pairs (right/left, clockwise/counter-clockwise, ...): a frame-shuffled clip tells at
most the kind of motion, never its direction. See docs/datasets.md for each class.

Rendering is vectorised over clips and frames: each shape is a signed-distance function evaluated
on the pixel grid with broadcasting, a few whole-array operations per frame.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .clips import Clips, VideoDataset, check_float, check_int, stratified_split

# (name, what moves): the first `num_classes` entries are used, in this order.
SYNTHETIC_CLASSES: tuple[tuple[str, str], ...] = (
    ("right", "the shape translates rightwards (heading within ±20° of the x axis)"),
    ("left", "the shape translates leftwards"),
    ("clockwise", "the shape spins clockwise about its centre"),
    ("counterclockwise", "the shape spins counter-clockwise about its centre"),
    ("approaching", "the shape grows (a sawtooth: from the largest size it restarts at the smallest)"),
    ("receding", "the shape shrinks (from the smallest size it restarts at the largest)"),
    ("vertical_hop_first", "a still shape hops up or down for one frame, later left or right for one"),
    ("horizontal_hop_first", "a still shape hops left or right for one frame, later up or down for one"),
    ("up", "the shape translates upwards"),
    ("down", "the shape translates downwards"),
    ("out_and_back", "the shape travels left or right and returns, over the positions of a one-way clip"),
)
MAX_CLASSES = len(SYNTHETIC_CLASSES)

SIZE = (0.10, 0.25)  # half-length of the actor's long axis, fraction of the resolution (log-uniform)
SPEED = (0.05, 0.10)  # translation per frame, fraction of the resolution (1.6-3.2 px at 32 px: at
# 2-5 % small proxy networks needed 3-4 times the epochs before they started telling directions apart)
JITTER = np.deg2rad(20.0)  # heading spread around the class direction
SPIN = (np.deg2rad(10.0), np.deg2rad(20.0))  # rotation per frame
ZOOM = (0.05, 0.10)  # per-frame step through the log-size range, fraction of that range
HOP = (0.08, 0.15)  # hop distance, fraction of the resolution
DISTRACTOR_RADIUS = (0.04, 0.08)
DISTRACTOR_SPEED = (0.0, 0.05)
TEXTURE = 0.06  # amplitude of the static low-frequency background texture

# Actor shapes as (aspect b/a, half-planes (n_u, n_v, offset/a)); None = ellipse. Every shape is
# elongated so that its rotation is visible and its second moments give its orientation.
_TRI_NORM = float(np.hypot(0.5, 1.8))
SHAPES: tuple[tuple[str, float, tuple[tuple[float, float, float], ...] | None], ...] = (
    ("ellipse", 0.5, None),
    ("bar", 0.35, ((1.0, 0.0, 1.0), (-1.0, 0.0, 1.0), (0.0, 1.0, 0.35), (0.0, -1.0, 0.35))),
    (
        "triangle",  # apex (1.2a, 0), base corners (-0.6a, ±0.5a): centroid at the origin
        0.5,
        (
            (-1.0, 0.0, 0.6),
            (0.5 / _TRI_NORM, 1.8 / _TRI_NORM, 0.6 / _TRI_NORM),
            (0.5 / _TRI_NORM, -1.8 / _TRI_NORM, 0.6 / _TRI_NORM),
        ),
    ),
)

_NOISE_BANK = 1 << 20  # floats of gaussian noise drawn per call at most (see noise_offsets)
_CHUNK_PIXELS = 1 << 16  # pixels per rendering chunk: keeps the working set in cache


def synthetic(
    num_classes: int = 6,
    clips_per_class: int = 32,
    frames: int = 8,
    resolution: int = 64,
    noise: float = 0.05,
    distractors: int = 1,
    seed: int = 0,
    val_fraction: float = 0.25,
) -> VideoDataset:
    """Generate the synthetic motion dataset: `clips_per_class` clips of each of the first
    `num_classes` classes of `SYNTHETIC_CLASSES`, split per class into train and validation.

    `noise` is the standard deviation of gaussian pixel noise, `distractors` the number of grey
    discs per clip moving in random directions. The same arguments give bit-identical arrays (on
    a given machine and numpy version); another `seed` gives other clips.
    """
    num_classes = check_int(num_classes, "num_classes", 2, MAX_CLASSES)
    clips_per_class = check_int(clips_per_class, "clips_per_class", 2)
    frames = check_int(frames, "frames", 3)
    resolution = check_int(resolution, "resolution", 16)
    noise = check_float(noise, "noise", 0.0, 1.0)
    distractors = check_int(distractors, "distractors", 0, 16)
    seed = check_int(seed, "seed", 0)
    val_fraction = check_float(val_fraction, "val_fraction", 0.0, 1.0, lo_open=True, hi_open=True)

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes), clips_per_class)
    train, val = stratified_split(labels, val_fraction, seed)
    y = labels[np.concatenate([train, val])].astype(np.int32)  # render in split order: no copies
    x = render(y, frames, resolution, noise, distractors, rng)
    n = len(train)
    return VideoDataset(
        name="synthetic",
        class_names=tuple(name for name, _ in SYNTHETIC_CLASSES[:num_classes]),
        train=Clips(x[:n], y[:n]),
        val=Clips(x[n:], y[n:]),
        frames=frames,
        resolution=resolution,
    )


def render(
    labels: np.ndarray, frames: int, resolution: int, noise: float, distractors: int, rng: np.random.Generator
) -> np.ndarray:
    """Clips [N, T, H, W, 3] float32 in [0, 1] for class indices `labels`, drawing from `rng`."""
    return render_scene(_scene(labels, frames, resolution, distractors, rng), resolution, _render_chunk, noise, rng)


def render_scene(scene: dict, resolution: int, draw: Callable[[dict, int, np.ndarray], None], noise: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Clips [N, T, H, W, 3] float32 in [0, 1] of a drawn `scene` ({name: per-clip array}; `cx`: [N, T]):
    `draw(part of the scene, resolution, dest)` renders chunks of clips into `dest`, then gaussian
    noise of std `noise` (drawn from `rng`) is added and the pixels clipped."""
    n, frames = scene["cx"].shape
    frame_size = resolution * resolution * 3
    if noise > 0:
        bank_size = min(n * frames * frame_size, _NOISE_BANK)
        bank = rng.standard_normal(bank_size, dtype=np.float32) * np.float32(noise)
        offsets = noise_offsets(n * frames, frame_size, bank_size, rng)
    out = np.empty((n, frames, resolution, resolution, 3), np.float32)
    step = max(1, _CHUNK_PIXELS // (frames * resolution * resolution))
    for s in range(0, n, step):
        part = out[s : s + step]
        draw({k: v[s : s + step] for k, v in scene.items()}, resolution, part)
        if noise > 0:
            flat = part.reshape(-1, frame_size)
            for i, o in enumerate(offsets[s * frames : s * frames + len(flat)]):
                flat[i] += bank[o : o + frame_size]
        np.clip(part, 0.0, 1.0, out=part)
    return out


def noise_offsets(count: int, size: int, bank_size: int, rng: np.random.Generator) -> np.ndarray:
    """Where each frame's noise starts in the bank. Small requests get disjoint, i.i.d. noise; larger
    ones read each frame at a random offset of a bank of 1M gaussians (drawing fresh ones costs
    ~10 ns each here, as much as rendering), so within a frame the noise is still i.i.d."""
    if count * size <= bank_size:
        return np.arange(count) * size
    return rng.integers(0, bank_size - size + 1, count)


def draw_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int, scale: float = 1.0) -> np.ndarray:
    return rng.uniform(bounds[0] * scale, bounds[1] * scale, n)


def _scene(labels: np.ndarray, frames: int, res: int, distractors: int, rng: np.random.Generator) -> dict:
    """Per-clip, per-frame actor state, colours and distractor tracks. All random draws happen here,
    for every clip in the same order whatever its class, so that results do not depend on chunking."""
    n, t = len(labels), np.arange(frames)
    d = _draws(n, frames, res, rng)
    others = draw_distractors(rng, n, distractors, res)
    cx, cy, angle, size = _actor_track(labels, d, t, res)
    d_track = distractor_tracks(others, t)  # [n, D, T, 2]
    f32 = np.float32
    return {
        "cx": cx.astype(f32), "cy": cy.astype(f32), "angle": angle.astype(f32), "size": size.astype(f32),
        "shape": d["shape"], "colour": d["colour"].astype(f32),
        "background": d["background"].astype(f32), "texture": d["texture"].astype(f32),
        "d_x": d_track[..., 0].astype(f32), "d_y": d_track[..., 1].astype(f32),
        "d_radius": others["radius"].astype(f32), "d_grey": others["grey"].astype(f32),
    }  # fmt: skip


def _draws(n: int, frames: int, res: int, rng: np.random.Generator) -> dict:
    """The actor's and the background's random draws of `n` clips, in their fixed order."""
    d = {"x0": rng.uniform(0, res, n), "y0": rng.uniform(0, res, n), "angle0": rng.uniform(0, 2 * np.pi, n),
         "size_phase": rng.uniform(0, 1, n), "shape": rng.integers(0, len(SHAPES), n)}
    d["colour"] = hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0.7, 1.0, n), rng.uniform(0.75, 1.0, n))
    d["speed"] = draw_uniform(rng, SPEED, n, res)
    d["jitter"] = rng.uniform(-JITTER, JITTER, n)
    d["spin"] = draw_uniform(rng, SPIN, n)
    d["zoom"] = draw_uniform(rng, ZOOM, n)
    d["hop"] = draw_uniform(rng, HOP, n, res) * rng.choice([-1.0, 1.0], (2, n))  # (vertical, horizontal)
    pairs = np.array([(a, b) for a in range(frames) for b in range(a + 2, frames)])
    d["hop_t"] = pairs[rng.integers(0, len(pairs), n)]  # (first, second) hop frames, gap >= 2
    d["back_dir"] = rng.choice([0.0, np.pi], n)
    d["back_reverse"] = rng.integers(0, 2, n).astype(bool)
    d["background"] = hsv_to_rgb(rng.uniform(0, 1, n), rng.uniform(0, 0.4, n), rng.uniform(0.1, 0.4, n))
    d["texture"] = rng.uniform(-TEXTURE, TEXTURE, (n, 4, 4, 3))
    return d


def _actor_track(labels: np.ndarray, d: dict, t: np.ndarray, res: int) -> tuple[np.ndarray, ...]:
    """The actor's centre x, y, angle and size [n, T] of each clip: how its class moves it."""
    frames = len(t)
    cx = np.repeat(d["x0"][:, None], frames, 1)
    cy = np.repeat(d["y0"][:, None], frames, 1)
    angle = np.repeat(d["angle0"][:, None], frames, 1)
    phase = np.repeat(d["size_phase"][:, None], frames, 1)
    speed, jitter, hop, hop_t = d["speed"], d["jitter"], d["hop"], d["hop_t"]
    is_ = {name: labels == i for i, (name, _) in enumerate(SYNTHETIC_CLASSES)}
    for name, base in (("right", 0.0), ("left", np.pi), ("up", -np.pi / 2), ("down", np.pi / 2)):
        m = is_[name]  # image y points down, so "up" heads towards -y
        heading = base + jitter[m]
        cx[m] += np.outer(speed[m] * np.cos(heading), t)
        cy[m] += np.outer(speed[m] * np.sin(heading), t)
    m = is_["out_and_back"]
    if m.any():  # out on the even steps, back on the odd ones: the same positions as a one-way clip
        order = np.concatenate([t[::2], t[1::2][::-1]])
        steps = np.where(d["back_reverse"][m, None], order[::-1], order)
        heading = d["back_dir"][m] + jitter[m]
        cx[m] += speed[m, None] * np.cos(heading)[:, None] * steps
        cy[m] += speed[m, None] * np.sin(heading)[:, None] * steps
    angle[is_["clockwise"]] += np.outer(d["spin"][is_["clockwise"]], t)  # angles grow clockwise on screen
    angle[is_["counterclockwise"]] -= np.outer(d["spin"][is_["counterclockwise"]], t)
    phase[is_["approaching"]] += np.outer(d["zoom"][is_["approaching"]], t)
    phase[is_["receding"]] -= np.outer(d["zoom"][is_["receding"]], t)
    for name, (vertical_at, horizontal_at) in (("vertical_hop_first", (0, 1)), ("horizontal_hop_first", (1, 0))):
        rows = np.flatnonzero(is_[name])
        cy[rows, hop_t[rows, vertical_at]] += hop[0, rows]
        cx[rows, hop_t[rows, horizontal_at]] += hop[1, rows]
    log_lo, log_hi = np.log(SIZE[0] * res), np.log(SIZE[1] * res)
    return cx, cy, angle, np.exp(log_lo + np.mod(phase, 1.0) * (log_hi - log_lo))


def draw_distractors(rng: np.random.Generator, n: int, count: int, res: int) -> dict:
    """Random draws of `count` grey discs drifting past in each of `n` clips (the last draws of a scene)."""
    return {"pos": rng.uniform(0, res, (n, count, 1, 2)), "heading": rng.uniform(0, 2 * np.pi, (n, count)),
            "speed": draw_uniform(rng, DISTRACTOR_SPEED, n * count, res).reshape(n, count),
            "radius": draw_uniform(rng, DISTRACTOR_RADIUS, n * count, res).reshape(n, count),
            "grey": rng.uniform(0.3, 0.8, (n, count))}


def distractor_tracks(d: dict, t: np.ndarray) -> np.ndarray:
    """Positions [n, D, T, 2] of the discs of `draw_distractors` at times `t` (straight lines)."""
    velocity = d["speed"][..., None] * np.stack([np.cos(d["heading"]), np.sin(d["heading"])], -1)  # [n, D, 2]
    return d["pos"] + velocity[:, :, None, :] * t[:, None]


def hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    k = np.mod(np.array([5.0, 3.0, 1.0]) + h[:, None] * 6, 6)
    return v[:, None] - (v * s)[:, None] * np.clip(np.minimum(k, 4 - k), 0, 1)


def _wrap(d: np.ndarray, res: int) -> np.ndarray:
    """Signed shortest distance on a circle of circumference `res` (the frame is a torus)."""
    return np.mod(d + res / 2, res) - np.float32(res / 2)


def blend(out: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """out ← out + mask · (colour − out), in place, on planar frames [k, T, 3, H, W]."""
    tmp = colour - out
    tmp *= mask[:, :, None]
    out += tmp


def _render_chunk(p: dict, res: int, dest: np.ndarray) -> None:
    """Draw background, distractors and actor for a chunk of clips into `dest` [k, T, H, W, 3].

    Layers are composed on planar frames [k, T, 3, H, W] (blending then runs along whole rows, ~3×
    faster than with 3 channels last); the last blend writes its result into `dest` directly."""
    k, frames = p["cx"].shape
    grid = np.arange(res, dtype=np.float32)  # pixel centres
    ramp = np.clip(1 - np.abs(np.linspace(0, 3, res)[:, None] - np.arange(4)), 0, 1).astype(np.float32)
    texture = ramp @ p["texture"].transpose(0, 3, 1, 2) @ ramp.T  # [k, 3, H, W], bilinear upsampling
    background = (texture + p["background"][:, :, None, None])[:, None]  # [k, 1, 3, H, W]
    out = np.empty((k, frames, 3, res, res), np.float32)
    if p["d_radius"].shape[1] == 0:
        out[:] = background

    for d in range(p["d_radius"].shape[1]):
        mask = disc_mask(p, d, grid, res)
        grey = p["d_grey"][:, d, None, None, None, None]
        if d == 0:  # out = background + mask · (grey − background): one pass fewer than fill + blend
            np.multiply(mask[:, :, None], grey - background, out=out)
            out += background
        else:
            blend(out, mask, grey)

    blend_actors(out, p, grid, res, dest)


def disc_mask(p: dict, d: int, grid: np.ndarray, res: int) -> np.ndarray:
    """Soft mask [k, T, H, W] of distractor disc `d` (a soft edge about 1 px wide)."""
    dx = _wrap(grid - p["d_x"][:, d, :, None], res)  # [k, T, W]
    dy = _wrap(grid - p["d_y"][:, d, :, None], res)  # [k, T, H]
    r = p["d_radius"][:, d, None, None, None]
    mask = (dx * dx)[..., None, :] + (dy * dy)[..., :, None]  # squared distance q
    mask *= -0.5 / r  # (r² − q) / 2r + ½ ≈ distance inside the edge + ½
    mask += r / 2 + 0.5
    return np.clip(mask, 0, 1, out=mask)


def blend_actors(out: np.ndarray, p: dict, grid: np.ndarray, res: int, dest: np.ndarray) -> None:
    """Blend each clip's actor (shape `p["shape"]`, colour, pose per frame) over the planar frames
    `out` [k, T, 3, H, W], writing the result channels-last into `dest` [k, T, H, W, 3]."""
    k, frames = p["cx"].shape
    mask = np.empty((k, frames, res, res), np.float32)
    for s, (_, aspect, planes) in enumerate(SHAPES):
        rows = np.flatnonzero(p["shape"] == s)
        if len(rows):
            dx = _wrap(grid - p["cx"][rows, :, None], res)
            dy = _wrap(grid - p["cy"][rows, :, None], res)
            mask[rows] = _shape_mask(dx, dy, p["angle"][rows], p["size"][rows], aspect, planes)
    tmp = p["colour"][:, None, :, None, None] - out
    tmp *= mask[:, :, None]
    np.add(out, tmp, out=dest.transpose(0, 1, 4, 2, 3))  # the blend, written channels-last


def _shape_mask(dx, dy, angle, a, aspect, planes) -> np.ndarray:
    """Soft mask [k, T, H, W] of a shape with long half-axis `a` [k, T] turned by `angle` [k, T].

    Local coordinates u = cos·dx + sin·dy, v = −sin·dx + cos·dy are linear in dx and dy, so every
    term is a row vector plus a column vector: one broadcast add per term on the full grid.
    """
    cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]
    a3 = a[..., None]
    if planes is None:  # ellipse: q = (u/a)² + (v/b)²
        b3 = a3 * aspect
        u = (cos / a3 * dx)[..., None, :] + (sin / a3 * dy)[..., :, None]
        v = (-sin / b3 * dx)[..., None, :] + (cos / b3 * dy)[..., :, None]
        u *= u
        v *= v
        u += v  # q
        soft = np.sqrt(a3 * b3)[..., None] / 2  # (1 − q)·r/2 ≈ distance inside the edge, in pixels
        u *= -soft
        u += soft + 0.5
        return np.clip(u, 0, 1, out=u)
    sdf = None
    for n_u, n_v, offset in planes:  # signed distance to each edge; inside where all are negative
        row = (n_u * cos - n_v * sin) * dx  # [k, T, W]
        col = (n_u * sin + n_v * cos) * dy - offset * a3  # [k, T, H]
        h = row[..., None, :] + col[..., :, None]
        sdf = h if sdf is None else np.maximum(sdf, h, out=sdf)
    np.subtract(0.5, sdf, out=sdf)
    return np.clip(sdf, 0, 1, out=sdf)
