"""Fairness at one global threshold, from the scores the trials kept (``evaluation.npz``).

For a grouping of the evaluation pairs (on synthfaces their domain: the pairs of
``eval/<domain>`` have both images in it; on a pair-list benchmark graded by an attribute of its
people, ``pairs/<set>/group``, the attribute's value both people share), the threshold is the one that gives a chosen FMR
over every group's impostor pairs together (the operating point a deployment fixes once), and
at it each group's FMR and FNMR, each group's ratio to the best (lowest) group, and the fairness
discrepancy rate

    FDR(alpha) = 1 - (alpha * max|dFMR| + (1 - alpha) * max|dFNMR|)

(de Freitas Pereira and Marcel, "Fairness in biometrics: a figure of merit to assess biometric
verification systems", IEEE T-BIOM 2021), the maxima over pairs of groups; 1 is perfectly fair.
Intervals: a bootstrap over identities (each pair resampled with its first image's identity),
the threshold chosen again in every resample, the 2.5th and 97.5th percentiles.

Written here: no well-kept library computes FDR or per-group rates at a shared threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports.rundir.evaluation import Evaluation, threshold_at_rate

#: The global FMRs the report tries, smallest first: the first the pooled impostor pairs can
#: measure (at least 1/FMR of them) is used.
FMR_TARGETS = (1e-3, 1e-2, 1e-1)
ALPHA = 0.5
RESAMPLES = 1000


@dataclass(frozen=True)
class Fairness:
    """FMR and FNMR of each group at the global threshold, their ratios to the best (lowest)
    group, FDR(alpha), and (lo, hi) bootstrap intervals over identities of each."""

    threshold: float
    target_fmr: float
    alpha: float
    fmr: dict
    fnmr: dict
    fmr_ratio: dict
    fnmr_ratio: dict
    fdr: float
    intervals: dict
    """name (``fmr/<group>``, ``fnmr/<group>``, ``fdr``) -> (lo, hi), the 2.5th and 97.5th
    percentiles over bootstrap resamples of the identities."""


def global_threshold(impostor_scores: np.ndarray, target_fmr: float) -> float:
    """The lowest threshold (``score >= t`` matches) whose FMR over these impostor pairs is at
    most ``target_fmr`` (the run directory's rule, ``threshold_at_rate``)."""
    return threshold_at_rate(impostor_scores, target_fmr)


def _rates(scores, labels, code, k, t) -> tuple[np.ndarray, np.ndarray]:
    """Each group's FMR (impostor pairs at or above ``t``) and FNMR (genuine pairs below it);
    ``code`` is each pair's group number (-1: no group), NaN for a group without such pairs.
    Counted with ``bincount``: the bootstrap calls this a thousand times per variant."""
    grouped, accepted = code >= 0, scores >= t
    out = []
    for own, wrong in ((grouped & (labels == 0), accepted), (grouped & (labels == 1), ~accepted)):
        n = np.bincount(code[own], minlength=k)
        hits = np.bincount(code[own], weights=wrong[own], minlength=k)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(n > 0, hits / np.maximum(n, 1), np.nan))
    return out[0], out[1]


def _fdr(fmr: dict, fnmr: dict, alpha: float) -> float:
    a, b = np.array(list(fmr.values())), np.array(list(fnmr.values()))
    if not (np.isfinite(a).any() and np.isfinite(b).any()):  # a resample without a group's impostors or genuines
        return float("nan")
    return float(1 - (alpha * (np.nanmax(a) - np.nanmin(a)) + (1 - alpha) * (np.nanmax(b) - np.nanmin(b))))


def _ratio(rates: dict) -> dict:
    best = min((v for v in rates.values() if np.isfinite(v)), default=float("nan"))
    return {g: (v / best if best > 0 else (1.0 if v == best else float("inf"))) for g, v in rates.items()}


