"""Classify videos with a saved or exported MoViNet: a whole clip at once, a stream of frames in
constant memory, or a temporal ensemble of two models (the MoViNet inference pipeline).

`predict_video(model, video)` reads the video (frames RGB in [0, 1], centre-cropped and resized
to the model's resolution as `evaluation.datasets.read_video` does), runs it and returns the
softmax top-k. Models come from `evaluation.deploy.inference.load_for_inference` (re-exported here).
See docs/inference.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from evaluation.deploy.ensemble import StreamEnsemble, ensemble_logits
from evaluation.deploy.inference import (
    DEFAULT_RESOLUTION,
    InferenceModel,
    StreamSession,
    as_inference_model,
    load_for_inference,
    read_labels,
)
from search_space import validate

__all__ = ["InferenceModel", "Prediction", "Sampling", "StreamSession", "Updates", "load_for_inference",
           "predict_video", "raw_frames", "read_labels", "softmax_top_k"]


class Prediction(NamedTuple):
    top_k: list[tuple[str, float]]  # (label, softmax probability), most probable first
    logits: np.ndarray  # float32 [num_classes], before the softmax
    frames_seen: int


# ---------------------------------------------------------------------------------------------
# prediction


@dataclass(frozen=True)
class Sampling:
    """Which frames of a video `predict_video` reads, and at what size: `frames` frames (clip mode
    default: the model's fixed count if it has one, else every frame; stream mode: every frame) at `fps`
    frames per second (default: the video's own rate), at `resolution` pixels (default: the model's)."""

    frames: int | None = None
    fps: float | None = None
    resolution: int | None = None


@dataclass(frozen=True)
class Updates:
    """The running prediction of a stream, passed to `call` every `every` frames."""

    every: int
    call: Callable[[Prediction], None]


def predict_video(
    model: InferenceModel | str | Path | Any,
    video: str | Path | int | np.ndarray | Iterable[np.ndarray],
    *,
    stream: bool = False,
    ensemble: InferenceModel | str | Path | Any | None = None,
    labels: Sequence[str] | str | Path | None = None,
    top_k: int = 5,
    sampling: Sampling | None = None,
    updates: Updates | None = None,
) -> Prediction:
    """Classify `video` with `model` (an `InferenceModel`, a path `load_for_inference` accepts, or a
    Keras model); returns the softmax top-k, the logits and the number of frames used.

    `video`: a file path, a camera index, an array [T, H, W, 3] of RGB frames (uint8, or float in
    [0, 1]), or an iterable of such frames, read as `sampling` says (`Sampling`: frame count, rate and
    size). Clip mode runs the frames at once. `stream=True` feeds one frame at a time through the
    stream model, holding only its states, and passes the running prediction to `updates` (`Updates`)
    every so many frames; the result is the prediction after the last frame. `ensemble`: a second
    model; the two form a temporal ensemble (this model on frames 0, 2, 4, …, the other on 1, 3, 5, …,
    logits averaged).
    """
    sampling = sampling or Sampling()
    _check_positive(top_k=top_k, frames=sampling.frames, every=updates.every if updates is not None else None,
                    resolution=sampling.resolution)
    validate.number(sampling.fps, "fps", 0, lo_open=True, optional=True)
    models = [as_inference_model(m, stream) for m in (model, ensemble) if m is not None]
    first = models[0]
    for m in models[1:]:
        if m.num_classes != first.num_classes:
            raise ValueError(f"ensemble: {first.source} has {first.num_classes} classes, "
                             f"{m.source} has {m.num_classes}")
    names = _label_names(first, labels)
    sampling = replace(sampling, resolution=sampling.resolution or first.resolution or DEFAULT_RESOLUTION)
    if stream:
        for m in models:
            if m.open_stream is None:
                raise ValueError(f"{m.source}: cannot stream: {m.why_no_stream}")
        return _predict_stream(models, video, sampling, updates, lambda z, seen: _prediction(z, names, top_k, seen))
    if first.clip is None:
        raise ValueError(f"{first.source}: cannot classify a clip with this model")
    count = sampling.frames or (first.frames * len(models) if first.frames else None)
    clip = _read_clip(video, count, sampling.fps, sampling.resolution)
    if len(models) == 2:
        logits = ensemble_logits(models[0].clip, models[1].clip, clip[None])
    else:
        logits = np.asarray(first.clip(clip[None]), dtype=np.float32)
    return _prediction(logits[0], names, top_k, len(clip))


def softmax_top_k(logits: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The `k` most probable (label, probability) pairs of one logit vector, best first."""
    z = np.asarray(logits, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [(labels[i], float(p[i])) for i in order]


def _predict_stream(models, video, sampling: Sampling, updates: Updates | None,
                    prediction: Callable[[np.ndarray, int], Prediction]) -> Prediction:
    sessions = [m.open_stream() for m in models]
    runner = sessions[0] if len(sessions) == 1 else StreamEnsemble(*sessions)
    seen = 0
    for frame in _iter_video(video, sampling.resolution, sampling.fps):
        runner.push(frame[None, None])
        seen += 1
        if updates is not None and seen % updates.every == 0:
            updates.call(prediction(runner.logits[0], seen))
        if sampling.frames and seen >= sampling.frames:
            break
    if seen == 0:
        raise ValueError(f"video {_describe(video)}: no frames")
    return prediction(runner.logits[0], seen)


def _prediction(logits: np.ndarray, names: list[str], k: int, seen: int) -> Prediction:
    return Prediction(softmax_top_k(logits, names, k), np.asarray(logits, dtype=np.float32), seen)


# ---------------------------------------------------------------------------------------------
# video input


def _read_clip(video, count: int | None, fps: float | None, size: int) -> np.ndarray:
    """The whole clip as float32 [T, size, size, 3]."""
    if isinstance(video, (str, Path)):
        from evaluation.datasets import read_video

        return read_video(video, frames=count, resolution=size, fps=fps)
    frames = list(_iter_video(video, size, fps))
    if not frames:
        raise ValueError(f"video {_describe(video)}: no frames")
    if count:  # as read_video: the first `count`, a short video padded with its last frame
        frames = frames[:count] + [frames[-1]] * (count - len(frames))
    return np.stack(frames)


def _iter_video(video, size: int, fps: float | None) -> Iterator[np.ndarray]:
    """Frames one at a time, RGB float32 [size, size, 3] in [0, 1]; files and cameras at `fps`
    (sampled as `read_video` samples, so clip and stream modes see the same frames)."""
    if isinstance(video, (str, Path, int)):
        import cv2

        from evaluation.datasets.video_io import frame_step, iter_frames, open_video

        if isinstance(video, int):
            capture = cv2.VideoCapture(video)
            if not capture.isOpened():
                raise ValueError(f"camera {video}: cannot be opened")
        else:
            capture = open_video(video)
        try:
            step = frame_step(None, fps, capture.get(cv2.CAP_PROP_FPS), str(video))
            yield from _sample(iter_frames(capture, resolution=size), step)
        finally:
            capture.release()
        return
    if isinstance(video, np.ndarray) and video.ndim != 4:
        raise ValueError(f"video: array of shape {video.shape}, expected [frames, height, width, 3]")
    for frame in video:
        yield _prepare(frame, size)


def _sample(frames: Iterable[np.ndarray], step: float) -> Iterator[np.ndarray]:
    """Source frame ⌊i · step⌋ for i = 0, 1, … (a step below 1 repeats frames)."""
    wanted = 0.0
    for index, frame in enumerate(frames):
        while int(wanted + 1e-9) == index:
            yield frame
            wanted += step


def _prepare(frame: np.ndarray, size: int) -> np.ndarray:
    """An RGB frame (uint8, or float in [0, 1]) as float32 [size, size, 3] in [0, 1], centre-cropped
    and resized as video files are."""
    from evaluation.datasets.video_io import to_float, to_rgb

    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame: shape {frame.shape}, expected [height, width, 3] RGB")
    if frame.dtype != np.uint8:
        frame = frame.astype(np.float32, copy=False)
    frame = to_rgb(frame[..., ::-1], size)  # to_rgb takes OpenCV's BGR order
    return to_float(frame) if frame.dtype == np.uint8 else frame


def raw_frames(stream, width: int, height: int) -> Iterator[np.ndarray]:
    """Frames from a byte stream of raw RGB uint8 frames, `height` × `width` × 3 bytes each."""
    size = width * height * 3
    while True:
        data = stream.read(size)
        while data and len(data) < size:  # pipes may return short reads
            more = stream.read(size - len(data))
            if not more:
                break
            data += more
        if not data:
            return
        if len(data) < size:
            raise ValueError(f"stdin: {len(data)} trailing bytes, not a whole {width}x{height}x3 RGB frame "
                             f"({size} bytes)")
        yield np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def _describe(video) -> str:
    return str(video) if isinstance(video, (str, Path, int)) else type(video).__name__


def _label_names(model: InferenceModel, labels) -> list[str]:
    if labels is None:
        return model.labels or [f"class_{i}" for i in range(model.num_classes)]
    if isinstance(labels, (str, Path)):
        return read_labels(labels, model.num_classes)
    labels = [str(x) for x in labels]
    if len(labels) != model.num_classes:
        raise ValueError(f"labels: {len(labels)} given, but the model has {model.num_classes} classes")
    return labels


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        validate.integer(value, name, optional=True)
