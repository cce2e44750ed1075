"""Read and write video files with OpenCV: whole clips sampled at a stride or frame rate, or one
frame at a time for streaming. Frames come back RGB, float32 in [0, 1].

Sampling starts at the first frame. With `stride` s, frames 0, s, 2s, ... are taken; with `fps` f,
frame ⌊i · source_fps / f⌋ for i = 0, 1, ... (MoViNet samples Kinetics at 5 fps this way). A video
shorter than the clip needs is padded by repeating the last sampled frame. With `resolution` r,
each frame is centre-cropped to a square and resized to r × r (area interpolation when shrinking).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .clips import check_float, check_int

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
_FOURCC = {".avi": "MJPG", ".webm": "VP80"}  # anything else: mp4v (MPEG-4 part 2)


def _cv2():
    import cv2  # imported on first use: `import evaluation.datasets` stays light

    return cv2


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: float = 25) -> Path:
    """Write RGB frames [T, H, W, 3] (uint8, or float in [0, 1]) to `path`: MJPG for .avi, VP8
    for .webm, mp4v otherwise. Both codecs are lossy; odd frame sizes are cropped to even."""
    cv2 = _cv2()
    path = Path(path)
    frames = [np.asarray(f) for f in frames]
    if not frames or any(f.ndim != 3 or f.shape[-1] != 3 or f.shape != frames[0].shape for f in frames):
        raise ValueError(f"{path}: frames must be a non-empty sequence of equal [H, W, 3] RGB images")
    h, w = frames[0].shape[:2]
    code = _FOURCC.get(path.suffix.lower(), "mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*code), float(fps), (w, h))
    if not writer.isOpened():
        raise ValueError(f"{path}: OpenCV cannot write this file with codec {code}")
    try:
        for f in frames:
            if f.dtype != np.uint8:
                f = (np.clip(f, 0, 1) * 255 + 0.5).astype(np.uint8)
            writer.write(np.ascontiguousarray(f[..., ::-1]))
    finally:
        writer.release()
    return path


def open_video(path: str | Path):
    """A `cv2.VideoCapture` on `path`. FileNotFoundError if it does not exist, ValueError if OpenCV
    cannot open it (corrupt, or not a video)."""
    cv2 = _cv2()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such video file")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(f"{path}: cannot be opened as a video (corrupt or unsupported format)")
    return capture


def to_rgb(frame_bgr: np.ndarray, resolution: int | None = None) -> np.ndarray:
    """A decoded BGR uint8 frame as RGB uint8, centre-cropped and resized to `resolution` if given."""
    if resolution is not None:
        cv2 = _cv2()
        h, w = frame_bgr.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        frame_bgr = frame_bgr[top : top + side, left : left + side]
        if side != resolution:
            shrink = side > resolution
            frame_bgr = cv2.resize(
                frame_bgr,
                (resolution, resolution),
                interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
            )
    return np.ascontiguousarray(frame_bgr[..., ::-1])


def to_float(frames_uint8: np.ndarray) -> np.ndarray:
    """uint8 → float32 in [0, 1] (the one conversion, so every path gives identical values)."""
    return frames_uint8.astype(np.float32) / np.float32(255)


def check_sampling(frames, resolution, stride, fps) -> None:
    """ValueError naming the argument if a sampling argument is out of range."""
    if frames is not None:
        check_int(frames, "frames", 1)
    if resolution is not None:
        check_int(resolution, "resolution", 1)
    if stride is not None:
        check_int(stride, "stride", 1)
    if fps is not None:
        check_float(fps, "fps", 0.0, 1e6, lo_open=True)
    if stride is not None and fps is not None:
        raise ValueError(f"fps: {fps} together with stride: {stride}; give one of them, not both")


def frame_step(stride: int | None, fps: float | None, source_fps: float, name: str = "video") -> float:
    """Source frames per sampled frame; ValueError if `fps` is asked of a file with no frame rate."""
    if fps is None:
        return float(stride or 1)
    if not source_fps > 0:
        raise ValueError(f"{name}: the file reports no frame rate, so fps sampling is impossible; use stride")
    return source_fps / fps


def iter_frames(path_or_capture, resolution: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames of a video one at a time, RGB float32 [H, W, 3] in [0, 1], holding only one
    frame in memory. Takes a path (opened now, closed when the iterator ends; FileNotFoundError or
    ValueError raised here) or an open `cv2.VideoCapture` (left open). The iterator raises
    ValueError if no frame at all can be decoded."""
    if resolution is not None:
        check_int(resolution, "resolution", 1)
    if isinstance(path_or_capture, str | Path):
        capture, owned, name = open_video(path_or_capture), True, str(path_or_capture)
    else:
        capture, owned, name = path_or_capture, False, "video capture"
    return _iterate(capture, owned, resolution, name)


def _iterate(capture, owned: bool, resolution: int | None, name: str) -> Iterator[np.ndarray]:
    count = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield to_float(to_rgb(frame, resolution))
    finally:
        if owned:
            capture.release()
    if count == 0:
        raise ValueError(f"{name}: no frame could be decoded (corrupt or empty video)")


def decode_clip(
    path: str | Path,
    frames: int | None = None,
    resolution: int | None = None,
    stride: int | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """The sampled frames of `path` as RGB uint8 [T, H, W, 3]: `frames` of them (padded with the
    last one if the video is short), or all the samples the video holds when `frames` is None."""
    check_sampling(frames, resolution, stride, fps)
    capture = open_video(path)
    out: list[np.ndarray] = []
    try:
        step = frame_step(stride, fps, capture.get(_cv2().CAP_PROP_FPS), str(path))
        index, wanted = 0, 0.0  # next source frame; source position of the next sample
        while (frames is None or len(out) < frames) and capture.grab():
            if int(wanted + 1e-9) == index:  # grab() skips frames cheaply; retrieve() converts one
                ok, raw = capture.retrieve()
                if not ok:
                    break
                frame = to_rgb(raw, resolution)
                while int(wanted + 1e-9) == index and (frames is None or len(out) < frames):
                    out.append(frame)  # a target rate above the source's repeats the frame
                    wanted += step
            index += 1
    finally:
        capture.release()
    if not out:
        raise ValueError(f"{path}: no frame could be decoded (corrupt or empty video)")
    if frames is not None and len(out) < frames:
        out.extend([out[-1]] * (frames - len(out)))
    return np.stack(out)


def read_video(
    path: str | Path,
    frames: int | None = None,
    resolution: int | None = None,
    stride: int | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """Decode a video into RGB float32 [T, H, W, 3] in [0, 1], sampled as the module describes.
    FileNotFoundError for a missing file, ValueError for one that cannot be decoded."""
    return to_float(decode_clip(path, frames, resolution, stride, fps))
