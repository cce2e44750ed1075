"""Evaluation: datasets, proxy training, zero-cost scores, results, Pareto fronts, plots, reports,
export and video inference.

Names load on first use, so `import evaluation` stays light (TensorFlow, pandas and matplotlib are
imported only by the functions that need them).
"""

from __future__ import annotations

import importlib

# public name -> module that defines it (resolved lazily by __getattr__ below)
_EXPORTS = {
    "load_results": "results",
    "load_study": "results",
    "pareto_front": "pareto",
    "hypervolume": "pareto",
    "hypervolume_history": "pareto",
    "best_trial": "pareto",
    "plot_tradeoff": "plots",
    "plot_hypervolume_history": "plots",
    "plot_param_importances": "plots",
    "plot_architecture": "plots",
    "write_report": "report",
    "parse_proxy": "evaluator",
    "make_scorer": "evaluator",
    "EvalContext": "evaluator",
    "Budget": "proxy",
    "ProxyResult": "proxy",
    "train_proxy": "proxy",
    "zero_cost_scores": "zero_cost",
    "rank_fidelity": "fidelity",
    "kendall_tau": "fidelity",
    "spearman_rho": "fidelity",
    "export_model": "export",
    "load_tflite": "export",
    "ensemble_logits": "ensemble",
    "StreamEnsemble": "ensemble",
    "predict_video": "predict",
    "Prediction": "predict",
    "load_for_inference": "inference",
    "InferenceModel": "inference",
    "StreamSession": "inference",
    "read_labels": "inference",
    "softmax_top_k": "predict",
    "read_manifest": "export",
    "pareto_mask": "pareto",
    "default_reference_point": "pareto",
    "ResultsError": "results",
    "param_importances": "plots",
    "synthetic": "datasets",
    "video_folder": "datasets",
    "load_dataset": "datasets",
    "VideoDataset": "datasets",
    "Clips": "datasets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return __all__
