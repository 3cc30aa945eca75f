"""The t-SNE of the test identities' embeddings that the trials kept (``save_embeddings``), as
the report draws it (``reports.evaluation_plots.evaluation_figures``): scikit-learn's layout,
computed apart from drawing it (``tsne_info``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reports.evaluation_plots import COLOURS, row_label
from reports.rundir.evaluation import Evaluation

#: At most this many embeddings enter a t-SNE (a deterministic sample beyond): its cost grows
#: with the square of the points on scikit-learn's exact path and n log n on Barnes-Hut's.
TSNE_POINTS = 1000


@dataclass(frozen=True)
class TsnePanel:
    """One variant's test embeddings (its first seed's trial) laid out in two dimensions."""

    variant: str
    shown: str
    seed_trial: int
    xy: np.ndarray
    identity: np.ndarray
    domain: np.ndarray


def tsne_layout(vectors: np.ndarray) -> np.ndarray:
    """scikit-learn's t-SNE of the embeddings: two dimensions, PCA start, seed 0, perplexity 30
    (less for fewer than 91 points: it must stay below a third of them), 500 iterations (the
    layout of a thousand points has settled by then; the default 1,000 doubles the report's time)."""
    from sklearn.manifold import TSNE

    n = len(vectors)
    perplexity = float(min(30, max(2, (n - 1) // 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=0, max_iter=500)
    return tsne.fit_transform(np.asarray(vectors, dtype=np.float32))


def tsne_info(
    evaluations: dict[str, list[Evaluation]], variants: list[str], shown: dict[str, str] | None = None
) -> list[TsnePanel]:
    """A panel per variant in ``variants`` whose first trial kept its test embeddings
    (``save_embeddings``); the same images in every panel (a sample of ``TSNE_POINTS``, by seed 0,
    when there are more)."""
    shown = shown or {}
    panels = []
    for v in variants:
        evs = [ev for ev in evaluations.get(v, []) if "eval" in ev.embeddings]
        if not evs:
            continue
        emb = evs[0].embeddings["eval"]
        rows = np.arange(len(emb["identity"]))
        if len(rows) > TSNE_POINTS:
            rows = np.sort(np.random.default_rng(0).choice(rows, TSNE_POINTS, replace=False))
        xy = tsne_layout(emb["vectors"][rows])
        panels.append(TsnePanel(v, shown.get(v, v), 0, xy, emb["identity"][rows], emb["domain"][rows]))
    return panels


def tsne_figure(panels: list[TsnePanel], domains: list[str], *, title: str):
    """Rows: the variants; left, each image coloured by its identity; right, by its domain."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=len(panels),
        cols=2,
        column_titles=["by identity", "by domain"],
        horizontal_spacing=0.04,
        vertical_spacing=0.06,
    )
    for i, p in enumerate(panels, start=1):
        dense = np.unique(p.identity, return_inverse=True)[1]
        fig.add_trace(
            go.Scatter(
                x=p.xy[:, 0],
                y=p.xy[:, 1],
                mode="markers",
                marker={"size": 4, "color": dense, "colorscale": "Turbo", "showscale": False},
                showlegend=False,
                customdata=p.identity,
                hovertemplate="identity %{customdata}",
            ),
            row=i,
            col=1,
        )
        for d in np.unique(p.domain):
            own = p.domain == d
            name = domains[int(d)] if int(d) < len(domains) else f"domain {int(d)}"
            fig.add_trace(
                go.Scatter(
                    x=p.xy[own, 0],
                    y=p.xy[own, 1],
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=i == 1,
                    marker={"size": 4, "color": COLOURS[int(d) % len(COLOURS)]},
                ),
                row=i,
                col=2,
            )
        row_label(fig, i, p.shown, size=11)
    fig.update_xaxes(showticklabels=False, ticks="")
    fig.update_yaxes(showticklabels=False, ticks="")
    fig.update_layout(
        title=title,
        template="simple_white",
        width=640,
        height=280 * len(panels) + 140,
        margin={"l": 130, "r": 20, "t": 90, "b": 70},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.04, "yanchor": "top", "font": {"size": 10}},
    )
    return fig


__all__ = ["TSNE_POINTS", "tsne_figure", "tsne_info", "tsne_layout"]
