"""The one-shot supernet: its configuration and checkpoints (`supernet`), the training loop
(`train`), scoring sub-networks with recalibrated BatchNorm (`score`), the `supernet` proxy kind
(`proxy`) and the weights a study's trial inherits for export (`export`).
"""

from __future__ import annotations

from evaluation.lazy import exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "SupernetConfig": "supernet",
    "parse_supernet": "supernet",
    "load_supernet": "supernet",
    "train_supernet": "train",
    "Scorer": "score",
    "SupernetScorer": "proxy",
    "supernet_weights": "export",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
