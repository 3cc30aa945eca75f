"""Pair verification metrics: the standard 10-fold accuracy, ROC AUC and TAR at FAR.

The 10-fold protocol (LFW "View 2", as in insightface's ``verification.py``): the pairs,
in their given order, are cut into 10 contiguous folds; for each fold the threshold that
maximises accuracy on the other nine is applied to it; the result is the mean and the
(population) standard deviation of the ten fold accuracies. The threshold is therefore
never chosen on the pairs it is scored on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from trainables.evaluation.keys import FARS, VERIFICATION_KEYS, tar_key  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class FoldAccuracy:
    mean: float
    std: float
    per_fold: tuple[float, ...]
    thresholds: tuple[float, ...]


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising accuracy of ``score >= t`` (ties kept together).

    Among equally good cuts the lowest is taken; the threshold lies halfway between the
    two scores it separates, or at +-inf when every pair goes to one side.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.int64)
    n = len(s)
    neg_below = np.concatenate([[0], np.cumsum(1 - y)])  # negatives rejected by a cut before i
    pos_above = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])  # positives accepted from i on
    correct = neg_below + pos_above
    valid = np.ones(n + 1, dtype=bool)
    valid[1:n] = s[1:] > s[:-1]
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        return -np.inf
    if i == n:
        return np.inf
    return float((s[i - 1] + s[i]) / 2.0)


def ten_fold_accuracy(scores: np.ndarray, labels: np.ndarray, *, folds: int = 10) -> FoldAccuracy:
    """Accuracy under the k-fold protocol described in the module docstring."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if len(scores) < folds:
        raise ValueError(f"{len(scores)} pairs cannot be split into {folds} folds")
    if not np.all(np.isfinite(scores)):  # a diverged model's NaN embeddings: no accuracy, not 0.5
        nan = float("nan")
        return FoldAccuracy(nan, nan, (nan,) * folds, (nan,) * folds)
    parts = np.array_split(np.arange(len(scores)), folds)
    accs, thresholds = [], []
    for k, test in enumerate(parts):
        train = np.concatenate([p for j, p in enumerate(parts) if j != k])
        t = best_threshold(scores[train], labels[train])
        accs.append(float(np.mean((scores[test] >= t) == labels[test].astype(bool))))
        thresholds.append(t)
    return FoldAccuracy(float(np.mean(accs)), float(np.std(accs)), tuple(accs), tuple(thresholds))


def tar_at_far(scores: np.ndarray, labels: np.ndarray, far: float) -> float | None:
    """True accept rate at the given false accept rate, or None when there are fewer than
    1/far impostor pairs (the rate could not be measured).

    Every operating point is kept (``drop_intermediate=False``): with tied scores sklearn's
    default drops "collinear" points, among them the one where the FPR meets ``far``."""
    n_neg = int(np.sum(np.asarray(labels) == 0))
    if n_neg * far < 1.0:
        return None
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(np.max(tpr[fpr <= far]))


def tar_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """TAR at each of ``FARS``; NaN where fewer than 1/far impostor pairs make it unmeasurable,
    so that a trial reports the same keys whatever the size of its pair lists."""
    out = {}
    for far in FARS:
        tar = tar_at_far(scores, labels, far)
        out[tar_key(far)] = float("nan") if tar is None else tar
    return out


def verification_metrics(scores: np.ndarray, labels: np.ndarray, *, folds: int = 10) -> dict[str, float]:
    """``acc``, ``acc_std``, ``auc`` and ``tar@far=...`` (NaN where not measurable) for one pair list."""
    acc = ten_fold_accuracy(scores, labels, folds=folds)
    return {
        "acc": acc.mean,
        "acc_std": acc.std,
        "auc": float(roc_auc_score(labels, scores)),
        **tar_metrics(scores, labels),
    }
