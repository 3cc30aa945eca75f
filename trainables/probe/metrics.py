"""The quick-experiments note's shared evaluation, for every probe: accuracy, macro-F1,
prediction CV, per-class precision / recall / F1, the top and bottom classes."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support


def prediction_cv(pred: np.ndarray, n_classes: int) -> float:
    """Coefficient of variation of the predicted-class counts over all classes: 0 when every
    class is predicted equally often, large when a few classes take most predictions (the
    note's "William dominance")."""
    counts = np.bincount(pred, minlength=n_classes).astype(np.float64)
    return float(counts.std() / counts.mean())


def per_class(pred: np.ndarray, true: np.ndarray, names: tuple[str, ...]) -> list[dict]:
    """One row per class: precision, recall, F1, support (true images), predicted (count)."""
    labels = np.arange(len(names))
    p, r, f, s = precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    predicted = np.bincount(pred, minlength=len(names))
    return [
        {
            "name": n,
            "precision": float(p[k]),
            "recall": float(r[k]),
            "f1": float(f[k]),
            "support": int(s[k]),
            "predicted": int(predicted[k]),
        }
        for k, n in enumerate(names)
    ]


def evaluate(pred: np.ndarray, true: np.ndarray, names: tuple[str, ...], *, top: int = 5) -> dict:
    """Accuracy, macro-F1 (over the classes with test images), prediction CV, per-class rows,
    and the ``top`` best and worst classes by F1 (classes with test images only)."""
    pred, true = np.asarray(pred, dtype=np.int64), np.asarray(true, dtype=np.int64)
    rows = per_class(pred, true, names)
    tested = [r for r in rows if r["support"] > 0]
    ranked = sorted(tested, key=lambda r: (-r["f1"], r["name"]))
    return {
        "accuracy": float((pred == true).mean()),
        "macro_f1": float(np.mean([r["f1"] for r in tested])),
        "prediction_cv": prediction_cv(pred, len(names)),
        "top_classes": [[r["name"], round(r["f1"], 4)] for r in ranked[:top]],
        "bottom_classes": [[r["name"], round(r["f1"], 4)] for r in ranked[::-1][:top]],
        "per_class": rows,
    }
