"""Evaluation: everything that scores, records and ships a candidate, in rooms by job.

- `datasets/`: the built-in synthetic video tasks and folders of real videos, as numpy clips.
- `proxies/`: cheap scores (short training, zero-cost, the benchmark table, rank fidelity).
- `oneshot/`: the weight-sharing supernet: training, scoring sub-networks, its proxy kind and export.
- `results/`: the trial record, storages, DataFrames, Pareto fronts, plots and reports.
- `deploy/`: export (Keras, SavedModel, TFLite), inference on video, ensembles, latency.
- `evaluator`: a config's `proxy:` parsed once, and the one door from it to a scorer.
- `compat`: the one door to dependencies' internals.

Imports point one way (tests/test_layout.py checks it): datasets and results use no other room; proxies
use them; deploy uses proxies; oneshot uses deploy; the evaluator uses them all. Names below load on first use, so `import evaluation` stays
light (TensorFlow, pandas and matplotlib are imported only by the functions that need them).
"""

from __future__ import annotations

from evaluation.lazy import exports

# public name -> module that defines it (resolved lazily by __getattr__ below)
_EXPORTS = {
    "load_results": "results.frames",
    "load_study": "results.storage",
    "pareto_front": "results.pareto",
    "hypervolume": "results.pareto",
    "hypervolume_history": "results.pareto",
    "best_trial": "results.pareto",
    "plot_tradeoff": "results.plots",
    "plot_hypervolume_history": "results.plots",
    "plot_param_importances": "results.plots",
    "plot_architecture": "results.plots",
    "write_report": "results.report",
    "parse_proxy": "evaluator",
    "make_scorer": "evaluator",
    "EvalContext": "evaluator",
    "Budget": "proxies.budget",
    "ProxyResult": "proxies.train",
    "train_proxy": "proxies.train",
    "zero_cost_scores": "proxies.zero_cost",
    "rank_fidelity": "proxies.fidelity",
    "write_fidelity": "proxies.fidelity",
    "kendall_tau": "proxies.fidelity",
    "spearman_rho": "proxies.fidelity",
    "ExportOptions": "deploy.export",
    "export_model": "deploy.export",
    "load_tflite": "deploy.export",
    "ensemble_logits": "deploy.ensemble",
    "StreamEnsemble": "deploy.ensemble",
    "predict_video": "deploy.predict",
    "Prediction": "deploy.predict",
    "load_for_inference": "deploy.inference",
    "InferenceModel": "deploy.inference",
    "StreamSession": "deploy.inference",
    "read_labels": "deploy.inference",
    "softmax_top_k": "deploy.predict",
    "read_manifest": "deploy.export",
    "pareto_mask": "results.pareto",
    "default_reference_point": "results.pareto",
    "ResultsError": "results.storage",
    "param_importances": "results.plots",
    "synthetic": "datasets",
    "video_folder": "datasets",
    "load_dataset": "datasets",
    "VideoDataset": "datasets",
    "Clips": "datasets",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = exports(__name__, _EXPORTS)
