"""Statistics of the report tables, computed apart from any rendering.

The t-tests go through scipy (``ttest_rel``, ``ttest_ind(equal_var=False)``), and so do
the bootstrap intervals (``bootstrap``) and the probability of improvement
(``mannwhitneyu``'s U); the exact sign-flip and Wilcoxon tests and the intervals inverted
from them are in ``reports.stats_exact``, power and detectable effects in
``reports.stats_power``. The Holm step-down adjustment, the t intervals and the effect
sizes are written here
because scipy has none of them for this use (``scipy.stats.false_discovery_control`` is
Benjamini-Hochberg only) and statsmodels or pingouin would be large dependencies for a few
lines each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from reports.stats_exact import (  # noqa: F401  (re-exported: the tables' tests)
    EXACT_SIGN_FLIP,
    INVERTED,
    MIN_PAIRS,
    TOL,
    WARN_PAIRS,
    inverted_interval,
    sign_flip_floor,
    sign_flip_p,
    wilcoxon_p,
)


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

    When every difference is the same, the t statistic is undefined (no spread). The p-value
    is then 1 if that difference is 0, and otherwise that of the exact sign-flip permutation
    test, 2 / 2^n: of the 2^n equally likely sign patterns under the null hypothesis, the
    observed one (all differences of one sign) and its mirror are the most extreme. So two
    seeds with the same non-zero difference give p = 0.5, not a spurious "p < 0.001", e.g.
    when a deterministic baseline meets a metric that saturates.
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
        return PairedTest(n, mean_diff, None, 1.0 if abs(d[0]) <= 1e-12 else min(1.0, 2.0 / 2**n))
    res = stats.ttest_rel(a, b)
    return PairedTest(n, mean_diff, float(res.statistic), float(res.pvalue))


TESTS = {
    "paired_t": "paired t-test over seeds",
    "welch": "Welch's t-test (unpaired)",
    "wilcoxon": "Wilcoxon signed-rank test over seeds",
    "sign_flip": "exact sign-flip permutation test over seeds",
}

#: How the interval of a difference is made (``report.interval``).
INTERVALS = {
    "t": "t interval",
    "bootstrap": "bootstrap BCa interval",
}

#: Resamples and seed of the bootstrap intervals (fixed: a report rebuilt from the same
#: results shows the same intervals).
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0

#: Under this many seeds a bootstrap interval is too narrow (it cannot reach beyond the few
#: values there are, so it covers less often than it says) and the report warns.
BOOTSTRAP_MIN_SEEDS = 10


def bootstrap_interval(
    samples: tuple[np.ndarray, ...], level: float, *, paired: bool
) -> tuple[float | None, float | None]:
    """The BCa bootstrap interval (scipy's ``bootstrap``) of the mean paired difference
    (``samples`` = the differences) or of the difference of two means (``samples`` = the two
    samples), at ``level``; the percentile interval where BCa is undefined (its acceleration
    divides by the jackknife's spread), and None where the samples have no spread."""
    import warnings

    if paired:
        data, statistic = samples, lambda d, axis: np.mean(d, axis=axis)
    else:
        data, statistic = samples, lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis)
    if all(len(x) < 2 or float(np.std(x)) <= TOL for x in data):
        return None, None
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's "degenerate" warning: the fallback handles it
            ci = stats.bootstrap(
                data,
                statistic,
                vectorized=True,
                n_resamples=BOOTSTRAP_RESAMPLES,
                confidence_level=level,
                method=method,
                rng=np.random.default_rng(BOOTSTRAP_SEED),
            ).confidence_interval
        if math.isfinite(ci.low) and math.isfinite(ci.high):
            return float(ci.low), float(ci.high)
    return None, None


def prob_better(a: Sequence[float], b: Sequence[float], *, mode: str = "max") -> float | None:
    """P(A better than B): the chance that a run of ``a`` beats a run of ``b``, over every
    pair of their runs, ties counting half (the "probability of improvement" of Agarwal et
    al., 2021, NeurIPS; Mann-Whitney's U / (n_a n_b)). Better is higher for ``mode='max'``,
    lower for ``'min'``. None where a side has no finite value."""
    x, y = _finite(a), _finite(b)
    if not len(x) or not len(y):
        return None
    if mode == "min":
        x, y = -x, -y
    u = stats.mannwhitneyu(x, y, alternative="two-sided").statistic
    return float(u) / (len(x) * len(y))


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: difference of means, its 95% CI, effect size and test.

    ``ci_low``/``ci_high`` are None where no interval can be computed (fewer than two pairs,
    or no spread at all: every paired difference equal, both Welch samples constant).
    ``effect`` is Cohen's d_z (mean difference / sd of the differences) for paired tests and
    Cohen's d (difference / pooled sd) for Welch's test; None where undefined (no spread).
    The CI is the t interval of the mean paired difference (paired tests, Wilcoxon included)
    or Welch's interval of the difference of means.
    """

    test: str
    n_a: int
    n_b: int
    n_pairs: int
    mean_diff: float
    ci_low: float | None
    ci_high: float | None
    effect: float | None
    effect_name: str
    p: float | None
    se: float | None = None
    """Standard error of the difference (None where no interval exists)."""
    df: float | None = None
    """Degrees of freedom of its t distribution (n - 1 paired; Welch-Satterthwaite)."""
    sd: float | None = None
    """The spread the effect size divides by: sd of the paired differences, or the pooled sd."""
    interval_method: str = "t"
    """INTERVALS: how ``ci_low``/``ci_high`` and ``interval`` are made."""
    samples: tuple[tuple[float, ...], ...] = ()
    """What a bootstrap interval resamples: the paired differences, or Welch's two samples."""

    def interval(self, level: float) -> tuple[float | None, float | None]:
        """The interval of the difference at ``level`` (e.g. ``1 - 0.05 / m`` for a
        Bonferroni-simultaneous interval over ``m`` comparisons): the t interval, or the
        bootstrap interval at that level."""
        if self.interval_method == "inverted":
            if not self.samples:
                return None, None
            return inverted_interval(self.samples[0], level, self.test)
        if self.interval_method == "bootstrap":
            if not self.samples:
                return None, None
            data = tuple(np.asarray(x, dtype=float) for x in self.samples)
            return bootstrap_interval(data, level, paired=self.test != "welch")
        if self.se is None or self.df is None:
            return None, None
        half = float(stats.t.ppf(1 - (1 - level) / 2, self.df)) * self.se
        return self.mean_diff - half, self.mean_diff + half


def _same(diff: float, *samples: np.ndarray) -> bool:
    """A difference of means that is rounding error relative to the values' size."""
    scale = max([1.0, *(float(np.max(np.abs(s))) for s in samples if len(s))])
    return abs(diff) <= TOL * scale * 10


def _finite(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[np.isfinite(x)]


def compare(a: Sequence[float], b: Sequence[float], *, test: str = "paired_t", interval: str = "t") -> Comparison:
    """Compare samples ``a`` and ``b``; for the paired tests they are aligned (same seeds).

    No p-value (None) with fewer than MIN_PAIRS pairs (paired) or fewer than 2 values on a
    side (Welch). ``interval``: the t interval (Welch's for ``welch``), or the bootstrap
    interval (``bootstrap_interval``) of the same difference.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; known: {', '.join(TESTS)}")
    if interval not in INTERVALS:
        raise ValueError(f"unknown interval {interval!r}; known: {', '.join(INTERVALS)}")
    c = _compare(a, b, test)
    if interval == "t" and test in INVERTED:  # the interval of the test the table uses
        import dataclasses

        c = dataclasses.replace(c, interval_method="inverted")
        low, high = c.interval(0.95)
        c = dataclasses.replace(c, ci_low=low, ci_high=high)
    if interval == "bootstrap":
        import dataclasses

        c = dataclasses.replace(c, interval_method="bootstrap")
        low, high = c.interval(0.95)
        c = dataclasses.replace(c, ci_low=low, ci_high=high)
    return c


def _compare(a: Sequence[float], b: Sequence[float], test: str) -> Comparison:
    if test == "welch":
        x, y = _finite(a), _finite(b)
        nx, ny = len(x), len(y)
        diff = float(x.mean() - y.mean()) if nx and ny else math.nan
        if nx < 2 or ny < 2:
            return Comparison(test, nx, ny, 0, diff, None, None, None, "d", None)
        vx, vy = x.var(ddof=1), y.var(ddof=1)
        se = math.sqrt(vx / nx + vy / ny)
        pooled = math.sqrt(((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2))
        effect = diff / pooled if pooled > 1e-12 else None
        if se <= TOL:  # both samples constant: the exact permutation test (the observed split
            # is the most extreme of the C(nx + ny, nx) equally likely ones, twice for two sides).
            # Equal constants can differ in their means by rounding (0.7 * 5 / 5 vs 0.7 * 3 / 3):
            # that is no difference. No interval can be computed from samples without spread.
            same = _same(diff, x, y)
            p = 1.0 if same else min(1.0, 2.0 / math.comb(nx + ny, nx))
            return Comparison(test, nx, ny, 0, 0.0 if same else diff, None, None, effect, "d", p)
        df = (vx / nx + vy / ny) ** 2 / ((vx / nx) ** 2 / (nx - 1) + (vy / ny) ** 2 / (ny - 1))
        half = float(stats.t.ppf(0.975, df)) * se
        p = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
        return Comparison(
            test,
            nx,
            ny,
            0,
            diff,
            diff - half,
            diff + half,
            effect,
            "d",
            p,
            se=se,
            df=df,
            sd=pooled or None,
            samples=(tuple(x), tuple(y)),
        )
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = len(a)
    d = a - b
    diff = float(d.mean()) if n else math.nan
    if n < MIN_PAIRS:
        return Comparison(test, n, n, n, diff, None, None, None, "d_z", None)
    sd = float(d.std(ddof=1))
    spread = sd > TOL
    # every difference the same: no t interval exists (its width would be 0, a false certainty)
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if spread else None
    effect = diff / sd if spread else None
    if test == "paired_t":
        p = paired_ttest(a, b).p
    elif test == "sign_flip":
        p = sign_flip_p(d)
    else:
        p = wilcoxon_p(d)
    low, high = (diff - half, diff + half) if half is not None else (None, None)
    se = sd / math.sqrt(n) if spread else None
    return Comparison(
        test,
        n,
        n,
        n,
        diff,
        low,
        high,
        effect,
        "d_z",
        p,
        se=se,
        df=float(n - 1) if spread else None,
        sd=sd,
        samples=(tuple(d),) if spread else (),
    )


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


# -- power -------------------------------------------------------------------------------
# The t-test's power from the noncentral t distribution (scipy's ``nct``), as statsmodels'
# ``TTestPower`` (paired) and ``TTestIndPower`` (two samples) compute it; the tests check
# the two agree. Written here so that the reports need scipy only.
