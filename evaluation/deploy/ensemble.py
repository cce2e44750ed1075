"""Temporal ensemble (MoViNet paper, §3.4): two models each see the video at half the frame rate,
offset by one frame (model A frames 0, 2, 4, …, model B frames 1, 3, 5, …); their logits are
averaged (arithmetic mean) and the softmax, if any, is applied to the mean.

Clip models go through `ensemble_logits`; stream models through `StreamEnsemble`, which hands
frames alternately to two stream sessions and so keeps the constant memory of streaming.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def split_frames(video: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames 0, 2, 4, …; frames 1, 3, 5, …) of a batch of clips [B, T, H, W, C]."""
    video = np.asarray(video)
    if video.ndim != 5 or video.shape[1] < 2:
        raise ValueError(f"video: shape {video.shape}, expected [batch, frames >= 2, height, width, channels]")
    return video[:, 0::2], video[:, 1::2]


def ensemble_logits(model_a: Callable, model_b: Callable, video: np.ndarray) -> np.ndarray:
    """Mean of `model_a` on the even frames and `model_b` on the odd frames of `video` [B, T, H, W, 3].

    The models are clip classifiers (a Keras base model, or any callable from a clip batch to
    logits [B, K]); the result is float32 logits [B, K].
    """
    even, odd = split_frames(video)
    a = _logits(model_a(even))
    b = _logits(model_b(odd))
    if a.shape != b.shape:
        raise ValueError(f"ensemble: model A gives logits {a.shape}, model B {b.shape}; they must match")
    return (a + b) / 2


class StreamEnsemble:
    """Two stream sessions fed alternate frames; `logits` is the mean of their latest logits.

    A session is any object with `push(frames [B, t, H, W, 3]) -> logits [B, K]` (such as
    `evaluation.deploy.predict.StreamSession`). Frame i of the video (counted over every `push`) goes to
    session A when i is even, to B when odd. Before B has seen a frame, `logits` is A's alone.
    """

    def __init__(self, session_a, session_b):
        self.sessions = (session_a, session_b)
        self.frames_seen = 0
        self._latest: list[np.ndarray | None] = [None, None]

    def push(self, frames: np.ndarray) -> np.ndarray:
        """Feed a sub-clip [B, t, H, W, 3]; returns the ensemble's logits after it."""
        frames = np.asarray(frames)
        if frames.ndim != 5:
            raise ValueError(f"frames: shape {frames.shape}, expected [batch, t, height, width, channels]")
        first = self.frames_seen % 2  # the session that receives this sub-clip's frame 0
        for offset in (0, 1):
            part = frames[:, offset::2]
            if part.shape[1]:
                who = (first + offset) % 2
                self._latest[who] = _logits(self.sessions[who].push(part))
        self.frames_seen += frames.shape[1]
        return self.logits

    @property
    def logits(self) -> np.ndarray | None:
        seen = [x for x in self._latest if x is not None]
        if not seen:
            return None
        return sum(seen) / len(seen)


def _logits(outputs) -> np.ndarray:
    if isinstance(outputs, dict):
        outputs = outputs["logits"]
    return np.asarray(outputs, dtype=np.float32)
