"""Figures of a study (matplotlib, Agg): trade-offs, hypervolume history, parameter importances,
and the block diagram of an architecture. Each function returns the `Figure` and, given `path`,
also saves it as a PNG.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from evaluation.results.frames import COSTS, objectives_of
from evaluation.results.pareto import MAXIMIZED, hypervolume_history, pareto_mask
from evaluation.results.record import (
    BYTE_COLUMNS,
    LATENCY_MS,
    VAL_ACCURACY,
    VAL_LOSS,
    Outcome,
    read_trial,
    usable_mask,
)
from search_space.spec import NUM_CLASSES

LABELS = {
    VAL_ACCURACY: "validation accuracy (proxy)", VAL_LOSS: "validation loss (proxy)",
    "flops": "FLOPs", "macs": "MACs", "params": "parameters", "activation_bytes": "peak activation memory",
    "state_bytes": "stream state memory", LATENCY_MS: "latency (ms, batch 1)",
}
STYLE = {  # how each kind of trial is drawn
    "pareto": dict(marker="o", s=70, color="#d62728", edgecolor="black", zorder=5, label="Pareto-optimal"),
    "feasible": dict(marker="o", s=36, color="#1f77b4", alpha=0.75, zorder=4, label="feasible"),
    "early_stopped": dict(marker="o", s=36, facecolor="none", edgecolor="#7f7f7f", zorder=3,
                          label="stopped early (partial training)"),
    "infeasible": dict(marker="x", s=36, color="#ff7f0e", zorder=3, label="infeasible (not trained: on the x axis)"),
    "failed": dict(marker="v", s=36, color="#404040", zorder=3, label="failed"),
}


def _figure(width: float = 7.0, height: float = 4.6):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save_png(fig, path) -> Path:
    """Save `fig` as a PNG with a 128-colour palette: flat-colour plots lose nothing visible and
    the file (and the report embedding it) is about three times smaller."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi)
    buffer.seek(0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(buffer).convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
    image.save(path, format="PNG", optimize=True)
    return path


def _save(fig, path) -> None:
    if path is not None:
        save_png(fig, path)


def label(column: str) -> str:
    return LABELS.get(column, column.replace("_", " "))


def _format_axis(axis, column: str, minor: bool = False) -> None:
    from matplotlib.ticker import EngFormatter, NullFormatter

    if column in COSTS:
        unit = "B" if column in BYTE_COLUMNS else ""
        axis.set_major_formatter(EngFormatter(unit=unit, sep=" "))
        axis.set_minor_formatter(EngFormatter(unit=unit, sep=" ") if minor else NullFormatter())


def _kinds(df, objectives: Mapping[str, str]) -> dict[str, object]:
    """Rows of each kind of trial (see STYLE)."""
    state = df["state"] if "state" in df else None
    outcome = df["outcome"] if "outcome" in df else None
    usable = usable_mask(df)
    on_front = pareto_mask(df, objectives).to_numpy(dtype=bool) if len(df) else usable & False
    return {
        "pareto": df[on_front],
        "feasible": df[usable & ~on_front],
        "early_stopped": df[(outcome == Outcome.EARLY_STOPPED.value)] if outcome is not None else df.iloc[:0],
        "infeasible": df[df["feasible"].eq(False).fillna(False).astype(bool)] if "feasible" in df else df.iloc[:0],
        "failed": df[state == "FAIL"] if state is not None else df.iloc[:0],
    }


def study_input(df) -> tuple[int, int, int]:
    """(frames, resolution, num_classes) the study's costs are for: the most common input size."""
    def mode(col: str, default: int) -> int:
        values = [int(v) for v in df[col].dropna()] if col in df else []
        return Counter(values).most_common(1)[0][0] if values else default

    return mode("frames", 8), mode("resolution", 172), int(df.attrs.get("num_classes") or NUM_CLASSES)


def preset_costs(df, presets: Sequence[str] = ("a0", "a1", "a2")) -> dict[str, dict]:
    """Analytic costs of MoViNet presets at the study's input size (`study_input`)."""
    from search_space import estimate_cost, movinet

    frames, resolution, classes = study_input(df)
    return {name.upper(): estimate_cost(movinet(name), frames, resolution, classes)._asdict() for name in presets}


def plot_tradeoff(df, x: str = "flops", y: str = VAL_ACCURACY, objectives: Mapping[str, str] | None = None,
                  presets: Sequence[str] = ("a0", "a1", "a2"), path=None, title: str | None = None):
    """`y` against `x` for every trial: Pareto-optimal, feasible, stopped-early, infeasible and
    failed trials drawn differently; trials without a `y` (never trained) along the bottom edge.
    The Pareto front is that of this plane unless `objectives` say otherwise. MoViNet `presets` are
    placed by their analytic costs at the study's input size: as points when `y` is a cost, else as
    vertical lines marked "cost only" (their accuracy on this dataset is unknown).
    """
    for col in (x, y):
        if col not in df:
            raise ValueError(f"plot_tradeoff: no column {col!r} in the results")
    directions = objectives_of(df)
    ydir = directions.get(y) or ("maximize" if y in MAXIMIZED else "minimize")
    objectives = dict(objectives) if objectives else {x: directions.get(x, "minimize"), y: ydir}
    fig = _figure()
    ax = fig.add_subplot()
    kinds = _kinds(df, objectives)
    _draw_trials(ax, kinds, x, y)
    front = kinds["pareto"].sort_values(x)
    if len(front) > 1:
        ax.step(front[x], front[y], where="post" if ydir == "maximize" else "pre", color=STYLE["pareto"]["color"],
                lw=1.2, alpha=0.7, zorder=2)
    for name, n in _numbers(front, x, y):
        ax.annotate(str(n), name, textcoords="offset points", xytext=(5, 5), fontsize=8)
    frames, resolution, _ = study_input(df)
    if presets and x in COSTS:
        _draw_presets(ax, preset_costs(df, presets), x, y)
    xs = _values(df, x, presets if (presets and x in COSTS) else ())
    if len(xs) and xs.min() > 0 and xs.max() / xs.min() > 20:
        from matplotlib.ticker import LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))  # label 2 and 5 between the decades
    _format_axis(ax.xaxis, x, minor=ax.get_xscale() == "log")
    _format_axis(ax.yaxis, y)
    ax.set_xlabel(label(x))
    ax.set_ylabel(label(y))
    ax.grid(True, alpha=0.3)
    where = f"{df.attrs.get('study', 'study')}; presets costed at {frames}×{resolution}²"
    ax.set_title(title or f"{label(y)} vs {label(x)} ({where})", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)
    _save(fig, path)
    return fig


