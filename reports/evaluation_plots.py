"""Figures drawn from what the trials' evaluations computed (``evaluation.npz``, kept beside each
trial's last checkpoint: ``reports.rundir.evaluation``), never by running a model again:

- ROC on a log-FAR axis and DET (FNMR against FMR, both log) per variant: the mean over
  seeds with its 95% t band, the TAR@FAR operating points marked;
- genuine and impostor score histograms per variant and evaluation set, pooled over seeds,
  with the threshold the 10-fold protocol applied (the mean over folds, each chosen on the
  other folds) or the one chosen on validation pairs;
- CMC curves of gallery-probe identification, and the t-SNE of the test embeddings
  (``reports.tsne_plots``).

Each is computed as a data object (``roc_info``, ``score_info``) apart from drawing it. The
figures show the test identities' sets (``eval/...``) of the trials that ran to completion,
at their final evaluation: the epoch whose numbers ``results.csv`` holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from reports.ablation import COMPLETED
from reports.html import _e
from reports.plots import FIGURE_HEIGHT, Figures, _layout, mean_ci, write_figure
from reports.rundir.evaluation import DamagedEvaluation, Evaluation, read_evaluation, trial_evaluation
from reports.rundir.info import RunInfo

#: The operating points a face paper reports (TAR at these FARs), marked where measurable.
OPERATING_FARS = (1e-4, 1e-3, 1e-2, 1e-1)
GRID_POINTS = 80


def trial_evaluations(run_dir: Path, df: pd.DataFrame, meta: RunInfo, group: str) -> dict[str, list[Evaluation]]:
    """Group -> the final evaluations of its completed trials (in seed order); trials without
    a file (a run made before they were kept) are left out, a damaged file is said in one line."""
    out: dict[str, list[Evaluation]] = {}
    done = df[df["status"] == COMPLETED].sort_values("seed", kind="stable")
    for _, row in done.iterrows():
        path = trial_evaluation(run_dir, meta.study, str(row["trial_name"]))
        if path is None:
            continue
        try:
            out.setdefault(str(row[group]), []).append(read_evaluation(path))
        except DamagedEvaluation as err:
            from reports.errors import ReportInputError

            raise ReportInputError(str(err)) from None
    return out


def shown_set(meta: RunInfo, evaluations: dict[str, list[Evaluation]], part: str = "pairs") -> str | None:
    """The pair set the ROC shows (``part="ranks"``: the identification set the CMC shows): the
    study metric's, on the test identities (``val/x/acc`` chooses; ``eval/x`` is what is reported
    of it), else the first test set every trial has."""
    name = meta.metric.rsplit("/", 1)[0]
    candidates = [f"eval/{name.split('/', 1)[1]}" if name.startswith("val/") else name]
    have = [set(getattr(ev, part)) for evs in evaluations.values() for ev in evs]
    if not have:
        return None
    common = set.intersection(*have)
    for c in candidates + sorted(s for s in common if s.startswith("eval/")):
        if c in common:
            return c
    return None


def tar_at(scores: np.ndarray, labels: np.ndarray, fars: np.ndarray) -> np.ndarray:
    """TAR at each FAR: the largest true accept rate among the operating points whose false
    accept rate is at most the FAR (sklearn's ``roc_curve``, every point kept); NaN where fewer
    than 1/FAR impostor pairs make the rate unmeasurable."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    n_neg = int(np.sum(labels == 0))
    out = np.array([tpr[fpr <= f].max() for f in fars], dtype=float)
    out[fars * n_neg < 1 - 1e-9] = np.nan  # (1/n, as a float, times n may fall short of 1)
    return out


@dataclass(frozen=True)
class RocCurve:
    """One variant: TAR on the FAR grid, mean over seeds with its 95% t band (``n`` seeds)."""

    variant: str
    shown: str
    tar: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: int
    points: dict = field(default_factory=dict)
    """FAR -> mean TAR at the operating points that are measurable for every seed."""


@dataclass(frozen=True)
class RocInfo:
    set_name: str
    far: np.ndarray
    curves: list[RocCurve]


def roc_info(evaluations: dict[str, list[Evaluation]], set_name: str, shown: dict[str, str] | None = None) -> RocInfo:
    """The FAR grid runs from the smallest FAR every trial can measure (1 over its impostor
    pairs) to 1, log-spaced."""
    shown = shown or {}
    pairs = {v: [ev.pairs[set_name] for ev in evs if set_name in ev.pairs] for v, evs in evaluations.items()}
    n_neg = min(int(np.sum(p["labels"] == 0)) for ps in pairs.values() for p in ps)
    far = np.logspace(math.log10(1.0 / n_neg), 0, GRID_POINTS)
    far[0], far[-1] = 1.0 / n_neg, 1.0
    curves = []
    for v, ps in pairs.items():
        if not ps:
            continue
        tars = np.stack([tar_at(p["scores"].astype(np.float64), p["labels"], far) for p in ps])
        points = {}
        for f in OPERATING_FARS:
            at = np.array([tar_at(p["scores"].astype(np.float64), p["labels"], np.array([f]))[0] for p in ps])
            if np.isfinite(at).all():
                points[f] = float(at.mean())
        curves.append(RocCurve(v, shown.get(v, v), *_mean_band(tars), len(ps), points))
    return RocInfo(set_name, far, curves)


COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"]


def _mean_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column of (seeds x points): the mean over seeds and its 95% t interval."""
    band = [mean_ci(values[:, j]) for j in range(values.shape[1])]
    return np.array([b[0] for b in band]), np.array([b[1] for b in band]), np.array([b[2] for b in band])


def _curve(fig, x, y, lo, hi, *, n: int, colour: str, name: str, hover: str, markers: bool = False) -> None:
    """A mean curve with its 95% band (drawn where there are two seeds or more)."""
    import plotly.graph_objects as go

    if n > 1:
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([x, x[::-1]]),
                y=np.concatenate([hi, lo[::-1]]),
                fill="toself",
                fillcolor=_rgba(colour, 0.15),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="lines+markers" if markers else "lines",
            name=name,
            line={"color": colour, "width": 2},
            marker={"size": 5},
            hovertemplate=hover,
        )
    )


def row_label(fig, row: int, text: str, *, size: int) -> None:
    """``text`` to the left of a subplot row (a variant's name beside its panels)."""
    axis = fig.get_subplot(row, 1).yaxis
    fig.add_annotation(
        text=text,
        xref="paper",
        yref="paper",
        x=-0.02,
        y=sum(axis.domain) / 2,
        xanchor="right",
        showarrow=False,
        font={"size": size},
    )


def _legend_above(fig) -> None:
    """The taller curve figures' layout: the legend in a row above the plot."""
    fig.update_layout(
        height=FIGURE_HEIGHT + 60,
        margin={"l": 60, "r": 20, "t": 90, "b": 50},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom", "font": {"size": 10}},
    )


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def roc_figure(info: RocInfo, *, det: bool, title: str):
    """ROC (TAR against FAR, FAR on a log axis) or DET (FNMR = 1 - TAR against FMR, both log);
    each variant's mean over seeds with its 95% band, its operating points as markers."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, c in enumerate(info.curves):
        colour = COLOURS[k % len(COLOURS)]
        y, lo, hi = (1 - c.tar, 1 - c.hi, 1 - c.lo) if det else (c.tar, c.lo, c.hi)
        hover = "FAR %{x:.2g}: " + ("FNMR" if det else "TAR") + " %{y:.4f}"
        _curve(fig, info.far, y, lo, hi, n=c.n, colour=colour, name=f"{c.shown} (n={c.n})", hover=hover)
        if c.points:
            fars = list(c.points)
            tars = np.array(list(c.points.values()))
            fig.add_trace(
                go.Scatter(
                    x=fars,
                    y=1 - tars if det else tars,
                    mode="markers",
                    marker={"color": colour, "size": 8, "symbol": "circle-open", "line": {"width": 2}},
                    showlegend=False,
                    hovertemplate=c.shown + ": TAR@FAR=%{x:.0e} %{customdata:.4f}",
                    customdata=tars,
                )
            )
    _layout(fig, title, "false match rate (FMR)" if det else "false accept rate (FAR)", "FNMR" if det else "TAR")
    fig.update_xaxes(type="log", exponentformat="power")
    if det:
        fig.update_yaxes(type="log", exponentformat="power")
    else:
        fig.update_yaxes(range=[0, 1.02])
    _legend_above(fig)
    return fig


@dataclass(frozen=True)
class ScoreCell:
    """One variant and set: its seeds' genuine and impostor scores pooled, and the threshold."""

    genuine: np.ndarray
    impostor: np.ndarray
    threshold: float


@dataclass(frozen=True)
class ScoreInfo:
    variants: list[str]
    shown: list[str]
    sets: list[str]
    cells: dict


def score_info(evaluations: dict[str, list[Evaluation]], shown: dict[str, str] | None = None) -> ScoreInfo:
    """Per variant and test set with pairs in every trial: the scores pooled over seeds, and
    the threshold drawn: the mean of the thresholds the trials applied (their 10-fold
    protocol's per fold, or the one chosen on validation pairs), finite ones only."""
    shown = shown or {}
    variants = [v for v, evs in evaluations.items() if evs]
    have = [set(ev.pairs) for v in variants for ev in evaluations[v]]
    sets = sorted(s for s in set.intersection(*have) if s.startswith("eval/")) if have else []
    cells = {}
    for v in variants:
        for s in sets:
            ps = [ev.pairs[s] for ev in evaluations[v]]
            scores = np.concatenate([p["scores"] for p in ps]).astype(np.float64)
            labels = np.concatenate([p["labels"] for p in ps])
            ts = np.concatenate(
                [
                    np.atleast_1d(p["fold_thresholds"] if "fold_thresholds" in p else p.get("threshold", np.nan))
                    for p in ps
                ]
            ).astype(np.float64)
            ts = ts[np.isfinite(ts)]
            cells[(v, s)] = ScoreCell(
                scores[labels == 1], scores[labels == 0], float(ts.mean()) if len(ts) else math.nan
            )
    return ScoreInfo(variants, [shown.get(v, v) for v in variants], sets, cells)


def score_figure(info: ScoreInfo, *, title: str):
    """A grid, variants by rows and test sets by columns: genuine (blue) and impostor (red)
    score histograms on one scale (density), the threshold as a dashed line."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows, cols = len(info.variants), len(info.sets)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        shared_xaxes=True,
        column_titles=[s.split("/", 1)[1] for s in info.sets],
        horizontal_spacing=0.03,
        vertical_spacing=0.02 if rows > 6 else 0.04,
    )
    lo = min((float(np.min(c.impostor)) for c in info.cells.values() if len(c.impostor)), default=-1.0)
    hi = max((float(np.max(c.genuine)) for c in info.cells.values() if len(c.genuine)), default=1.0)
    bins = {"start": lo, "end": hi, "size": (hi - lo) / 40 or 0.05}
    for i, v in enumerate(info.variants, start=1):
        for j, s in enumerate(info.sets, start=1):
            cell = info.cells[(v, s)]
            first = i == 1 and j == 1
            for values, name, colour in ((cell.genuine, "genuine", "#1f77b4"), (cell.impostor, "impostor", "#d62728")):
                fig.add_trace(
                    go.Histogram(
                        x=values,
                        xbins=bins,
                        histnorm="probability density",
                        name=name,
                        legendgroup=name,
                        showlegend=first,
                        marker={"color": _rgba(colour, 0.55)},
                    ),
                    row=i,
                    col=j,
                )
            if math.isfinite(cell.threshold):
                fig.add_vline(x=cell.threshold, line_dash="dash", line_color="black", line_width=1, row=i, col=j)
    for i, name in enumerate(info.shown, start=1):  # each variant's name beside its row, read left to right
        row_label(fig, i, name, size=10)
    fig.update_layout(
        title=title,
        template="simple_white",
        barmode="overlay",
        width=max(640, 130 * cols + 170),
        height=max(FIGURE_HEIGHT, 110 * rows + 120),
        margin={"l": 150, "r": 20, "t": 90, "b": 60},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.04, "yanchor": "bottom"},
        font={"size": 10},
    )
    fig.update_yaxes(showticklabels=False)
    fig.update_xaxes(matches="x", tickangle=0)  # one score axis for every panel
    fig.update_xaxes(title_text="cosine similarity", row=rows, col=(cols + 1) // 2)
    fig.update_annotations(font_size=10)
    return fig


#: The CMC is drawn up to this rank (or the largest rank a true identity took, if lower).
CMC_MAX_RANK = 20


@dataclass(frozen=True)
class CmcInfo:
    """Each variant's CMC: the share of probes whose true identity ranks at most k, for k from 1,
    mean over seeds with the 95% t band (``n`` seeds)."""

    set_name: str
    ranks: np.ndarray
    curves: list[RocCurve]


def cmc_info(evaluations: dict[str, list[Evaluation]], set_name: str, shown: dict[str, str] | None = None) -> CmcInfo:
    shown = shown or {}
    per = {v: [ev.ranks[set_name]["mate_rank"] for ev in evs if set_name in ev.ranks] for v, evs in evaluations.items()}
    top = max(int(np.max(r)) for rs in per.values() for r in rs)
    ks = np.arange(1, min(CMC_MAX_RANK, top) + 1)
    curves = []
    for v, rs in per.items():
        if not rs:
            continue
        hits = np.stack([[np.mean(r <= k) for k in ks] for r in rs])
        curves.append(RocCurve(v, shown.get(v, v), *_mean_band(hits), len(rs)))
    return CmcInfo(set_name, ks, curves)


def cmc_figure(info: CmcInfo, *, title: str):
    """Identification rate against rank, each variant's mean over seeds with its 95% band."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for k, c in enumerate(info.curves):
        colour = COLOURS[k % len(COLOURS)]
        name, hover = f"{c.shown} (n={c.n})", "rank %{x}: %{y:.4f}"
        _curve(fig, info.ranks, c.tar, c.lo, c.hi, n=c.n, colour=colour, name=name, hover=hover, markers=True)
    _layout(fig, title, "rank", "identification rate")
    fig.update_yaxes(range=[0, 1.02])
    _legend_above(fig)
    return fig


def _optional_figures(evaluations: dict[str, list[Evaluation]], shown: dict[str, str], out_dir: Path, figures) -> str:
    """The figures drawn only where the trials kept what they need: routing (a model that routes
    its images to domain adapters) and across domains (pairs that know their images' domains);
    returns what the drawn ones show, for the page's note."""
    from reports.domain_plots import cross_domain_figure, cross_domain_info
    from reports.routing_plots import routing_figure, routing_info

    optional = (
        (
            "fig_routing",
            "Routing: each domain's test images, mean mixture weight per adapter",
            routing_info,
            routing_figure,
            " Routing: the mixture weights the domain classifier gave each test image at the final evaluation "
            "(the mean of the image's and its mirror image's under the flip test), averaged over the images of "
            "each true domain, then over seeds; an adapter is named by the training domains it was trained for.",
        ),
        (
            "fig_cross_domain",
            "Across domains: accuracy per gallery → probe domain pair (mean over seeds, 95% CI)",
            cross_domain_info,
            cross_domain_figure,
            " Across domains: the test pairs of a gallery image of one domain and a probe of another, per pair of "
            "domains, scored at the threshold each trial applied to them (each pair at its fold's, chosen on the "
            "other folds): the accuracy per trial, then the mean over seeds with its 95% t interval.",
        ),
    )
    notes = ""
    for stem, title, info_of, figure_of, note in optional:
        info = info_of(evaluations, shown)
        if info:
            write_figure(figure_of(info, title=title), out_dir, stem, figures, title=title)
            notes += note
    return notes


def evaluation_figures(
    run_dir: Path,
    df: pd.DataFrame,
    meta: RunInfo,
    out_dir: Path,
    figures: Figures,
    *,
    shown: dict[str, str],
    evaluations: dict[str, list[Evaluation]] | None = None,
    tsne_of: Sequence[str] = (),
) -> str:
    """``fig_roc``, ``fig_det`` and ``fig_scores`` into ``figures``; returns a note for the page
    (what they show, or why there are none)."""
    if evaluations is None:
        evaluations = trial_evaluations(run_dir, df, meta, meta.group)
    ranked = shown_set(meta, evaluations, "ranks")
    cmc_note = ""
    if ranked is not None:
        what = ranked.split("/", 1)[1]
        title = f"CMC on the test identities ({what}): mean over seeds, 95% band"
        cmc = cmc_info(evaluations, ranked, shown)
        write_figure(cmc_figure(cmc, title=title), out_dir, "fig_cmc", figures, title=title)
        cmc_note = (
            f"<p><small>CMC: for each rank k, the share of the {_e(what)} probes whose true identity ranks "
            "k-th or better among the gallery identities (another identity scoring as high counts ahead), "
            "from each completed trial's <code>evaluation.npz</code>.</small></p>"
        )
    name = shown_set(meta, evaluations)
    if name is None:
        return cmc_note or (
            "<p class=warn>No ROC, DET or score histograms: the trials kept no evaluation file "
            "(a run made before they were kept, or a trainable that keeps none).</p>"
        )
    what = name.split("/", 1)[1]
    roc = roc_info(evaluations, name, shown)
    title = f"ROC on the test identities ({what}): mean over seeds, 95% band"
    write_figure(roc_figure(roc, det=False, title=title), out_dir, "fig_roc", figures, title=title)
    title = f"DET on the test identities ({what}): mean over seeds, 95% band"
    write_figure(roc_figure(roc, det=True, title=title), out_dir, "fig_det", figures, title=title)
    scores = score_info(evaluations, shown)
    title = "Genuine and impostor scores on the test identities (seeds pooled; dashed: the threshold applied)"
    write_figure(score_figure(scores, title=title), out_dir, "fig_scores", figures, title=title)
    from reports.tsne_plots import TSNE_POINTS, tsne_figure, tsne_info

    tsne = tsne_info(evaluations, list(tsne_of), shown)
    tsne_note = ""
    if tsne:
        domains = next((ev.domains for evs in evaluations.values() for ev in evs if ev.domains), [])
        title = "t-SNE of the test identities' embeddings"
        write_figure(tsne_figure(tsne, domains, title=title), out_dir, "fig_tsne", figures, title=title)
        tsne_note = (
            f" t-SNE: scikit-learn's (2 dimensions, PCA start, seed 0, 500 iterations) of the test images' embeddings at the "
            f"final evaluation of {' and '.join(p.shown for p in tsne)} (the first seed's trial; at most "
            f"{TSNE_POINTS} images, the same in each); a layout, not a measurement: distances between clusters "
            "mean little."
        )
    elif tsne_of:
        tsne_note = " No t-SNE: the trials kept no embeddings (the spec's save_embeddings: true keeps them)."
    more = _optional_figures(evaluations, shown, out_dir, figures)
    return cmc_note + (
        f"<p><small>ROC and DET: the {_e(what)} pairs of the final evaluation of "
        f"every completed trial, read from its <code>evaluation.npz</code>; TAR at a FAR is the largest TAR whose "
        f"FAR is at most it, drawn from 1/{int(round(1 / roc.far[0]))} (one impostor pair) up; circles: TAR at "
        f"FAR {', '.join(f'{f:g}' for f in OPERATING_FARS)} where every seed has enough impostor pairs. "
        "Score histograms: cosine similarity, genuine (same identity) and impostor pairs."
        f"{_e(tsne_note)}{_e(more)}</small></p>"
    )


__all__ = ["evaluation_figures", "roc_info", "score_info", "shown_set", "tar_at", "trial_evaluations"]
