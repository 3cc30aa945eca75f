"""A probe study's confusion matrices, from the predictions each trial kept
(``predictions.npy``, ``true_labels.npy`` and ``names.json`` in its folder, the note's files):
per variant, the test images of each true class by the class they were predicted as, the
seeds pooled; past ``MAX_CLASSES`` classes, the most-confused ones (a confusion matrix of
hundreds of classes is unreadable). Beside it, each class's F1 per variant
(``per_class_f1.csv``), averaged over seeds."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reports.ablation import COMPLETED
from reports.rundir.info import RunInfo

#: Most classes a confusion matrix shows; past it, the most-confused classes.
MAX_CLASSES = 20
#: Most variants drawn (in the study's order).
MAX_PANELS = 4


@dataclass(frozen=True)
class ConfusionPanel:
    """One variant's confusions: ``counts[i, j]``, the test images of class ``shown[i]``
    predicted as ``shown[j]`` over its seeds; ``rates``, each row over every test image of its
    class (all classes, not only those shown: a row of a cut matrix sums to less than 1)."""

    variant: str
    classes: list[str]
    counts: np.ndarray
    rates: np.ndarray
    total_classes: int
    seeds: int


def most_confused(counts: np.ndarray, k: int) -> list[int]:
    """Up to ``k`` class indices, taken from the off-diagonal cells in order of their counts
    (largest first; ties by row, then column), both classes of each; the first classes
    complete a list with fewer confusions than that."""
    n = len(counts)
    if n <= k:
        return list(range(n))
    off = counts.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    order = np.lexsort((np.arange(n * n) % n, np.arange(n * n) // n, -off.ravel()))
    picked: list[int] = []
    for cell in order:
        if off.flat[cell] == 0 or len(picked) >= k:
            break
        for c in (int(cell // n), int(cell % n)):
            if c not in picked and len(picked) < k:
                picked.append(c)
    picked += [c for c in range(n) if c not in picked][: k - len(picked)]
    return picked


def confusion_info(run_dir: Path, df: pd.DataFrame, meta: RunInfo, trial_dir) -> list[ConfusionPanel]:
    """A panel per variant (the first ``MAX_PANELS`` of the study's) whose completed trials kept
    their predictions; ``trial_dir(run_dir, study, trial_name)``: a trial's folder."""
    from sklearn.metrics import confusion_matrix

    group = meta.group
    done = df[df["status"] == COMPLETED]
    panels = []
    for variant in list(meta.variants or [])[:MAX_PANELS]:
        counts, names, seeds = None, None, 0
        for trial in done.loc[done[group] == variant, "trial_name"]:
            d = trial_dir(run_dir, meta.study, str(trial))
            files = [d / "predictions.npy", d / "true_labels.npy", d / "names.json"]
            if not all(f.is_file() for f in files):
                continue
            own = json.loads(files[2].read_text())
            if names is not None and own != names:
                continue  # another class list (cannot be pooled): left out
            names = own
            c = confusion_matrix(np.load(files[1]), np.load(files[0]), labels=np.arange(len(names)))
            counts = c if counts is None else counts + c
            seeds += 1
        if counts is None or names is None:
            continue
        shown = most_confused(counts, MAX_CLASSES)
        totals = counts.sum(axis=1, keepdims=True)
        rates = np.divide(counts, totals, out=np.full(counts.shape, np.nan), where=totals > 0)
        cut = np.ix_(shown, shown)
        panels.append(ConfusionPanel(variant, [names[i] for i in shown], counts[cut], rates[cut], len(names), seeds))
    return panels


def confusion_figure(panels: list[ConfusionPanel], display: dict[str, str], *, title: str):
    """One heatmap per variant: rows the true classes, columns the predicted ones, each cell the
    share of the true class's test images (seeds pooled), the count written in it."""
    from reports.plots import share_heatmaps

    titles = [
        f"{display.get(p.variant, p.variant)} ({p.seeds} seed{'s' if p.seeds != 1 else ''}"
        + (
            f"; {len(p.classes)} most-confused of {p.total_classes} classes)"
            if len(p.classes) < p.total_classes
            else ")"
        )
        for p in panels
    ]
    heatmaps = [
        dict(
            z=p.rates,
            x=p.classes,
            y=p.classes,
            text=p.counts,
            texttemplate="%{text}" if len(p.classes) <= 12 else None,
            hovertemplate="true %{y}, predicted %{x}: %{text} images (%{z:.2f})<extra></extra>",
        )
        for p in panels
    ]
    return share_heatmaps(heatmaps, titles, title=title, y_title="true class", scale="share", tick_size=8)


def per_class_f1(run_dir: Path, df: pd.DataFrame, meta: RunInfo, trial_dir) -> pd.DataFrame:
    """Class x variant: each class's test F1 (the trials' ``results.csv``), the mean over the
    variant's completed seeds; classes with test images only."""
    group = meta.group
    done = df[df["status"] == COMPLETED]
    columns = {}
    for variant in meta.variants or []:
        frames = [
            pd.read_csv(p, keep_default_na=False)
            for t in done.loc[done[group] == variant, "trial_name"]
            if (p := trial_dir(run_dir, meta.study, str(t)) / "results.csv").is_file()
        ]
        if frames:
            per = pd.concat(frames)
            columns[variant] = per[per["support"] > 0].groupby("name", sort=False)["f1"].mean()
    return pd.DataFrame(columns).rename_axis("class").reset_index() if columns else pd.DataFrame()


__all__ = ["MAX_CLASSES", "ConfusionPanel", "confusion_figure", "confusion_info", "most_confused", "per_class_f1"]
