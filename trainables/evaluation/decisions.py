"""Verification at a chosen threshold, the equal error rate, and gallery-probe identification.

Complements ``verification.py`` (the 10-fold protocol of the public benchmarks) for the
protocols of the metric-learning notes, where a threshold is chosen on a validation split
and then applied, unchanged, to the test split.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    label_ranking_average_precision_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from trainables.evaluation.verification import best_threshold, tar_metrics


def equal_error_rate(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(EER, threshold): the rate at which false accepts equal false rejects (``score >= t``
    accepts), and the threshold where they cross.

    sklearn's ROC gives the operating points; between the two points where FNR - FPR changes
    sign the EER is interpolated linearly (the usual construction; no library computes it).
    """
    labels = np.asarray(labels).astype(int)
    if labels.min() == labels.max():
        raise ValueError("the EER needs both genuine (1) and impostor (0) pairs")
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # decreasing from 1 (nothing accepted) to -1 (everything accepted)
    j = int(np.flatnonzero(diff <= 0)[0])
    if diff[j] == 0 or j == 0:
        return float(fpr[j]), float(thr[j])
    i = j - 1
    w = diff[i] / (diff[i] - diff[j])  # fraction of the way from point i to point j
    eer = fpr[i] + w * (fpr[j] - fpr[i])
    t_i = thr[i] if np.isfinite(thr[i]) else thr[j]
    return float(eer), float(t_i + w * (thr[j] - t_i))


def at_threshold(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of ``score >= threshold`` as "same person"."""
    pred = (np.asarray(scores) >= threshold).astype(int)
    labels = np.asarray(labels).astype(int)
    return {
        "acc": float(accuracy_score(labels, pred)),
        "precision": float(precision_score(labels, pred, zero_division=0)),
        "recall": float(recall_score(labels, pred, zero_division=0)),
        "f1": float(f1_score(labels, pred, zero_division=0)),
    }


def choose_threshold(scores: np.ndarray, labels: np.ndarray, policy: str, *, fixed: float = 0.4) -> float:
    """A decision threshold from validation scores: ``accuracy`` (the cut that maximises
    validation accuracy), ``eer`` (where validation FAR = FRR) or ``fixed`` (``fixed``, as the
    MagFace note's 0.4, the validation data not used)."""
    if policy == "fixed":
        return float(fixed)
    if policy == "accuracy":
        return best_threshold(np.asarray(scores, dtype=np.float64), np.asarray(labels))
    if policy == "eer":
        return equal_error_rate(scores, labels)[1]
    raise ValueError(f"unknown threshold policy {policy!r}")


def verification_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Threshold-free metrics (EER, ROC AUC, TAR at FAR where measurable) and the metrics of
    ``threshold`` (chosen elsewhere) on one pair set."""
    eer, _ = equal_error_rate(scores, labels)
    return {
        "eer": eer,
        "auc": float(roc_auc_score(labels, scores)),
        **at_threshold(scores, labels, threshold),
        "threshold": float(threshold),
        **tar_metrics(scores, labels),
    }


def identification(
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    probes: np.ndarray,
    probe_ids: np.ndarray,
    *,
    ranks: tuple[int, ...] = (1, 5),
) -> dict[str, float]:
    """Closed-set identification: each probe embedding is ranked against every gallery
    embedding by cosine similarity (embeddings L2-normalised here).

    ``rank<k>``: the fraction of probes whose identity is among the k most similar gallery
    identities (a tie with another identity counts against the probe); ``map``: mean average
    precision over probes (with one score per identity it is the mean reciprocal rank of the
    true identity), sklearn's ``label_ranking_average_precision_score``. The rank is counted
    here, not with sklearn's ``top_k_accuracy_score``: with exactly two identities that takes
    sklearn's binary path, which wants one score per probe and thresholds it.
    """
    per_id, labels, probe_ids = _identity_scores(gallery, gallery_ids, probes, probe_ids)
    ahead = probe_ranks(per_id, labels, probe_ids)[0] - 1
    out = {f"rank{k}": float(np.mean(ahead < k)) for k in ranks}
    truth = (probe_ids[:, None] == labels[None, :]).astype(int)
    out["map"] = float(label_ranking_average_precision_score(truth, per_id))
    return out


def _identity_scores(gallery, gallery_ids, probes, probe_ids) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probes x identities) cosine scores, each identity's its best gallery entry; the sorted
    gallery identities; the probe identities."""
    gallery_ids, probe_ids = np.asarray(gallery_ids), np.asarray(probe_ids)
    missing = sorted(set(probe_ids.tolist()) - set(gallery_ids.tolist()))
    if missing:
        raise ValueError(f"{len(missing)} probe identities have no gallery entry (e.g. {missing[0]})")
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    p = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    sims = p @ g.T  # (probes, gallery)
    labels = np.unique(gallery_ids)
    # one score per identity: its best gallery entry (the entry itself with one per identity)
    col = np.searchsorted(labels, gallery_ids)
    per_id = np.full((len(p), len(labels)), -np.inf)
    np.maximum.at(per_id.T, col, sims.T)
    return per_id, labels, probe_ids


def probe_ranks(per_id: np.ndarray, labels: np.ndarray, probe_ids: np.ndarray):
    """Per probe: the rank of its true identity (1 = first; every other identity scoring at
    least as high counts ahead of it), its score, and the highest score of any other identity
    (-inf when the gallery has no other)."""
    rows = np.arange(len(per_id))
    true_col = np.searchsorted(labels, probe_ids)
    true_score = per_id[rows, true_col]
    rank = (per_id >= true_score[:, None]).sum(axis=1)  # the true identity itself counts once
    others = per_id.copy()
    others[rows, true_col] = -np.inf
    return rank, true_score, others.max(axis=1, initial=-np.inf)


def identification_ranks(gallery, gallery_ids, probes, probe_ids):
    """``probe_ranks`` of a gallery and its probes (``identification``'s scores)."""
    return probe_ranks(*_identity_scores(gallery, gallery_ids, probes, probe_ids))


__all__ = [
    "at_threshold",
    "choose_threshold",
    "equal_error_rate",
    "identification",
    "identification_ranks",
    "probe_ranks",
    "verification_at",
]
