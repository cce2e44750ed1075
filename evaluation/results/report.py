"""The study report: `write_report(source)` writes `report.md` and a self-contained `report.html`
(images embedded as data URIs, inline CSS) into the results folder, with the PNGs under `report/`.

Both files render the same list of blocks: the study summary, the best values and hypervolume,
the Pareto table (a link to each trial's spec), the plots, the top architectures block by block,
and the search config.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from search_space.spec import NUM_CLASSES

from evaluation.results.pareto import check_objectives, default_reference_point, hypervolume, pareto_front
from evaluation.results.plots import (
    plot_architecture,
    plot_hypervolume_history,
    plot_param_importances,
    plot_tradeoff,
    save_png,
)
from evaluation.results.record import BYTE_COLUMNS, LATENCY_MS, VAL_ACCURACY, Outcome, usable_mask
from evaluation.results.frames import COSTS, ResultsError, load_study, to_frame
from evaluation.results.storage import read_records

if TYPE_CHECKING:
    import pandas as pd

IMAGES = "report"  # folder of the PNGs, beside report.md
IMPORTANCE_TRIALS = 500  # completed trials the importances are computed on: a seeded sample of more


def write_report(source, out_dir=None, *, study: str | None = None,
                 objectives: dict[str, str] | Callable[[pd.DataFrame], dict[str, str]] | None = None,
                 top: int = 3) -> dict[str, Path]:
    """Write the report of the study at `source` (a results folder, study file or storage URL).

    `out_dir` defaults to the study's results folder (required for a PostgreSQL URL); `objectives`
    ({column: direction}, or a function of the results frame returning them, so a caller that
    checks them against the columns reads the study once) default to the study's; `top`
    Pareto-optimal architectures are drawn and described block by block. Returns
    {"markdown": path, "html": path, "images": [paths]}.
    """
    opened = load_study(source, study)
    records = read_records(opened)
    df = to_frame(opened, records)
    if out_dir is None:
        if opened.folder is None:
            raise ResultsError(f"{df.attrs['storage']}: not a results folder; give an output folder (--out)")
        out_dir = opened.folder
    out = Path(out_dir)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    if callable(objectives):
        objectives = objectives(df)
    objectives = check_objectives(df, objectives or {o["name"]: o["direction"] for o in df.attrs["objectives"]})
    blocks: list[tuple] = []
    images: list[Path] = []

    def figure(fig, name: str, caption: str) -> None:
        path = save_png(fig, out / IMAGES / f"{name}.png")
        images.append(path)
        blocks.append(("img", path, caption))

    _summary(blocks, df, opened, objectives)
    front = pareto_front(df, objectives)
    _front_table(blocks, df, front, objectives, out, opened.folder)
    blocks.append(("h2", "Plots"))
    y = _primary(objectives, df)
    for x in [c for c in ("flops", "activation_bytes", LATENCY_MS) if c != y and _has(df, c)]:
        figure(plot_tradeoff(df, x=x, y=y), f"tradeoff_{x}", f"{y} against {x}: every trial; presets by cost")
    if len(objectives) > 1:
        figure(plot_hypervolume_history(df, objectives), "hypervolume", "hypervolume of the front so far")
    trials, note = importance_study(opened, records)
    figure(plot_param_importances(trials, y if y in objectives else None), "importances",
           f"which sampled parameters matter for {y}{note}")
    _architectures(blocks, figure, df, front.head(top), objectives)
    blocks.append(("h2", "Search config"))
    blocks.append(("code", yaml.safe_dump(df.attrs.get("config") or {}, sort_keys=False) or "{}\n"))
    md = out / "report.md"
    md.write_text(_markdown(blocks, out))
    page = out / "report.html"
    page.write_text(_html(blocks, f"movinas report: {df.attrs['study']}"))
    return {"markdown": md, "html": page, "images": images}


def importance_study(opened, records: list) -> tuple[Any, str]:
    """(study, caption note) for the importance plot: the completed trials as already read, in an
    in-memory Optuna study for Optuna's evaluator (reading them again through Optuna's storage took
    16 s of a 5,000-trial report), with the distributions the search drew them from (the space's
    choices) and what the target reads (values, costs, metrics). Above IMPORTANCE_TRIALS completed
    trials, a seeded sample of that many: Optuna's evaluator takes ~4 ms a trial of the paper
    space, and copying a trial into a study ~3 ms. The study as opened when it has no space or a
    trial does not fit it (another tool's study)."""
    import random

    import optuna

    complete = [r for r in records if r.state == "COMPLETE"]
    if opened.space is None or len(complete) < 3:
        return opened, ""
    note = ""
    if len(complete) > IMPORTANCE_TRIALS:
        note = f" (a sample of {IMPORTANCE_TRIALS:,} of the {len(complete):,} completed trials)"
        complete = sorted(random.Random(0).sample(complete, IMPORTANCE_TRIALS), key=lambda r: r.number)
    dists = {k: optuna.distributions.CategoricalDistribution(c) for k, c in opened.space.param_choices().items()}
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "a new study created in memory" line
    try:
        study = optuna.create_study(directions=opened.study.directions)
    finally:
        optuna.logging.set_verbosity(level)
    study.set_user_attr("objectives", opened.info["objectives"])
    try:
        study.add_trials([optuna.trial.FrozenTrial(
            number=r.number, state=optuna.trial.TrialState.COMPLETE, value=None, values=r.values,
            datetime_start=r.datetime_start, datetime_complete=r.datetime_complete, params=r.params,
            distributions={k: dists[k] for k in r.params}, user_attrs={"cost": r.cost, "metrics": r.metrics},
            system_attrs={}, intermediate_values={}, trial_id=r.number) for r in complete])
    except (KeyError, ValueError):  # a parameter outside the space, a value not among its choices
        return opened, ""
    return study, note


def _has(df, col: str) -> bool:
    return col in df and bool(df[col].notna().any())


def _primary(objectives: dict[str, str], df) -> str:
    """The quality axis of the trade-off plots: the first non-cost objective, else the first one."""
    quality = [c for c in objectives if c not in COSTS]
    if quality:
        return quality[0]
    return VAL_ACCURACY if _has(df, VAL_ACCURACY) else next(iter(objectives))


# ---------------------------------------------------------------------------------------------
# sections


def _summary(blocks: list, df, opened, objectives: dict[str, str]) -> None:
    attrs, config = df.attrs, df.attrs.get("config") or {}
    blocks.append(("h1", f"Study {attrs['study']}"))
    counts = Counter(_kind(s, o) for s, o in zip(df.get("state", []), df.get("outcome", [])))
    order = ["complete", "stopped early", "infeasible", "duplicate", "failed", "interrupted", "running", "waiting"]
    tally = ", ".join(f"{counts[k]} {k}" for k in order + sorted(set(counts) - set(order)) if counts.get(k))
    storage = attrs["storage"]
    if opened.folder is not None and Path(storage).parent == Path(opened.folder):
        storage = Path(storage).name  # beside the report: no machine-specific path
    blocks.append(("p", f"{len(df)} trials: {tally or 'none yet'}. Storage: {storage}. "
                        f"Report written {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}."))
    space = opened.space
    rows = [["objectives", ", ".join(f"{d} {c}" for c, d in objectives.items())],
            ["constraints", ", ".join(c["text"] for c in attrs.get("constraints", [])) or "none"]]
    if space is not None:
        rows.append(["search space", f"{space.name}: {_count(space.size())} architectures, "
                                     f"{len(space.param_choices())} sampled parameters"])
    sampler = config.get("sampler", "tpe")
    rows.append(["sampler", sampler if isinstance(sampler, str) else yaml.safe_dump(sampler, default_flow_style=True, width=1000).strip()])
    for key in ("dataset", "proxy"):
        if key in config:
            rows.append([key, yaml.safe_dump(config[key], default_flow_style=True, width=1000).strip()])
    rows.append(["classes (costing)", str(attrs.get("num_classes"))])
    blocks.append(("table", [], rows))
    best = []
    pool = df[usable_mask(df)] if len(df) else df
    for col, direction in objectives.items():
        values = pool[col].dropna() if col in pool else []
        if len(values):
            idx = values.idxmax() if direction == "maximize" else values.idxmin()
            best.append([col, direction, format_value(col, values[idx]), str(int(df.loc[idx, "number"]))])
    if best:
        blocks.append(("h2", "Best values"))
        blocks.append(("table", ["objective", "direction", "best", "trial"], best))
    if len(objectives) > 1 and len(pool):
        ref = default_reference_point(df, objectives)
        hv = hypervolume(df, objectives, ref)
        where = ", ".join(f"{c} {format_value(c, v)}" for c, v in ref.items())
        blocks.append(("p", f"Hypervolume of the front: {hv:.4g} (reference point: {where}; the worst value of "
                            "each objective moved a tenth of its range further)."))


def _kind(state: str, outcome: Any) -> str:
    if isinstance(outcome, str) and outcome:
        return {Outcome.EARLY_STOPPED.value: "stopped early"}.get(outcome, outcome)
    return {"COMPLETE": "complete", "RUNNING": "running", "WAITING": "waiting", "FAIL": "failed",
            "PRUNED": "pruned"}.get(state, state.lower())


def _front_table(blocks: list, df, front, objectives: dict[str, str], out: Path, folder: Path | None) -> None:
    blocks.append(("h2", f"Pareto front ({len(front)} trial{'s' if len(front) != 1 else ''})"))
    if front.empty:
        blocks.append(("p", "No completed feasible trial yet."))
        return
    blocks.append(("p", "Non-dominated completed feasible trials, best " + next(iter(objectives)) + " first. "
                        "Each trial links to its architecture (spec YAML); `movinas export` turns one into models."))
    extra = [c for c in ("params", "flops", "activation_bytes", LATENCY_MS) if c not in objectives and _has(df, c)]
    header = ["trial", *objectives, *extra, "layers", "input"]
    rows = []
    for _, row in front.iterrows():
        link = _spec_link(row, out, folder)
        cells: list[Any] = [("link", str(int(row["number"])), link) if link else str(int(row["number"]))]
        cells += [format_value(c, row[c]) for c in [*objectives, *extra]]
        cells += [str(row.get("layers", "")), f"{row.get('frames')}×{row.get('resolution')}²"]
        rows.append(cells)
    blocks.append(("table", header, rows))


def _spec_link(row, out: Path, folder: Path | None) -> str | None:
    """Relative link to the trial's spec.yaml (written under report/specs/ when the study folder
    has none, e.g. for a study read from PostgreSQL)."""
    number = int(row["number"])
    if folder is not None:
        path = Path(folder) / "trials" / str(number) / "spec.yaml"
        if path.is_file():
            return _relative(path, out)
    spec = row.get("spec")
    if spec is None:
        return None
    path = out / IMAGES / "specs" / f"trial-{number}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(spec.to_yaml())
    return _relative(path, out)


def _relative(path: Path, out: Path) -> str:
    import os

    return Path(os.path.relpath(path.resolve(), out.resolve())).as_posix()


def _architectures(blocks: list, figure, df, top, objectives: dict[str, str]) -> None:
    from search_space import estimate_cost

    if top.empty:
        return
    blocks.append(("h2", "Top architectures"))
    classes = int(df.attrs.get("num_classes") or NUM_CLASSES)
    for _, row in top.iterrows():
        spec, number = row["spec"], int(row["number"])
        if spec is None:
            continue
        values = ", ".join(f"{c} {format_value(c, row[c])}" for c in objectives)
        blocks.append(("h3", f"Trial {number}"))
        blocks.append(("p", f"{values}; {spec.num_layers} blocks, {spec.conv_type} conv, SE {spec.se_type}, "
                            f"{spec.activation}{', causal' if spec.causal else ''}, input {spec.frames}×{spec.resolution}²."))
        figure(plot_architecture(spec, num_classes=classes, title=f"trial {number}: {spec.num_layers} blocks "
                                 f"(e = expansion width, ↓ = stride t×h×w)"), f"trial_{number}", f"trial {number}")
        cost = estimate_cost(spec, num_classes=classes, breakdown=True)
        kernels = {"stem": (spec.stem.kernel, spec.stem.filters, spec.stem.strides)}
        for i, stage in enumerate(spec.stages, 1):
            for j, b in enumerate(stage.blocks, 1):
                kernels[f"s{i}.b{j}"] = (b.kernel, b.expand, b.strides)
        rows = []
        for part in cost.blocks:
            k, e, s = kernels.get(part.name, (None, None, None))
            t, h, w, c = part.out_shape
            rows.append([part.name, _k(k) if k else "", str(e or ""), _k(s) if s else "", f"{t}×{h}×{w}×{c}",
                         f"{part.params:,}", f"{part.macs:,}"])
        blocks.append(("table", ["part", "kernel", "expand", "stride", "output t×h×w×c", "params", "MACs"], rows))
        blocks.append(("details", f"spec YAML of trial {number}", spec.to_yaml()))


# ---------------------------------------------------------------------------------------------
# formatting


def _k(t) -> str:
    return "×".join(str(v) for v in t)


def _count(n: int) -> str:
    return f"{n:,}" if n < 1e9 else f"{n:.3g}"


def format_value(col: str, value: Any) -> str:
    """A cell for tables: costs with K/M/G (bytes in MB), floats to 4 digits, missing as empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if col in BYTE_COLUMNS:
        return f"{value / 1e6:.3g} MB"
    if col in COSTS:
        v = float(value)
        for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{unit}"
        return f"{v:.0f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _markdown(blocks: list, out: Path) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(kind[1])} {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            header, rows = block[1] or [""] * len(block[2][0]), block[2]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
        elif kind == "img":
            lines += [f"![{block[2]}]({_relative(block[1], out)})", ""]
        elif kind == "code":
            lines += ["```yaml", block[1].rstrip("\n"), "```", ""]
        elif kind == "details":
            lines += ["<details><summary>" + block[1] + "</summary>", "", "```yaml", block[2].rstrip("\n"), "```",
                      "", "</details>", ""]
    return "\n".join(lines)


def _md_cell(cell: Any) -> str:
    if isinstance(cell, tuple):
        return f"[{cell[1]}]({cell[2]})"
    return str(cell).replace("|", "\\|").replace("\n", " ")


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #1f77b4;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f0f4f8}td:first-child,th:first-child{text-align:left}
tr:nth-child(even) td{background:#fafafa}table.kv td{text-align:left}figure{margin:1em 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.85em}pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
details{margin:.5em 0 1.5em}summary{cursor:pointer;color:#1f77b4}a{color:#1f77b4}
"""
# marks each image with its decoded width once loaded (0 = broken): a browser test reads it back
SCRIPT = """
for (const img of document.images) {
  const mark = () => img.setAttribute('data-loaded', String(img.naturalWidth || 0));
  if (img.complete) mark(); else { img.addEventListener('load', mark); img.addEventListener('error', mark); }
}
"""


def _html(blocks: list, title: str) -> str:
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2", "h3"):
            parts.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            header, rows = block[1], block[2]
            head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
            if header:
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            else:  # a key-value table
                parts.append(f"<table class='kv'><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            alt = html.escape(block[2])
            parts.append(f"<figure><img src='data:image/png;base64,{data}' alt='{alt}'>"
                         f"<figcaption>{alt}</figcaption></figure>")
        elif kind == "code":
            parts.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "details":
            parts.append(f"<details><summary>{html.escape(block[1])}</summary><pre>{html.escape(block[2])}</pre></details>")
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _html_cell(cell: Any) -> str:
    if isinstance(cell, tuple):
        return f"<a href='{html.escape(cell[2], quote=True)}'>{html.escape(cell[1])}</a>"
    return html.escape(str(cell))


__all__ = ["format_value", "importance_study", "write_report"]
