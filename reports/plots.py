"""Figures of the report (plotly): interactive HTML plus static PDF and PNG for papers.

Static export goes through kaleido 1.x, which drives the system's Chromium (Debian:
``chromium``). Without a browser the interactive figures are still written and the
report says that the static files are missing, rather than failing.
"""

from __future__ import annotations

import math
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reports._format import metric_label
from reports.ablation import COMPLETED
from reports.rundir.info import AxisPoint, RunInfo

FIGURE_WIDTH, FIGURE_HEIGHT = 640, 420
#: The problems of static export in the report being built (``build_report`` collects them
#: to say on the console what the page says; the skip that STATIC_ENV asks for is not one).
STATIC_PROBLEMS: ContextVar[list[str] | None] = ContextVar("static_problems", default=None)
#: Set to 0 to write the interactive figures only (no PDF or PNG: quicker; Chromium unused).
STATIC_ENV = "ORCHESTRATOR_STATIC_FIGURES"


@dataclass
class Figures:
    """What was written: stem -> title, and a problem with static export (if any)."""

    written: dict[str, str] = field(default_factory=dict)
    static_error: str = ""
    pending: list = field(default_factory=list)


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


@dataclass(frozen=True)
class PointSummary:
    """One sensitivity point: its label and values, whether it is the base, and the mean
    with its 95% t interval over the seeds that completed (``n`` of them)."""

    point: str
    values: dict
    base: bool
    mean: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class SensitivityInfo:
    """What a sensitivity figure shows, computed apart from drawing it (and tested as such):
    one key, a line of ``points`` (``x`` on a log axis when rank-like, as categories when
    not numeric); two keys, a heatmap ``z`` of the means (rows: ``keys[0]``'s values ``ys``,
    columns: ``keys[1]``'s ``xs``) with its cell ``text`` (``*`` marks the base)."""

    axis: str
    metric: str
    keys: list
    points: list[PointSummary]
    x: list = field(default_factory=list)
    log_axis: bool = False
    categorical: bool = False
    xs: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    z: np.ndarray | None = None
    text: list = field(default_factory=list)
    name: str = ""
    """What the axes call the metric (its declared name; from its key where empty)."""


def sensitivity_info(
    df: pd.DataFrame, axis: str, points: list[AxisPoint], metric: str, *, name: str = ""
) -> SensitivityInfo:
    done = df[df["status"] == COMPLETED]
    keys = list(points[0].values)
    summary = []
    for p in points:
        vals = done.loc[done["point"] == p.point, metric].to_numpy(dtype=float) if metric in done else np.array([])
        summary.append(PointSummary(p.point, dict(p.values), p.base, *mean_ci(vals)))
    if len(keys) == 2:
        xs = list(dict.fromkeys(p.values[keys[1]] for p in summary))
        ys = list(dict.fromkeys(p.values[keys[0]] for p in summary))
        z = np.full((len(ys), len(xs)), np.nan)
        text = [["" for _ in xs] for _ in ys]
        for p in summary:
            i, j = ys.index(p.values[keys[0]]), xs.index(p.values[keys[1]])
            z[i, j] = p.mean
            text[i][j] = f"{p.mean:.3f}" + ("*" if p.base else "") if p.n else "n/a"
        return SensitivityInfo(axis, metric, keys, summary, xs=xs, ys=ys, z=z, text=text, name=name)
    raw = [p.values[keys[0]] for p in summary]
    numeric = _numeric(raw)
    return SensitivityInfo(
        axis,
        metric,
        keys,
        summary,
        x=raw if numeric else [str(v) for v in raw],
        log_axis=_log_axis(raw),
        categorical=not numeric,
        name=name,
    )


