"""The search's figures (plotly): best so far by trial and by compute, the learning curves,
parallel coordinates of the completed trials and the importance of each key; the parallel
coordinates computed as a data object (``parallel_info``) apart from drawing them. Written
and exported as every report figure is (``reports.plots``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports._format import metric_label
from reports.plots import FIGURE_HEIGHT, FIGURE_WIDTH, Figures, _layout, _numeric, export_static, write_figure
from reports.rundir.info import RunInfo
from reports.rundir.names import COMPLETED


def best_so_far_figure(
    by_trial: pd.DataFrame,
    metric: str,
    *,
    x: str = "number",
    x_title: str = "trial",
    title: str = "Best so far",
    name: str = "",
):
    """Every trial's final metric (stopped trials grey: fewer epochs) and the best-so-far step line."""
    import plotly.graph_objects as go

    fig = go.Figure()
    if "status" in by_trial:
        for status, color in ((COMPLETED, "rgb(31,119,180)"), ("STOPPED", "rgb(170,170,170)")):
            part = by_trial[(by_trial["status"] == status) & by_trial["value"].notna()]
            fig.add_trace(
                go.Scatter(
                    x=part[x],
                    y=part["value"],
                    mode="markers",
                    marker={"color": color},
                    name="ran to completion" if status == COMPLETED else "stopped by ASHA",
                    text=part["trial"],
                    hovertemplate="%{text}: %{y:.4f}",
                )
            )
    fig.add_trace(
        go.Scatter(
            x=by_trial[x],
            y=by_trial["best"],
            mode="lines",
            line={"shape": "hv", "color": "black"},
            name="best completed so far",
        )
    )
    _layout(fig, title, x_title, name or metric_label(metric))
    _integer_axis(fig, by_trial[x].max() if len(by_trial) else 1)
    return fig


def _integer_axis(fig, largest, axis: str = "x") -> None:
    """Ticks at whole numbers only (trials, iterations, epochs): every one up to 12, else
    plotly's own spacing, written as integers (its steps are then 2, 5, 10, ...)."""
    largest = float(largest) if pd.notna(largest) else 1.0
    update = fig.update_xaxes if axis == "x" else fig.update_yaxes
    if largest <= 12:
        update(tick0=0, dtick=1, tickformat="d")
    else:
        update(tickformat="d")


def learning_curves_figure(curves: pd.DataFrame, df: pd.DataFrame, metric: str, rungs: list[int], *, name: str = ""):
    """The metric per iteration of every trial; ASHA's stops marked with an x, its rungs dotted."""
    import plotly.graph_objects as go

    fig = go.Figure()
    status = dict(zip(df["trial_name"], df["status"]))
    for trial, c in curves.sort_values("iteration").groupby("trial_name", sort=False):
        stopped = status.get(trial) == "STOPPED"
        fig.add_trace(
            go.Scatter(
                x=c["iteration"],
                y=c["value"],
                mode="lines+markers",
                name=f"{trial} (stopped at {int(c['iteration'].iloc[-1])})" if stopped else str(trial),
                line={"dash": "dot" if stopped else "solid", "width": 1 if stopped else 2},
                marker={"size": 4},
                legendgroup="stopped" if stopped else "done",
            )
        )
        if stopped:
            fig.add_trace(
                go.Scatter(
                    x=c["iteration"].iloc[-1:],
                    y=c["value"].iloc[-1:],
                    mode="markers",
                    marker={"symbol": "x", "size": 11, "color": "red"},
                    showlegend=False,
                    hovertemplate=f"{trial} stopped by ASHA at iteration %{{x}}",
                )
            )
    for r in rungs:
        fig.add_vline(x=r, line={"dash": "dot", "color": "grey", "width": 1})
    _layout(
        fig,
        "Learning curves (x: stopped by ASHA; dotted lines: rungs)",
        "training iteration (epoch)",
        name or metric_label(metric),
    )
    _integer_axis(fig, curves["iteration"].max() if len(curves) else 1)
    return fig


@dataclass(frozen=True)
class ParallelInfo:
    """What the parallel-coordinates figure shows, computed apart from drawing it: one
    dimension per searched key present (``label``, ``values``, and either ``range`` or, for
    non-numeric choices, ``tickvals``/``ticktext``; log keys as log10 values), then the
    metric; the line colours (the metric) and their range; ``n`` completed trials."""

    metric: str
    dims: list[dict]
    color: np.ndarray
    cmin: float
    cmax: float
    n: int
    name: str = ""
    """What the figure calls the metric."""


def log_ticks(low: float, high: float) -> list[float]:
    """Values for the ticks of a log axis from ``low`` to ``high`` (both > 0): the powers of
    ten in it, with 2 and 5 times them where that gives fewer than three ticks, and the ends
    where still fewer than two. The axis shows them as values (1e-04, 0.001), not exponents."""
    lo, hi = math.floor(math.log10(low)), math.ceil(math.log10(high))
    inside = [v for v in (10.0**e for e in range(lo, hi + 1)) if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)]
    if len(inside) < 3:
        inside = sorted(
            v
            for e in range(lo, hi + 1)
            for v in (10.0**e, 2 * 10.0**e, 5 * 10.0**e)
            if low * (1 - 1e-9) <= v <= high * (1 + 1e-9)
        )
    if len(inside) < 2:
        inside = sorted({float(low), *inside, float(high)})
    return inside


