"""Full-integer post-training quantization for `export_model(..., formats=["tflite-int8"])`: the
representative inputs TFLite's converter calibrates its int8 ranges on, and the study's clips
they come from.

Weights and activations are int8 (built-in int8 kernels only); the file's inputs and outputs stay
float32, so it is called exactly like the float file. A stream model is calibrated on the inputs it
really sees: frames of the calibration clips together with the states the float stream model carries
at that frame, each clip streamed from zero states to its end (`frame_samples`). The stream TFLite
graph (`evaluation.deploy.frame_graph`) keeps running *means*, so its states stay in the range of one frame's
however long the stream; only its frame counter grows, and beyond the calibrated length (the
calibration clips' frame count) the int8 file's running means weigh new frames like a mean over that
many frames. Calibrate on clips as long as the videos to stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

CALIBRATION_SAMPLES = 256
"""Representative inputs given to the converter at most (TFLite suggests a few hundred)."""
CALIBRATION_CLIPS = 32
"""Clips of the study's dataset taken for calibration by `calibration_clips`."""


def check_clips(clips, resolution: int) -> np.ndarray:
    """`clips` as float32 [N, T, resolution, resolution, 3] in [0, 1] (frames resized if needed)."""
    x = np.asarray(clips)
    if x.ndim != 5 or x.shape[-1] != 3 or 0 in x.shape:
        raise ValueError(f"representative: clips of shape {x.shape}, expected [clips, frames, height, width, 3]")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32, copy=False)
    if x.shape[2:4] != (resolution, resolution):
        import cv2

        n, t = x.shape[:2]
        frames = [cv2.resize(f, (resolution, resolution), interpolation=cv2.INTER_AREA)
                  for f in x.reshape(-1, *x.shape[2:])]
        x = np.stack(frames).reshape(n, t, resolution, resolution, 3)
    return x


def base_samples(clips: np.ndarray) -> Callable[[], Iterator[dict]]:
    """Representative inputs of a base model: one whole clip a sample."""

    def samples():
        for clip in clips[:CALIBRATION_SAMPLES]:
            yield {"image": clip[None]}

    return samples


def stream_samples(stream_model, states: dict, clips: np.ndarray) -> Callable[[], Iterator[dict]]:
    """Representative inputs of a one-frame stream model: each frame of each clip with the states
    the float `stream_model` holds when it arrives, starting from `states` (zeros) for every clip."""
    from search_space.stream import stream_step

    def samples():
        given = 0
        for clip in clips:
            current = states
            for t in range(clip.shape[0]):
                frame = clip[None, t:t + 1]
                yield {"image": frame, **current}
                given += 1
                if given >= CALIBRATION_SAMPLES:
                    return
                _, new = stream_step(stream_model, frame, current)
                current = {k: np.asarray(v) for k, v in new.items()}

    return samples


def frame_samples(step, states: dict, clips: np.ndarray,
                  limit: int = CALIBRATION_SAMPLES) -> Callable[[], Iterator[dict]]:
    """Representative inputs of a one-frame stream function `step` ({"image", **states} → {**new states}):
    every clip streamed from `states` (zeros) through the float `step` to its last frame, `limit` of its
    (frame, states) inputs given, spread evenly over all clips and frame positions."""
    import tensorflow as tf

    fn = tf.function(step)
    total = clips.shape[0] * clips.shape[1]
    keep = set(np.linspace(0, total - 1, min(limit, total)).round().astype(int).tolist())

    def samples():
        for c, clip in enumerate(clips):
            current = states
            for t in range(clip.shape[0]):
                feed = {"image": clip[None, t:t + 1], **current}
                if c * clips.shape[1] + t in keep:
                    yield feed
                out = fn(feed)
                current = {k: np.asarray(out[k]) for k in states}

    return samples


def calibration_clips(data_config: dict, base_dir: str | Path | None = None,
                      count: int = CALIBRATION_CLIPS) -> np.ndarray:
    """Up to `count` clips of a study's dataset (`load_dataset` config, sizes filled in), validation
    clips first: the representative set of an int8 export."""
    from evaluation.datasets import load_dataset

    data = load_dataset(data_config, base_dir=base_dir if base_dir is not None else Path.cwd())
    clips = data.val.x[:count]
    if len(clips) < count:
        clips = np.concatenate([clips, data.train.x[:count - len(clips)]])
    return clips
