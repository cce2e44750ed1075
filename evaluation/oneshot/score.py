"""Scoring sub-networks of a trained supernet: BN recalibration, then validation accuracy and loss.

The shared BatchNorm statistics fit no particular sub-network, so every candidate first gets its own:
the plain average of batch statistics over `recalibration_clips` training clips (the first ones of a
fixed seeded order, the same for every candidate), computed in training-mode forward passes ("precise
BN"). Then the candidate is evaluated on the validation clips in inference mode.

A maskable candidate (see search_space/supernet_masks.py) runs as masks on the envelope in two traced
functions shared by every candidate (any input size), so scoring costs forward passes only, no
tracing and no model building; any other candidate is extracted and scored as its own model. Both
give the same numbers (tests/test_supernet_train.py).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from evaluation.compat import all_layers, set_untracked
from evaluation.results.record import VAL_ACCURACY, VAL_LOSS


def recalibration_clips(x: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The first `n` training clips of a seeded order (every candidate gets the same ones)."""
    order = np.random.default_rng([seed, 7]).permutation(len(x))
    return x[np.sort(order[: min(n, len(x))])]


class Scorer:
    """Scores sub-networks of `net` (see the module docstring). Leaves `net`'s weights untouched."""

    def __init__(self, net: Any, batch_size: int = 32):
        import keras
        import tensorflow as tf

        self.net, self.batch_size = net, batch_size
        model = net.envelope_model
        self.bns = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
        self.momentum = tf.Variable(0.0, trainable=False, dtype=tf.float32)
        self.stat_vars = [w for w in model.non_trainable_variables if "seed_generator" not in w.path]
        masks_sig = [tf.TensorSpec(w.shape, tf.float32) for w in model.trainable_variables]
        stats_sig = [tf.TensorSpec(w.shape, w.dtype) for w in self.stat_vars]
        x_sig = tf.TensorSpec([None, None, None, None, 3], tf.float32)

        def recal(masks, x, stats):
            return net.masked_forward(masks, x, training=True, stats=stats)[1]

        def logits(masks, x, stats):
            return tf.cast(net.masked_forward(masks, x, training=False, stats=stats)[0], tf.float32)

        self._recal = tf.function(recal, input_signature=[masks_sig, x_sig, stats_sig], autograph=False)
        self._logits = tf.function(logits, input_signature=[masks_sig, x_sig, stats_sig], autograph=False)

    def _precise_bn(self, masks, clips: np.ndarray):
        """Cumulative average of batch statistics: BN momentum (i - 1) / i on batch i."""
        import tensorflow as tf

        saved = [layer.momentum for layer in self.bns]
        for layer in self.bns:
            set_untracked(layer, "momentum", self.momentum)  # read as a variable in the trace
        try:
            stats = [tf.convert_to_tensor(w) for w in self.stat_vars]
            for i, start in enumerate(range(0, len(clips), self.batch_size), start=1):
                self.momentum.assign((i - 1) / i)
                stats = self._recal(masks, clips[start:start + self.batch_size], stats)
        finally:
            for layer, m in zip(self.bns, saved):
                set_untracked(layer, "momentum", m)
        return stats

    def score(self, spec: Any, recal_x: np.ndarray, val_x: np.ndarray, val_y: np.ndarray) -> dict:
        """{val_accuracy, val_loss, seconds} of sub-network `spec` (inputs at `spec`'s own size)."""
        import tensorflow as tf

        t0 = time.perf_counter()
        masks = self.net.masks(spec)
        if masks is None:
            return score_extracted(self.net, spec, recal_x, val_x, val_y, self.batch_size, t0)
        masks = [tf.constant(m) for m in masks]
        stats = self._precise_bn(masks, recal_x.astype(np.float32, copy=False))
        out = [self._logits(masks, val_x[i:i + self.batch_size].astype(np.float32, copy=False), stats).numpy()
               for i in range(0, len(val_x), self.batch_size)]
        return _metrics(np.concatenate(out), val_y, t0)


def _metrics(logits: np.ndarray, y: np.ndarray, t0: float) -> dict:
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-logp[np.arange(len(y)), y].mean())
    acc = float((logits.argmax(axis=1) == y).mean())
    return {VAL_ACCURACY: acc, VAL_LOSS: loss, "seconds": time.perf_counter() - t0}


def score_extracted(net, spec, recal_x, val_x, val_y, batch_size, t0) -> dict:
    """The same score on the extracted model (sub-networks that cannot run as masks)."""
    from evaluation.proxies.train import PreciseBN
    from search_space.supernet import extract

    model = extract(net, spec, stochastic_depth=0.0)
    bn = PreciseBN(model, recal_x.astype(np.float32, copy=False), batch_size, jit=False)
    bn.recalibrate()
    bn.restore()
    logits = np.concatenate([model(val_x[i:i + batch_size].astype(np.float32), training=False).numpy()
                             for i in range(0, len(val_x), batch_size)])
    return _metrics(logits, val_y, t0)


def recalibrated_model(net: Any, spec: Any, train_x: np.ndarray, clips: int, seed: int = 0,
                       batch_size: int = 32, mode: str = "base") -> Any:
    """`extract(net, spec, mode)` with BN statistics recalibrated on `clips` training clips (at
    `spec`'s input size): the model a supernet trial exports, its weights the supernet's, its
    statistics its own. Recalibration runs without drop path."""
    from evaluation.proxies.train import PreciseBN
    from search_space.supernet import copy_weights, extract

    work = extract(net, spec, stochastic_depth=0.0)
    x = recalibration_clips(train_x, clips, seed).astype(np.float32)
    if len(x):
        bn = PreciseBN(work, x, batch_size, jit=False)
        bn.recalibrate()
        bn.restore()
    model = extract(net, spec)
    copy_weights(work, model)
    if mode == "base":
        return model
    stream = extract(net, spec, mode=mode)
    stream.set_weights(model.get_weights())
    return stream


__all__ = ["Scorer", "recalibrated_model", "recalibration_clips", "score_extracted"]