def sensitivity_figure(info: SensitivityInfo):
    """Metric against the axis value with a 95% CI band (one key), or a heatmap (two keys)."""
    import plotly.graph_objects as go

    title = f"Sensitivity to {info.axis}"
    if info.z is not None:
        fig = go.Figure(
            go.Heatmap(
                z=info.z,
                x=[str(x) for x in info.xs],
                y=[str(y) for y in info.ys],
                text=info.text,
                texttemplate="%{text}",
                colorscale="Viridis",
                colorbar={"title": info.name or metric_label(info.metric)},
            )
        )
        fig.update_layout(
            title=f"{title}: mean over seeds (* base)", xaxis_title=info.keys[1], yaxis_title=info.keys[0]
        )
    else:
        x = info.x
        mean, lo, hi = [p.mean for p in info.points], [p.lo for p in info.points], [p.hi for p in info.points]
        fig = go.Figure()
        fig.add_trace(
            go.Scatter(
                x=x + x[::-1],
                y=hi + lo[::-1],
                fill="toself",
                mode="lines",
                line={"width": 0},
                fillcolor="rgba(31,119,180,0.2)",
                name="95% CI over seeds",
                hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=mean,
                mode="lines+markers",
                name="mean over seeds",
                line={"color": "rgb(31,119,180)"},
                customdata=[p.n for p in info.points],
                hovertemplate="%{x}: %{y:.4f} (n=%{customdata})",
            )
        )
        base = [i for i, p in enumerate(info.points) if p.base]
        if base:
            fig.add_trace(
                go.Scatter(
                    x=[x[base[0]]],
                    y=[mean[base[0]]],
                    mode="markers",
                    name="base",
                    marker={"symbol": "star", "size": 14, "color": "black"},
                )
            )
        fig.update_layout(title=title, xaxis_title=info.keys[0], yaxis_title=info.name or metric_label(info.metric))
        if info.log_axis:
            fig.update_xaxes(type="log", tickvals=x, ticktext=[str(v) for v in x])
        elif info.categorical:
            fig.update_xaxes(type="category")
    fig.update_layout(
        template="simple_white", width=FIGURE_WIDTH, height=FIGURE_HEIGHT, margin={"l": 60, "r": 20, "t": 60, "b": 50}
    )
    return fig


#: Plotly's title font is 17 px; an average character of it is about 9.5 px wide (Open
#: Sans / Arial at 0.55 em): the estimate that wraps a title to the figure's width.
TITLE_PX_PER_CHAR = 9.5
TITLE_LINE_PX = 22


def fit_title(fig) -> list[str]:
    """Wrap the figure's title into lines that fit its width, anchored at the top left of
    the figure, the top margin and the height grown by each extra line (the plotting area
    keeps its size): a static export never clips a long title. Returns the lines."""
    import textwrap

    text = fig.layout.title.text or ""
    if not text:
        return []
    width = fig.layout.width or FIGURE_WIDTH
    lines = textwrap.wrap(text.replace("<br>", " "), max(24, int((width - 40) / TITLE_PX_PER_CHAR)))
    extra = TITLE_LINE_PX * (len(lines) - 1)
    top = fig.layout.margin.t if fig.layout.margin.t is not None else 60
    height = (fig.layout.height or FIGURE_HEIGHT) + extra
    # the first line's top 10 px below the figure's top (plotly places a multi-line title by
    # its first line, so the lines below go down into the grown margin)
    fig.update_layout(
        title={"text": "<br>".join(lines), "x": 0.01, "xanchor": "left", "yref": "container",
               "y": 1 - (10 + TITLE_LINE_PX) / height, "yanchor": "bottom"},
        margin={"t": top + extra},
        height=height,
    )  # fmt: skip
    return lines


def visible_shapes(fig) -> None:
    """Lines drawn on a figure (a reference mean, ASHA's rungs) at full opacity and at least
    1.5 px unless set: the ``simple_white`` template's shape defaults are a line 0 px wide at
    30% opacity, which draws nothing."""
    for shape in fig.layout.shapes:
        shape.opacity = 1
        if shape.line.width is None or shape.line.width == 0:
            shape.line.width = 1.5


def write_figure(fig, out_dir: Path, stem: str, figures: Figures, *, title: str) -> None:
    """``<stem>.html`` now (plotly.js shared in the folder); PDF and PNG at ``export_static``."""
    fit_title(fig)
    visible_shapes(fig)
    fig.write_html(out_dir / f"{stem}.html", include_plotlyjs="directory", full_html=True)
    figures.written[stem] = title
    figures.pending.append((fig, out_dir / stem))


