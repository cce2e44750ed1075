"""Proxies: cheap scores of a candidate that stand in for its trained accuracy: short training
(`train`), zero-cost scores of an untrained network, the benchmark table's ground truth, rank
fidelity against a reference, and the training `Budget` they share.
"""

from __future__ import annotations

from evaluation.lazy import exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "Budget": "budget",
    "ProxyResult": "train",
    "train_proxy": "train",
    "zero_cost_scores": "zero_cost",
    "rank_fidelity": "fidelity",
    "write_fidelity": "fidelity",
    "kendall_tau": "fidelity",
    "spearman_rho": "fidelity",
    "TableLookup": "table",
    "load_table": "table",
    "PROTOCOL": "table",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
