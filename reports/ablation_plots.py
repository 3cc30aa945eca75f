"""The ablation's figures (plotly): the study metric per variant and a heatmap of the other
metrics, each computed as a data object (``ablation_info``) apart from drawing it. Written
and exported (HTML, then PDF and PNG) as every report figure is (``reports.plots``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reports._format import metric_label
from reports.ablation import COMPLETED
from reports.plots import FIGURE_HEIGHT, Figures, _layout, export_static, mean_ci, write_figure


@dataclass(frozen=True)
class VariantSummary:
    """One row of an ablation figure: its seeds' values of the study metric, their mean with
    the 95% t interval over seeds, and the star of its test against the reference (adjusted
    over the study metric's family, as in the tables)."""

    variant: str
    shown: str
    reference: bool
    seeds: list
    values: list
    mean: float
    lo: float
    hi: float
    star: str


@dataclass(frozen=True)
class AblationInfo:
    """What the ablation figures show, computed apart from drawing them: the study metric per
    variant (``rows``), and the heatmap of the other metrics, variants x metrics (``z``: the
    means, ``text``: each mean with its star; empty without other metrics)."""

    metric: str
    rows: list[VariantSummary]
    columns: list = field(default_factory=list)
    z: np.ndarray | None = None
    text: list = field(default_factory=list)
    name: str = ""
    """What the axes call the study metric (its declared name; from its key where empty)."""


def ablation_info(table, df: pd.DataFrame, group_column: str = "variant") -> AblationInfo:
    """From an ``AblationTable`` and the run's results (only completed trials count)."""
    from reports._format import marker

    done = df[df["status"] == COMPLETED]
    m = table.primary
    rows = []
    for v in table.variants:
        own = done[done[group_column] == v].sort_values("seed")
        vals = own[m].to_numpy(dtype=float) if m in own else np.array([])
        keep = np.isfinite(vals)
        cell = table.cells[(v, m)]
        rows.append(
            VariantSummary(
                v,
                table.shown(v),
                v == table.reference,
                own["seed"].to_numpy()[keep].tolist(),
                vals[keep].tolist(),
                *mean_ci(vals)[:3],
                "" if v == table.reference else marker(cell.p_holm),
            )
        )
    others = [x for x in table.metrics if x != m]
    if not others:
        return AblationInfo(m, rows, name=table.metric_name(m))
    z = np.array([[table.cells[(v, x)].mean for x in others] for v in table.variants], dtype=float)
    text = [
        [
            "n/a"
            if not np.isfinite(table.cells[(v, x)].mean)
            else f"{table.cells[(v, x)].mean:.3f}"
            + ("" if v == table.reference else marker(table.cells[(v, x)].p_holm))
            for x in others
        ]
        for v in table.variants
    ]
    return AblationInfo(m, rows, [table.metric_name(x) for x in others], z, text, table.metric_name(m))


def ablation_figure(info: AblationInfo, *, title: str):
    """The study metric per variant: every seed's value (points), the mean and its 95% t
    interval over seeds (a bar), the reference in black with its mean as a dotted line, and
    the stars of the family's test above each variant."""
    import plotly.graph_objects as go

    x = [r.shown for r in info.rows]
    fig = go.Figure()
    colours = ["black" if r.reference else "rgb(31,119,180)" for r in info.rows]
    fig.add_trace(
        go.Scatter(
            x=[r.shown for r in info.rows for _ in r.values],
            y=[v for r in info.rows for v in r.values],
            mode="markers",
            name="seeds",
            marker={"size": 7, "color": "rgba(120,120,120,0.6)", "symbol": "circle-open"},
            customdata=[s for r in info.rows for s in r.seeds],
            hovertemplate="%{x}, seed %{customdata}: %{y:.4f}",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=[r.mean for r in info.rows],
            mode="markers",
            name="mean, 95% CI over seeds",
            marker={"size": 11, "color": colours, "symbol": "diamond"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [r.hi - r.mean if np.isfinite(r.hi) else 0 for r in info.rows],
                "arrayminus": [r.mean - r.lo if np.isfinite(r.lo) else 0 for r in info.rows],
                "color": "rgb(80,80,80)",
            },
        )
    )
    ref = [r for r in info.rows if r.reference]
    if ref and np.isfinite(ref[0].mean):
        # named in the legend, not by a label on the line, which would cover a point near it
        fig.add_hline(y=ref[0].mean, line_dash="dot", line_color="black", layer="below")
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"{ref[0].shown} (reference): mean",
                line={"dash": "dot", "color": "black"},
            )
        )
    tops = [max([r.hi, *r.values], default=r.mean) if r.values else r.mean for r in info.rows]
    for r, top in zip(info.rows, tops):
        if r.star and np.isfinite(top):
            fig.add_annotation(x=r.shown, y=top, text=r.star, showarrow=False, yshift=12, font={"size": 14})
    _layout(fig, title, "", info.name or metric_label(info.metric))
    fig.update_xaxes(type="category", tickangle=-30)
    fig.update_layout(
        height=FIGURE_HEIGHT + 60,
        margin={"l": 60, "r": 20, "t": 90, "b": 110},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
    )
    return fig


def ablation_heatmap(info: AblationInfo, *, title: str):
    """Variants x the other metrics: the mean over seeds, starred where the family's test
    finds a difference to the reference."""
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Heatmap(
            z=info.z,
            x=info.columns,
            y=[r.shown for r in info.rows],
            text=info.text,
            texttemplate="%{text}",
            colorscale="Viridis",
            colorbar={"title": "mean"},
        )
    )
    _layout(fig, title, "", "")
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", tickangle=-30)
    fig.update_layout(
        height=max(FIGURE_HEIGHT, 60 + 40 * len(info.rows)), margin={"l": 160, "r": 20, "t": 60, "b": 110}
    )
    return fig


def ablation_figures(
    table, df: pd.DataFrame, out_dir: Path, group_column: str = "variant", *, figures: Figures | None = None
) -> Figures:
    """``fig_<key>`` (the study metric per variant) and, with other metrics,
    ``fig_<key>_metrics`` (the heatmap), interactive and static; into ``figures`` when given,
    whose caller then exports them with its own (one browser session for all)."""
    info = ablation_info(table, df, group_column)
    own = figures is None
    figures = Figures() if own else figures
    what = table.title or "Ablation"
    title = f"{what}: {table.metric_name(info.metric)} per {table.row_header.lower()}"
    write_figure(ablation_figure(info, title=title), out_dir, f"fig_{table.key}", figures, title=title)
    if info.z is not None:
        heat = f"{what}: the other metrics (mean over seeds; stars: test against the reference)"
        write_figure(ablation_heatmap(info, title=heat), out_dir, f"fig_{table.key}_metrics", figures, title=heat)
    return export_static(figures) if own else figures
