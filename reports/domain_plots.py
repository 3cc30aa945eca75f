"""Two figures of how adaptation carries across domains and data sizes:

- **Cross-domain** (ablation and sensitivity reports): per source -> target domain pair (a
  gallery image of one domain, a probe of another), each variant's verification accuracy on
  those pairs at the thresholds its trials applied (each pair at its fold's threshold, chosen
  on the other folds), mean over seeds with its 95% t interval. From the domains of each pair
  the trials kept (``pairs/<set>/source``, ``target`` in ``evaluation.npz``).
- **Few-shot** (sensitivity reports with a ``samples_per_identity`` axis): test accuracy
  against the training images per identity, a line per test set, mean over seeds with its 95%
  t band, from ``results.csv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from reports.ablation import COMPLETED
from reports.evaluation_plots import COLOURS
from reports.plots import FIGURE_HEIGHT, FIGURE_WIDTH, mean_ci
from reports.rundir.evaluation import NO_FOLD, Evaluation
from reports.rundir.info import RunInfo

#: The axis key of the training images per identity (every trainable that limits them names it so).
SHOTS_KEY = "samples_per_identity"
#: The test sets' accuracies a few-shot figure draws.
TEST_ACCURACY = re.compile(r"eval/[^/]+/acc")


# ---------------------------------------------------------------------------- cross-domain
def pair_accuracy(pairs: dict, rows: np.ndarray) -> float:
    """Accuracy of the pairs ``rows`` (a boolean mask) at the threshold each was scored at: its
    fold's (chosen on the other folds), or the set's threshold; NaN without one."""
    scores, labels, folds = pairs["scores"][rows], pairs["labels"][rows], pairs["folds"][rows]
    if pairs.get("fold_thresholds") is not None and (folds != NO_FOLD).all():
        thresholds = np.asarray(pairs["fold_thresholds"])[folds]
    elif pairs.get("threshold") is not None:
        thresholds = np.full(len(scores), float(pairs["threshold"]))
    else:
        return float("nan")
    return float(np.mean((scores >= thresholds) == (labels == 1))) if len(scores) else float("nan")


@dataclass(frozen=True)
class CrossDomainBar:
    """One variant on one source -> target pair of domains: the mean accuracy over seeds with its
    95% t interval, and the seeds it is over."""

    variant: str
    shown: str
    pair: str
    mean: float
    lo: float
    hi: float
    n: int


def cross_domain_info(
    evaluations: dict[str, list[Evaluation]], shown: dict[str, str] | None = None
) -> list[CrossDomainBar]:
    """A bar per variant and per (source, target) pair of different domains found in the pair
    sets that recorded their domains (each pair of domains counted once, from the set that holds
    most of its pairs)."""
    shown = shown or {}
    bars = []
    for v, evs in evaluations.items():
        per_pair: dict[tuple[int, int], list[float]] = {}
        names: list[str] = []
        for ev in evs:
            names = names or list(ev.domains)
            best: dict[tuple[int, int], tuple[int, float]] = {}
            for p in ev.pairs.values():
                if p.get("source") is None or p.get("target") is None:
                    continue
                combos = np.stack([p["source"], p["target"]], axis=1)
                for s, t in {tuple(map(int, c)) for c in combos}:
                    if s == t:
                        continue
                    rows = (p["source"] == s) & (p["target"] == t)
                    if rows.sum() > best.get((s, t), (0, 0.0))[0]:
                        best[(s, t)] = (int(rows.sum()), pair_accuracy(p, rows))
            for key, (_, acc) in best.items():
                per_pair.setdefault(key, []).append(acc)
        for (s, t), accs in sorted(per_pair.items()):
            name = lambda d: names[d] if d < len(names) else f"domain {d}"  # noqa: E731
            mean, lo, hi, n = mean_ci(np.asarray(accs, dtype=float))
            bars.append(CrossDomainBar(v, shown.get(v, v), f"{name(s)} → {name(t)}", mean, lo, hi, n))
    return bars


def cross_domain_figure(bars: list[CrossDomainBar], *, title: str):
    """Grouped bars: a group per source -> target pair, a bar per variant with its interval."""
    import plotly.graph_objects as go

    fig = go.Figure()
    variants = list(dict.fromkeys((b.variant, b.shown) for b in bars))
    for i, (v, label) in enumerate(variants):
        own = [b for b in bars if b.variant == v]
        fig.add_trace(
            go.Bar(
                x=[b.pair for b in own],
                y=[b.mean for b in own],
                name=label,
                marker={"color": COLOURS[i % len(COLOURS)]},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [b.hi - b.mean if np.isfinite(b.hi) else 0 for b in own],
                    "arrayminus": [b.mean - b.lo if np.isfinite(b.lo) else 0 for b in own],
                },
                customdata=[b.n for b in own],
                hovertemplate="%{x}: %{y:.4f} (n=%{customdata})",
            )
        )
    lows = [b.lo if np.isfinite(b.lo) else b.mean for b in bars if np.isfinite(b.mean)]
    fig.update_layout(
        title=title,
        barmode="group",
        template="simple_white",
        width=FIGURE_WIDTH,
        height=FIGURE_HEIGHT + 80,
        yaxis={"title": "accuracy", "range": [max(0.0, min(lows, default=0.5) - 0.05), 1.0]},
        xaxis={"title": "gallery domain → probe domain", "tickangle": -20},
        margin={"l": 60, "r": 20, "t": 60, "b": 90},
        legend={"orientation": "h", "x": 0, "y": -0.35, "yanchor": "top"},
    )
    return fig


# ---------------------------------------------------------------------------- few-shot
@dataclass(frozen=True)
class FewShotCurve:
    """One test set's accuracy at each number of training images per identity."""

    metric: str
    name: str
    shots: list[float]
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    n: list[int]