def fairness(
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    identities: np.ndarray,
    *,
    target_fmr: float = 1e-3,
    alpha: float = 0.5,
    resamples: int = 1000,
    seed: int = 0,
) -> Fairness:
    """Fairness of one pair set: ``groups`` is each pair's group (both its images in it; pairs
    across groups take part in the global threshold only, with group ``None``), ``identities``
    the identity each pair is resampled by (its first image's). The threshold gives
    ``target_fmr`` over all impostor pairs; it is chosen again in every bootstrap resample."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    groups, identities = np.asarray(groups, dtype=object), np.asarray(identities)
    names = sorted({g for g in groups.tolist() if g is not None}, key=str)
    if not names:
        raise ValueError("no pair belongs to a group")
    if int(np.sum(labels == 0)) * target_fmr < 1 - 1e-9:
        raise ValueError(
            f"{int(np.sum(labels == 0))} impostor pairs cannot measure an FMR of {target_fmr:g} "
            f"(at least {int(np.ceil(1 / target_fmr))} are needed)"
        )
    code = np.array([-1 if g is None else names.index(g) for g in groups.tolist()], dtype=np.int64)
    k = len(names)

    def named(rates: np.ndarray) -> dict:
        return {n: float(v) for n, v in zip(names, rates)}

    t = global_threshold(scores[labels == 0], target_fmr)
    fmr, fnmr = (named(r) for r in _rates(scores, labels, code, k, t))
    # the bootstrap: identities drawn with replacement, each bringing all its pairs (rows kept
    # grouped by identity, so that a resample's rows are ranges of them)
    rng = np.random.default_rng(seed)
    ids, which = np.unique(identities, return_inverse=True)
    order = np.argsort(which, kind="stable")
    counts = np.bincount(which, minlength=len(ids))
    starts = np.cumsum(counts) - counts
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        pick = rng.integers(0, len(ids), len(ids))
        lengths = counts[pick]
        first = np.repeat(starts[pick] - (np.cumsum(lengths) - lengths), lengths)
        rows = order[first + np.arange(int(lengths.sum()))]
        s, y, c = scores[rows], labels[rows], code[rows]
        if not (y == 0).any():
            continue
        bf, bn = (named(r) for r in _rates(s, y, c, k, global_threshold(s[y == 0], target_fmr)))
        for key, v in (*((f"fmr/{n}", bf[n]) for n in names), *((f"fnmr/{n}", bn[n]) for n in names)):
            draws.setdefault(key, []).append(v)
        draws.setdefault("fdr", []).append(_fdr(bf, bn, alpha))
    intervals = {
        key: (float(np.nanpercentile(v, 2.5)), float(np.nanpercentile(v, 97.5)))
        for key, v in draws.items()
        if np.isfinite(v).any()
    }
    return Fairness(t, target_fmr, alpha, fmr, fnmr, _ratio(fmr), _ratio(fnmr), _fdr(fmr, fnmr, alpha), intervals)


def domain_pairs(evaluations: list[Evaluation]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(scores, labels, group, identity) of the per-domain test sets (``eval/<domain>``, those
    that know each pair's identity; not the cross-domain set, whose pairs span two domains),
    pooled over the trials (seeds) given; None when there are fewer than two such sets."""
    names = (
        sorted(
            set.intersection(
                *[{n for n, p in ev.pairs.items() if n.startswith("eval/") and "identity" in p} for ev in evaluations]
            )
            - {"eval/cross_domain"}
        )
        if evaluations
        else []
    )
    if len(names) < 2:
        return None
    parts = [(ev.pairs[n], n.split("/", 1)[1]) for ev in evaluations for n in names]
    scores = np.concatenate([p["scores"] for p, _ in parts]).astype(np.float64)
    labels = np.concatenate([p["labels"] for p, _ in parts]).astype(int)
    groups = np.concatenate([np.full(len(p["scores"]), g, dtype=object) for p, g in parts])
    identity = np.concatenate([p["identity"] for p, _ in parts])
    return scores, labels, groups, identity


def grouped_sets(evaluations: dict[str, list[Evaluation]]) -> list[str]:
    """The test sets (``eval/...``) whose pairs every trial kept with an attribute's groups."""
    evs = [ev for group in evaluations.values() for ev in group]
    if not evs:
        return []
    common = set.intersection(*[{n for n, p in ev.pairs.items() if p.get("group") is not None} for ev in evs])
    return sorted(n for n in common if n.startswith("eval/"))


