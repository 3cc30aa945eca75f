"""The statistics the reports compute, by their definitions, written apart from
``reports.stats`` for the tests' expected values."""

from __future__ import annotations

import numpy as np
from scipy import stats


def paired_p(d: np.ndarray) -> float:
    """The paired test's p by the report's definition: the t-test's, except where every
    difference is the same (no spread; this happens on some CPUs' numbers), where it is 1 for
    no difference and else the exact sign-flip p, 2 / 2^n."""
    if np.allclose(d, d[0], rtol=0, atol=1e-12):
        return 1.0 if abs(d[0]) <= 1e-12 else 2 / 2 ** len(d)
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def holm(raw: list[float]) -> list[float]:
    """Holm's step-down adjustment by its definition (independent of reports.stats)."""
    order = np.argsort(raw)
    out, running = [0.0] * len(raw), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(raw) - rank) * raw[i]))
        out[i] = running
    return out