def fewshot_axis(meta: RunInfo) -> str | None:
    """The sensitivity axis that varies ``samples_per_identity`` alone, if the study has one."""
    for axis, points in (meta.axes or {}).items():
        if points and all(set(p.values) == {SHOTS_KEY} for p in points):
            return axis
    return None


def fewshot_info(df: pd.DataFrame, meta: RunInfo) -> list[FewShotCurve]:
    """A curve per test set whose accuracy results.csv holds (``eval/<set>/acc``), over the points
    of the few-shot axis in order of their shots; empty without such an axis."""
    axis = fewshot_axis(meta)
    if axis is None:
        return []
    points = sorted(meta.axes[axis], key=lambda p: float(p.values[SHOTS_KEY]))  # type: ignore[index]
    done = df[df["status"] == COMPLETED]
    metrics = [c for c in df.columns if TEST_ACCURACY.fullmatch(c)]
    curves = []
    for m in metrics:
        stats = [mean_ci(done.loc[done[meta.group] == p.point, m].to_numpy(dtype=float)) for p in points]
        if not any(s[3] for s in stats):
            continue
        mean, lo, hi, n = (np.array([s[i] for s in stats]) for i in range(4))
        curves.append(
            FewShotCurve(m, meta.metric_name(m), [float(p.values[SHOTS_KEY]) for p in points], mean, lo, hi, list(n))
        )
    return curves


def fewshot_figure(curves: list[FewShotCurve], *, title: str):
    """Accuracy against images per identity (log axis), a line per test set with its band."""
    import plotly.graph_objects as go

    from reports.evaluation_plots import _curve

    fig = go.Figure()
    for i, c in enumerate(curves):
        _curve(
            fig,
            np.asarray(c.shots),
            c.mean,
            c.lo,
            c.hi,
            n=min(c.n),
            colour=COLOURS[i % len(COLOURS)],
            name=c.name,
            hover="%{x} images per identity: %{y:.4f}",
            markers=True,
        )
    shots = sorted({s for c in curves for s in c.shots})
    fig.update_layout(
        title=title,
        template="simple_white",
        width=FIGURE_WIDTH,
        height=FIGURE_HEIGHT + 60,
        xaxis={
            "title": "training images per identity",
            "type": "log",
            "tickvals": shots,
            "ticktext": [f"{s:g}" for s in shots],
        },
        yaxis={"title": "test accuracy"},
        margin={"l": 60, "r": 20, "t": 60, "b": 90},
        legend={"orientation": "h", "x": 0, "y": -0.3, "yanchor": "top"},
    )
    return fig


__all__ = [
    "CrossDomainBar",
    "FewShotCurve",
    "cross_domain_figure",
    "cross_domain_info",
    "fewshot_figure",
    "fewshot_info",
    "pair_accuracy",
]