def attribute_pairs(name: str):
    """The pooling of ``name``'s pairs by their attribute's groups (``fairness_table``'s ``pool``):
    (scores, labels, group names, identity) over the trials given, None without groups."""

    def pool(evaluations: list[Evaluation]):
        parts = [ev for ev in evaluations if name in ev.pairs and ev.pairs[name].get("group") is not None]
        if not parts or any(p.get("identity") is None for p in (ev.pairs[name] for ev in parts)):
            return None
        names = parts[0].groups
        scores = np.concatenate([ev.pairs[name]["scores"] for ev in parts]).astype(np.float64)
        labels = np.concatenate([ev.pairs[name]["labels"] for ev in parts]).astype(int)
        code = np.concatenate([ev.pairs[name]["group"] for ev in parts])
        groups = np.array([names[c] if 0 <= c < len(names) else None for c in code.tolist()], dtype=object)
        identity = np.concatenate([ev.pairs[name]["identity"] for ev in parts])
        return scores, labels, groups, identity

    return pool


def fairness_table(
    evaluations: dict[str, list[Evaluation]], shown: dict[str, str], pool=None, group_label: str = "domain"
) -> tuple[pd.DataFrame, str]:
    """One row per variant and group (the variant's seeds' pairs pooled by ``pool``, default the
    per-domain test sets, ``domain_pairs``): the group's FMR and FNMR at the variant's global
    threshold with their intervals and their ratios to the best group's; the variant's
    threshold and FDR with its interval on its first row. Returns the table and the target FMR
    in words ("" when the run has no such pairs)."""
    pool = pool or domain_pairs
    pooled = {v: pool(evs) for v, evs in evaluations.items() if evs}
    pooled = {v: p for v, p in pooled.items() if p is not None}
    if not pooled:
        return pd.DataFrame(), ""
    n_imp = min(int(np.sum(p[1] == 0)) for p in pooled.values())
    target = next((f for f in FMR_TARGETS if n_imp * f >= 1 - 1e-9), FMR_TARGETS[-1])
    rows = []
    for v, (scores, labels, groups, identity) in pooled.items():
        f = fairness(scores, labels, groups, identity, target_fmr=target, alpha=ALPHA, resamples=RESAMPLES)
        lo, hi = f.intervals.get("fdr", (np.nan, np.nan))
        for k, g in enumerate(f.fmr):
            row = {"variant": shown.get(v, v) if k == 0 else "", group_label: g}
            for what, rates, ratio in (("FMR", f.fmr, f.fmr_ratio), ("FNMR", f.fnmr, f.fnmr_ratio)):
                glo, ghi = f.intervals.get(f"{what.lower()}/{g}", (np.nan, np.nan))
                row[what] = f"{rates[g]:.4f} [{glo:.4f}, {ghi:.4f}]"
                row[f"{what}/best"] = _times(ratio[g])
            row["threshold"] = f"{f.threshold:.4f}" if k == 0 else ""
            row[f"FDR({ALPHA:g})"] = f"{f.fdr:.4f} [{lo:.4f}, {hi:.4f}]" if k == 0 else ""
            row["_fair"] = f
            row["_variant"] = v
            rows.append(row)
    return pd.DataFrame(rows), f"{target:g}"


def _times(ratio: float) -> str:
    """A group's rate over the best group's: ``1.00``; ``inf`` where the best group's is 0 and this one's is not."""
    return "inf" if not np.isfinite(ratio) else f"{ratio:.2f}"


def summary_frame(table: pd.DataFrame) -> pd.DataFrame:
    """One row per variant, for a paper's page: its highest and lowest FMR and FNMR over the
    domains (which domain), and FDR with its interval."""
    rows = []
    for _, first in table.drop_duplicates("_variant").iterrows():
        f = first["_fair"]
        row = {"variant": first["variant"]}
        for what, rates in (("FMR", f.fmr), ("FNMR", f.fnmr)):
            hi, lo = max(rates, key=rates.get), min(rates, key=rates.get)
            row[f"highest {what}"] = f"{rates[hi]:.4f} ({hi})"
            row[f"lowest {what}"] = f"{rates[lo]:.4f} ({lo})"
        row[f"FDR({ALPHA:g})"] = first[f"FDR({ALPHA:g})"]
        rows.append(row)
    return pd.DataFrame(rows)