def _bottom(ax):
    """Data x, axes y: a point at y 0 sits on the bottom edge whatever the y range."""
    from matplotlib.transforms import blended_transform_factory

    return blended_transform_factory(ax.transData, ax.transAxes)


def _draw_trials(ax, kinds: dict, x: str, y: str) -> None:
    """Each kind of trial in its `STYLE`; trials without a `y` along the bottom edge."""
    for kind, rows in kinds.items():
        xs, ys = rows[x].to_numpy(dtype=float), rows[y].to_numpy(dtype=float)
        known = np.isfinite(xs) & np.isfinite(ys)
        style = dict(STYLE[kind])
        if known.any():
            ax.scatter(xs[known], ys[known], **style)
            style.pop("label")
        rug = np.isfinite(xs) & ~np.isfinite(ys)
        if rug.any():
            ax.scatter(xs[rug], np.zeros(rug.sum()), transform=_bottom(ax), clip_on=False, **style)


def _draw_presets(ax, costs: dict[str, dict], x: str, y: str) -> None:
    """MoViNet presets by their costs: points when `y` is a cost, else vertical lines ("cost only")."""
    for name, cost in costs.items():
        if y in COSTS:
            ax.scatter([cost[x]], [cost[y]], marker="*", s=140, color="#2ca02c", edgecolor="black", zorder=6)
            ax.annotate(f"MoViNet-{name}", (cost[x], cost[y]), textcoords="offset points", xytext=(6, -10),
                        fontsize=8, color="#1b6e1b")
        else:
            ax.axvline(cost[x], color="#2ca02c", ls="--", lw=1.1, zorder=1)
            ax.text(cost[x], 0.97, f"MoViNet-{name} (cost only) ", transform=_bottom(ax), rotation=90, va="top",
                    ha="right", fontsize=8, color="#1b6e1b")


def _numbers(front, x: str, y: str):
    for _, row in front.iterrows():
        yield (row[x], row[y]), int(row["number"])


def _values(df, x: str, presets) -> np.ndarray:
    values = df[x].to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if len(presets):
        values = np.concatenate([values, [c[x] for c in preset_costs(df, presets).values()]])
    return values


