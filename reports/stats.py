"""Statistics of the report tables, computed apart from any rendering.

Paired t-tests go through scipy; the Holm step-down adjustment is written here because
scipy has none (``scipy.stats.false_discovery_control`` is Benjamini-Hochberg only) and
statsmodels would be a large dependency for ten lines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: Fewer pairs than this: no p-value. Fewer than WARN_PAIRS: p shown with a warning.
MIN_PAIRS = 2
WARN_PAIRS = 3


@dataclass(frozen=True)
class PairedTest:
    """``a - b`` over paired observations (e.g. the same seeds)."""

    n: int
    mean_diff: float
    t: float | None
    p: float | None
    """Two-sided p-value; None with fewer than MIN_PAIRS pairs."""


def paired_ttest(a: Sequence[float], b: Sequence[float]) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` (scipy's ``ttest_rel``).

    When every difference is the same, the t statistic is undefined: the p-value is then
    1 if that difference is 0 and 0 otherwise (no spread at all around a non-zero shift).
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    n = len(a)
    d = a - b
    mean_diff = float(d.mean()) if n else math.nan
    if n < MIN_PAIRS:
        return PairedTest(n, mean_diff, None, None)
    if np.allclose(d, d[0], rtol=0, atol=1e-12):
        return PairedTest(n, mean_diff, None, 1.0 if abs(d[0]) <= 1e-12 else 0.0)
    res = stats.ttest_rel(a, b)
    return PairedTest(n, mean_diff, float(res.statistic), float(res.pvalue))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order; None entries stay None and
    do not count towards the number of comparisons."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and n of the finite values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, len(v)