def parallel_info(df: pd.DataFrame, params: list, metric: str, *, name: str = "") -> ParallelInfo:
    done = df[(df["status"] == COMPLETED) & df[metric].notna()] if metric in df else df.iloc[:0]
    dims = []
    for p in params:
        col = f"config/{p.name}"
        if col not in done:
            continue
        values = done[col]
        if p.kind == "choice" and not _numeric(list(p.values)):
            labels = [str(v) for v in p.values]
            dims.append(
                {
                    "label": p.name,
                    "values": [labels.index(str(v)) if str(v) in labels else -1 for v in values],
                    "tickvals": list(range(len(labels))),
                    "ticktext": labels,
                }
            )
        elif p.kind == "loguniform" or p.log:
            ticks = log_ticks(p.low, p.high)
            dims.append(
                {
                    "label": f"{p.name} (log scale)",
                    "values": np.log10(values.to_numpy(dtype=float)),
                    "range": [math.log10(p.low), math.log10(p.high)],
                    "tickvals": [math.log10(t) for t in ticks],
                    "ticktext": [f"{t:g}" for t in ticks],
                }
            )
        else:
            lo, hi = (min(p.values), max(p.values)) if p.kind == "choice" else (p.low, p.high)
            dims.append({"label": p.name, "values": values.to_numpy(dtype=float), "range": [lo, hi]})
    color = done[metric].to_numpy(dtype=float) if len(done) else np.array([])
    dims.append({"label": name or metric_label(metric), "values": color})
    lo, hi = (float(color.min()), float(color.max())) if len(color) else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.01, hi + 0.01
    return ParallelInfo(metric, dims, color, lo, hi, len(done), name or metric_label(metric))


def parallel_coordinates_figure(info: ParallelInfo):
    """The completed trials' sampled values and metric (log keys on a log10 axis)."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Parcoords(
            line={
                "color": info.color,
                "colorscale": "Viridis",
                "showscale": True,
                "cmin": info.cmin,
                "cmax": info.cmax,
            },
            dimensions=info.dims,
            labelangle=-20,
            labelside="top",
        )
    )
    fig.update_layout(
        title=f"Completed trials ({info.n}): settings and {info.name}",
        template="simple_white",
        width=max(FIGURE_WIDTH, 130 * len(info.dims)),
        height=FIGURE_HEIGHT + 40,
        margin={"l": 60, "r": 60, "t": 120, "b": 40},
    )
    return fig


def importance_figure(importances: dict[str, float], n_trials: int):
    import plotly.graph_objects as go

    names = list(importances)[::-1]
    fig = go.Figure(
        go.Bar(
            x=[importances[n] for n in names],
            y=names,
            orientation="h",
            marker={"color": "rgb(31,119,180)"},
            hovertemplate="%{y}: %{x:.3f}",
        )
    )
    _layout(
        fig,
        f"Hyperparameter importance ({n_trials} completed trials)",
        "importance (optuna.importance, PED-ANOVA; sums to 1)",
        "",
    )
    return fig


def search_figures(
    df: pd.DataFrame, curves: pd.DataFrame, meta: RunInfo, out_dir: Path
) -> tuple[Figures, dict[str, float], str]:
    """The search's figures; returns them, the importances, and why importance is missing (if it is)."""
    from reports import search_analysis as sa

    metric, mode = meta.metric, meta.mode
    name = meta.metric_name(metric)
    figures = Figures()
    by_trial = sa.best_so_far_by_trial(df, metric, mode)
    write_figure(
        best_so_far_figure(by_trial, metric, title="Best so far, by trial", name=name),
        out_dir,
        "fig_search_best_by_trial",
        figures,
        title="Best so far, by trial",
    )
    by_compute = sa.best_so_far_by_compute(df, curves, metric, mode)
    if len(by_compute):
        fig = best_so_far_figure(
            by_compute,
            metric,
            x="iterations",
            x_title="training iterations spent (all trials)",
            title="Best so far, by compute",
            name=name,
        )
        write_figure(fig, out_dir, "fig_search_best_by_compute", figures, title="Best so far, by compute")
        write_figure(
            learning_curves_figure(sa.metric_curves(curves, metric), df, metric, sa.asha_rungs(meta), name=name),
            out_dir,
            "fig_search_learning_curves",
            figures,
            title="Learning curves",
        )
    params = sa.search_params(meta)
    write_figure(
        parallel_coordinates_figure(parallel_info(df, params, metric, name=name)),
        out_dir,
        "fig_search_parallel",
        figures,
        title="Parallel coordinates",
    )
    study = sa.optuna_study(df, curves, meta)
    importances, why = sa.importance(study)
    if importances:
        n = sum(1 for s in df["status"] if s == COMPLETED)
        write_figure(
            importance_figure(importances, n),
            out_dir,
            "fig_search_importance",
            figures,
            title="Hyperparameter importance",
        )
    return export_static(figures), importances, why