def plot_hypervolume_history(df, objectives: Mapping[str, str] | None = None, reference_point=None, path=None):
    """Hypervolume of the front of the trials so far, against trial number."""
    objectives = dict(objectives or objectives_of(df))
    fig = _figure(7.0, 3.6)
    ax = fig.add_subplot()
    if len(objectives) < 2:
        return _message(fig, ax, "hypervolume needs two or more objectives", path)
    hist = hypervolume_history(df, objectives, reference_point)
    if hist.empty or not (hist["hypervolume"] > 0).any():
        return _message(fig, ax, "no completed feasible trial inside the reference point yet", path)
    ax.step(hist["number"], hist["hypervolume"], where="post", color="#1f77b4")
    gains = hist[hist["hypervolume"].diff().fillna(hist["hypervolume"]) > 0]
    ax.scatter(gains["number"], gains["hypervolume"], s=18, color="#d62728", zorder=3, label="front improved")
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume")
    ax.set_title("hypervolume over trials (" + ", ".join(f"{d[:3]} {c}" for c, d in objectives.items()) + ")",
                 fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    return fig


def param_importances(study, objective: str | None = None) -> dict[str, float]:
    """PED-ANOVA importances (sum 1) of the sampled parameters for one objective (a study
    objective, a cost or a metric; default: the first objective), over COMPLETE trials.
    ValueError when there are too few trials or nothing varies."""
    import optuna

    study = getattr(study, "study", study)  # an OpenedStudy or an optuna Study
    names = [o["name"] for o in study.user_attrs.get("objectives", [])] or list(study.metric_names or [])
    objective = objective or (names[0] if names else None)

    def target(trial) -> float:
        value = read_trial(trial).value(objective, names)
        return value if value is not None else math.nan

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 3:
        raise ValueError(f"parameter importances need at least 3 completed trials, the study has {len(complete)}")
    varying = [p for p in complete[0].params if len({str(t.params.get(p)) for t in complete}) > 1]
    if not varying:
        raise ValueError("no sampled parameter varies among the completed trials")
    sign = -1.0 if _direction(study, objective, names) == "maximize" else 1.0
    # PED-ANOVA (Optuna's own, no scikit-learn): how much each parameter matters for reaching the
    # best `quantile` of trials; Optuna advises at least 5 trials above the quantile
    quantile = min(0.5, max(0.1, 5 / len(complete)))
    evaluator = optuna.importance.PedAnovaImportanceEvaluator(target_quantile=quantile)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(study, evaluator=evaluator, params=varying,
                                                           target=lambda t: sign * target(t))
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"parameter importances: {exc}") from None


def _direction(study, objective: str, names: list[str]) -> str:
    if objective in names:
        return study.directions[names.index(objective)].name.lower()
    return "maximize" if objective in MAXIMIZED else "minimize"


