"""Results of a study: the trial record (`record`), reading storages (`storage`), studies as
DataFrames (`frames`), Pareto fronts and hypervolume (`pareto`), figures (`plots`) and the report.
"""

from __future__ import annotations

from evaluation.lazy import exports

# public name -> module that defines it (imported on first use)
_EXPORTS = {
    "load_results": "frames",
    "load_study": "storage",
    "ResultsError": "storage",
    "Outcome": "record",
    "read_trial": "record",
    "pareto_front": "pareto",
    "pareto_mask": "pareto",
    "hypervolume": "pareto",
    "hypervolume_history": "pareto",
    "best_trial": "pareto",
    "default_reference_point": "pareto",
    "plot_tradeoff": "plots",
    "plot_hypervolume_history": "plots",
    "plot_param_importances": "plots",
    "plot_architecture": "plots",
    "param_importances": "plots",
    "write_report": "report",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
