"""Figures of the report (plotly): interactive HTML plus static PDF and PNG for papers.

Static export goes through kaleido 1.x, which drives the system's Chromium (Debian:
``chromium``). Without a browser the interactive figures are still written and the
report says that the static files are missing, rather than failing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reports._format import metric_label
from reports.ablation import COMPLETED

FIGURE_WIDTH, FIGURE_HEIGHT = 640, 420


@dataclass
class Figures:
    """What was written: stem -> title, and a problem with static export (if any)."""

    written: dict[str, str] = field(default_factory=dict)
    static_error: str = ""


def mean_ci(values: np.ndarray) -> tuple[float, float, float, int]:
    """Mean and the 95% t interval of the mean over seeds (NaN bounds with one value)."""
    v = values[np.isfinite(values)]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    m = float(v.mean())
    if n == 1:
        return m, math.nan, math.nan, 1
    half = float(stats.t.ppf(0.975, n - 1)) * float(v.std(ddof=1)) / math.sqrt(n)
    return m, m - half, m + half, n


def _numeric(values: list) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_axis(values: list) -> bool:
    """Rank-like values (positive, spanning a factor of 8 or more) get a log axis."""
    return _numeric(values) and min(values) > 0 and max(values) / min(values) >= 8


def sensitivity_figure(df: pd.DataFrame, axis: str, points: list[dict], metric: str):
    """Metric against the axis value with a 95% CI band (one key), or a heatmap (two keys)."""
    import plotly.graph_objects as go

    done = df[df["status"] == COMPLETED]
    keys = list(points[0]["values"])
    summary = []
    for p in points:
        vals = done.loc[done["point"] == p["point"], metric].to_numpy(dtype=float) if metric in done else np.array([])
        summary.append((p, *mean_ci(vals)))
    title = f"Sensitivity to {axis}"
    if len(keys) == 2:
        xs = list(dict.fromkeys(p["values"][keys[1]] for p in points))
        ys = list(dict.fromkeys(p["values"][keys[0]] for p in points))
        z = np.full((len(ys), len(xs)), np.nan)
        text = [["" for _ in xs] for _ in ys]
        for p, m, lo, hi, n in summary:
            i, j = ys.index(p["values"][keys[0]]), xs.index(p["values"][keys[1]])
            z[i, j] = m
            text[i][j] = f"{m:.3f}" + ("*" if p["base"] else "") if n else "n/a"
        fig = go.Figure(go.Heatmap(z=z, x=[str(x) for x in xs], y=[str(y) for y in ys], text=text,
                                   texttemplate="%{text}", colorscale="Viridis", colorbar={"title": metric_label(metric)}))
        fig.update_layout(title=f"{title}: mean over seeds (* base)",
                          xaxis_title=keys[1], yaxis_title=keys[0])
    else:
        key = keys[0]
        raw = [p["values"][key] for p in points]
        numeric = _numeric(raw)
        x = raw if numeric else [str(v) for v in raw]
        mean = [s[1] for s in summary]
        lo = [s[2] for s in summary]
        hi = [s[3] for s in summary]
        fig = go.Figure()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", mode="lines", line={"width": 0},
                                 fillcolor="rgba(31,119,180,0.2)", name="95% CI over seeds", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name="mean over seeds", line={"color": "rgb(31,119,180)"},
                                 customdata=[s[4] for s in summary], hovertemplate="%{x}: %{y:.4f} (n=%{customdata})"))
        base = [i for i, p in enumerate(points) if p["base"]]
        if base:
            fig.add_trace(go.Scatter(x=[x[base[0]]], y=[mean[base[0]]], mode="markers", name="base",
                                     marker={"symbol": "star", "size": 14, "color": "black"}))
        fig.update_layout(title=title, xaxis_title=key, yaxis_title=metric_label(metric))
        if _log_axis(raw):
            fig.update_xaxes(type="log", tickvals=raw, ticktext=[str(v) for v in raw])
        elif not numeric:
            fig.update_xaxes(type="category")
    fig.update_layout(template="simple_white", width=FIGURE_WIDTH, height=FIGURE_HEIGHT,
                      margin={"l": 60, "r": 20, "t": 60, "b": 50})
    return fig


def write_figure(fig, out_dir: Path, stem: str, figures: Figures, *, title: str) -> None:
    """``<stem>.html`` (plotly.js shared in the folder) and, when a browser is there, PDF and PNG."""
    fig.write_html(out_dir / f"{stem}.html", include_plotlyjs="directory", full_html=True)
    figures.written[stem] = title
    if figures.static_error:
        return
    try:
        fig.write_image(out_dir / f"{stem}.pdf")
        fig.write_image(out_dir / f"{stem}.png", scale=2)
    except Exception as err:  # kaleido raises several types when Chromium is missing or fails
        figures.static_error = f"static export (PDF, PNG) failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}" \
                               " (kaleido needs Chromium; Debian: apt-get install chromium)"


def sensitivity_figures(df: pd.DataFrame, meta: dict, out_dir: Path) -> Figures:
    figures = Figures()
    for axis, points in meta["axes"].items():
        fig = sensitivity_figure(df, axis, points, meta["metric"])
        write_figure(fig, out_dir, f"fig_sensitivity_{axis}", figures, title=f"Sensitivity to {axis}")
    return figures