def plot_param_importances(study, objective: str | None = None, path=None, top: int = 15):
    """Horizontal bars of `param_importances` (the `top` largest); a note instead when they cannot
    be computed yet."""
    study_obj = getattr(study, "study", study)
    names = [o["name"] for o in study_obj.user_attrs.get("objectives", [])] or list(study_obj.metric_names or [])
    objective = objective or (names[0] if names else "objective")
    try:
        imp = param_importances(study, objective)
    except ValueError as exc:
        fig = _figure(7.0, 2.2)
        return _message(fig, fig.add_subplot(), str(exc), path)
    from optuna.trial import TrialState

    items = list(imp.items())[:top][::-1]
    fig = _figure(7.0, 1.2 + 0.28 * len(items))
    ax = fig.add_subplot()
    ax.barh([k for k, _ in items], [v for _, v in items], color="#1f77b4")
    ax.set_xlabel(f"importance for {objective} (PED-ANOVA, sums to 1)")
    n = len(getattr(study, "study", study).get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    ax.set_title(f"parameter importances for {objective} ({n} completed trials)", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    _save(fig, path)
    return fig


def _message(fig, ax, text: str, path):
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True, color="#555555")
    _save(fig, path)
    return fig


# ---------------------------------------------------------------------------------------------
# architecture diagram

_KERNEL_COLOURS = {1: "#c6dbef", 3: "#6baed6", 5: "#2171b5", 7: "#08306b"}


def plot_architecture(spec, path=None, title: str | None = None, num_classes: int | None = None):
    """Block diagram of `spec`: one row per stage, one box per block labelled with its kernel
    (t×h×w), expansion width and stride; each row names the stage's output width and shape at the
    spec's own input size. Box colour: temporal kernel size."""
    from matplotlib.patches import Patch

    from search_space import walk

    plan = walk(spec)
    rows = len(spec.stages) + 2
    widest = max(len(s.blocks) for s in spec.stages)
    width = max(7.0, _LEFT + widest * (_BOX_W + _GAP) + 0.6)
    fig = _figure(width * 0.95, 0.95 * rows + 0.9)
    ax = fig.add_subplot()
    ax.set_xlim(0, width)
    ax.set_ylim(-rows + 0.1, 0.9)
    ax.axis("off")
    t, h, w = plan.stem_out
    _side(ax, 0, f"stem\n{spec.stem.filters} ch, {t}×{h}×{w}")
    _box(ax, _LEFT, 0, 3 * _BOX_W, f"conv {_k(spec.stem.kernel)}, stride {_k(spec.stem.strides)}\n"
         f"{plan.stem_in[0]}×{plan.stem_in[1]}×{plan.stem_in[2]}×3 input", "#eeeeee")
    _draw_stages(ax, spec, plan)
    y = -(len(spec.stages) + 1)
    classes = f" → {num_classes} classes" if num_classes else ""
    _side(ax, y, f"head\n{spec.head.filters} ch")
    _box(ax, _LEFT, y, 3 * _BOX_W, f"conv 1×1×1 → {spec.head.filters}, global pool\n"
         f"dense {spec.head.hidden}{classes}", "#eeeeee")
    used = sorted({b.kernel[0] for s in spec.stages for b in s.blocks})
    handles = [Patch(facecolor=_KERNEL_COLOURS.get(k, "#9e9ae0"), edgecolor="#333333", label=f"temporal kernel {k}")
               for k in used]
    ax.legend(handles=handles, loc="upper right", fontsize=7.5, frameon=False, ncol=len(handles))
    mode = "causal " if spec.causal else ""
    ax.set_title(title or f"{spec.name}: {spec.num_layers} blocks, {mode}{spec.conv_type} conv, "
                 f"input {spec.frames}×{spec.resolution}²  (e = expansion width, ↓ = stride t×h×w)", fontsize=9)
    _save(fig, path)
    return fig


_BOX_W, _GAP, _LEFT = 1.25, 0.25, 2.6  # block box width, gap between boxes, left margin (data units)


def _draw_stages(ax, spec, plan) -> None:
    """One row per stage: a box per block (kernel, expansion, stride), linked; the stage's width and shape."""
    layers = iter(plan.layers)
    for i, stage in enumerate(spec.stages, 1):
        y = -i
        last = None
        for j, block in enumerate(stage.blocks):
            layer = next(layers)
            last = layer
            stride = "" if block.strides == (1, 1, 1) else f"\n↓ {_k(block.strides)}"
            _box(ax, _LEFT + j * (_BOX_W + _GAP), y, _BOX_W, f"{_k(block.kernel)}\ne {block.expand}{stride}",
                 _KERNEL_COLOURS.get(block.kernel[0], "#9e9ae0"))
            if j:
                ax.annotate("", (_LEFT + j * (_BOX_W + _GAP), y), (_LEFT + j * (_BOX_W + _GAP) - _GAP, y),
                            arrowprops=dict(arrowstyle="-", color="#555555", lw=0.8))
        t, h, w = last.out_shape
        _side(ax, y, f"stage {i}: {len(stage.blocks)} block{'s' if len(stage.blocks) > 1 else ''}\n"
              f"{stage.filters} ch, {t}×{h}×{w}")


def _box(ax, x, y, w, text, colour, bold=False) -> None:
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y - 0.36), w, 0.72, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor="#333333", lw=0.8))
    dark = colour in ("#2171b5", "#08306b")
    ax.text(x + w / 2, y, text, ha="center", va="center", fontsize=7.5, color="white" if dark else "black",
            fontweight="bold" if bold else "normal")


def _side(ax, y, text) -> None:
    ax.text(0.1, y, text, ha="left", va="center", fontsize=8)


def _k(t: Sequence[int]) -> str:
    return "×".join(str(v) for v in t)


__all__ = ["param_importances", "save_png", "plot_architecture", "plot_hypervolume_history", "plot_param_importances",
           "plot_tradeoff", "preset_costs", "study_input"]