def export_static(figures: Figures) -> Figures:
    """PDF and PNG of every pending figure, in one browser session (``plotly.io.write_images``:
    Chromium starts once, not once per file); a failure is kept in ``static_error``."""
    import os

    import plotly.io as pio

    pending, figures.pending = figures.pending, []
    if not pending:
        return figures
    if os.environ.get(STATIC_ENV, "1").strip() == "0":
        figures.static_error = (
            f"static export (PDF, PNG) skipped: {STATIC_ENV}=0; run `python -m orchestrator report DIR` "
            "without it for the files a paper needs"
        )
        return figures
    jobs = [(fig, stem.with_suffix(x), scale) for fig, stem in pending for x, scale in ((".pdf", 1), (".png", 2))]
    try:
        # plotly hands kaleido the files without kaleido's cancel_on_error, and kaleido then
        # returns a file's rendering error instead of raising it: plotly drops it, and the
        # file is simply missing (seen under load). What is missing is rendered once more,
        # and what is still missing is said, not left for the reader of the paper to find.
        for _attempt in range(2):
            missing = [(fig, file, scale) for fig, file, scale in jobs if not _written(file)]
            if not missing:
                break
            pio.write_images([m[0] for m in missing], [m[1] for m in missing], scale=[m[2] for m in missing])
        missing = [file for _, file, _ in jobs if not _written(file)]
        if missing:
            figures.static_error = (
                f"static export (PDF, PNG) failed for {len(missing)} of {len(jobs)} files (e.g. {missing[0].name}): "
                "kaleido gave no reason; run `python -m orchestrator report DIR` again"
            )
    except Exception as err:  # kaleido raises several types when Chromium is missing or fails
        figures.static_error = (
            f"static export (PDF, PNG) failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            " (kaleido needs Chromium; Debian: apt-get install chromium)"
        )
    problems = STATIC_PROBLEMS.get()
    if figures.static_error and problems is not None:
        problems.append(figures.static_error)
    return figures


def _written(file: Path) -> bool:
    return file.is_file() and file.stat().st_size > 0


def sensitivity_figures(df: pd.DataFrame, meta: RunInfo, out_dir: Path, *, figures: Figures | None = None) -> Figures:
    """One figure per axis; into ``figures`` when given, whose caller then exports them."""
    own = figures is None
    figures = Figures() if figures is None else figures
    for axis, points in meta.axes.items():
        fig = sensitivity_figure(sensitivity_info(df, axis, points, meta.metric, name=meta.metric_name(meta.metric)))
        write_figure(fig, out_dir, f"fig_sensitivity_{axis}", figures, title=f"Sensitivity to {axis}")
    return export_static(figures) if own else figures


def _layout(fig, title: str, x: str, y: str) -> None:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="simple_white",
        width=FIGURE_WIDTH,
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
    )


def share_heatmaps(panels: list[dict], titles: list[str], *, title: str, y_title: str, scale: str, tick_size=None):
    """Heatmaps of shares (0 to 1, one colour scale, shown once) two to a row, rows read top to
    bottom: each of ``panels`` the ``go.Heatmap`` arguments of one (z, x, y, text...); ``y_title``
    names the rows, ``scale`` the colour bar. The routing and the confusion figures."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cols = min(len(panels), 2)
    rows = -(-len(panels) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.18, vertical_spacing=0.17)
    for i, args in enumerate(panels):
        heatmap = go.Heatmap(
            zmin=0, zmax=1, colorscale="Blues", showscale=i == 0, colorbar={"title": scale, "len": 0.6}
        )
        fig.add_trace(heatmap.update(**args), row=i // cols + 1, col=i % cols + 1)
    fig.update_yaxes(autorange="reversed", tickfont={"size": tick_size} if tick_size else {})
    fig.update_yaxes(title_text=y_title, col=1)
    fig.update_xaxes(tickangle=-45 if tick_size else -30, tickfont={"size": tick_size} if tick_size else {})
    fig.update_layout(
        title=title,
        template="simple_white",
        width=FIGURE_WIDTH,
        height=310 * rows + 130,
        margin={"l": 90, "r": 20, "t": 90, "b": 90},
    )
    return fig