def fairness_figure(table: pd.DataFrame, *, title: str):
    """FMR and FNMR per domain (bars) for each variant at the global threshold, with the
    bootstrap intervals as error bars."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from reports.evaluation_plots import COLOURS
    from reports.plots import FIGURE_HEIGHT

    fig = make_subplots(rows=1, cols=2, subplot_titles=("FMR at the global threshold", "FNMR at the global threshold"))
    firsts = table.drop_duplicates("_variant")
    groups = list(firsts["_fair"].iloc[0].fmr)
    for k, (_, row) in enumerate(firsts.iterrows()):
        f = row["_fair"]
        for col, (what, rates) in enumerate((("fmr", f.fmr), ("fnmr", f.fnmr)), start=1):
            y = [rates[g] for g in groups]
            iv = [f.intervals.get(f"{what}/{g}", (np.nan, np.nan)) for g in groups]
            fig.add_trace(
                go.Bar(
                    x=groups,
                    y=y,
                    name=str(row["variant"]),
                    legendgroup=str(row["variant"]),
                    showlegend=col == 1,
                    marker={"color": COLOURS[k % len(COLOURS)]},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [max(hi - v, 0) for v, (_, hi) in zip(y, iv)],
                        "arrayminus": [max(v - lo, 0) for v, (lo, _) in zip(y, iv)],
                    },
                ),
                row=1,
                col=col,
            )
    fig.update_layout(
        title=title,
        template="simple_white",
        barmode="group",
        width=640,
        height=FIGURE_HEIGHT + 60,
        margin={"l": 60, "r": 20, "t": 80, "b": 150},
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -0.3, "yanchor": "top", "font": {"size": 10}},
        font={"size": 11},
    )
    return fig


def write_fairness(
    evaluations: dict[str, list[Evaluation]],
    shown: dict[str, str],
    out: Path,
    figures,
    *,
    label: str,
    note: str,
    grouped: str | None = None,
) -> str:
    """``fairness.{csv,md,tex}`` and ``fig_fairness`` across the domains, or, for ``grouped`` (a
    test set graded by an attribute), ``fairness_<set>.*`` and ``fig_fairness_<set>`` across the
    attribute's groups; the page's section (empty without such pairs)."""
    from reports.html import _e, frame_html
    from reports.latex import frame_latex
    from reports.markdown import frame_markdown
    from reports.plots import write_figure

    if grouped is None:
        stem, what, groups = "fairness", "domains", "domain"
        table, target = fairness_table(evaluations, shown)
    else:
        set_name = grouped.split("/", 1)[1]
        attribute = next((ev.grouping for evs in evaluations.values() for ev in evs if ev.grouping), "attribute")
        stem, what, groups = f"fairness_{set_name}", f"{attribute} groups on {set_name}", attribute
        table, target = fairness_table(evaluations, shown, attribute_pairs(grouped), group_label=attribute)
    if table.empty:
        return ""
    frame = table.drop(columns=["_fair", "_variant"])
    summary = summary_frame(table)
    caption = (
        f"Fairness across {what} at one global threshold (FMR {target} over every group's impostor pairs "
        f"together; its threshold on each variant's first row), the seeds' test pairs pooled: FMR and FNMR "
        f"per {groups} [95% bootstrap interval over identities], each over the best {groups}'s (inf: the best "
        f"is 0), and FDR(alpha={ALPHA:g}) (1: no difference between groups). {note}"
    ).strip()
    frame.to_csv(out / f"{stem}.csv", index=False)
    (out / f"{stem}.md").write_text(frame_markdown(frame, caption))
    short = (
        f"Fairness across {what} at one global threshold (FMR {target} over every group's impostor pairs "
        f"together), the seeds' test pairs pooled: each variant's highest and lowest FMR and FNMR over the "
        f"groups, and FDR(alpha={ALPHA:g}) [95% bootstrap interval over identities] (1: no difference "
        f"between groups); every group's rates in {stem}.csv. {note}"
    ).strip()
    (out / f"{stem}.tex").write_text(frame_latex(summary, caption=short, label=f"{label}-{stem.replace('_', '-')}"))
    title = f"Fairness across {what} at the global threshold (FMR {target})"
    write_figure(fairness_figure(table, title=title), out, f"fig_{stem}", figures, title=title)
    links = " · ".join(f"<a href='{stem}{x}'>{stem}{x}</a>" for x in (".tex", ".md", ".csv"))
    return f"<p><small>{_e(caption)}</small></p>" + frame_html(frame) + f"<p>{links}</p>"


__all__ = ["attribute_pairs", "fairness", "fairness_table", "global_threshold", "grouped_sets", "write_fairness"]
