"""Statistics of the report tables, computed apart from any rendering.

Tests go through scipy (``ttest_rel``, ``ttest_ind(equal_var=False)``, ``wilcoxon``, and
``permutation_test`` for the exact sign-flip test), and so do the bootstrap intervals
(``bootstrap``) and the probability of improvement (``mannwhitneyu``'s U); the Holm step-down
adjustment, the t intervals and the effect sizes are written here
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

#: Below this, a spread or a difference of metric values is rounding, not a difference.
TOL = 1e-12

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


#: Tests whose intervals are inverted from the test itself (``inverted_interval``) rather than
#: the t interval: a t interval beside a rank or sign test can exclude 0 while the test
#: does not reject (6-27% of comparisons with Holm, in an independent check).
INVERTED = ("wilcoxon", "sign_flip")

#: Up to this many pairs the sign-flip test enumerates all 2^n sign patterns.
EXACT_SIGN_FLIP = 20


def _sign_patterns(n: int) -> np.ndarray:
    """All 2^n patterns of n signs (+1/-1), one per row."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0


def sign_flip_p(d: Sequence[float]) -> float | None:
    """Two-sided p of the exact sign-flip permutation test of the mean paired difference:
    under the null hypothesis each difference is as likely to have either sign, so all 2^n
    sign patterns are enumerated, and p is the share whose |sum| is at least the observed
    |sum|. None with fewer than MIN_PAIRS differences. Its smallest possible value is 2 / 2^n
    (``sign_flip_floor``).

    Enumerated here rather than through scipy's ``permutation_test``: scipy compares with a
    tolerance relative to the observed statistic, so a mean that is 0 up to rounding
    (``[.03, 0, .02, -.02, -.03]`` sums to 1e-18) counted the patterns summing to exactly 0.0
    as less extreme (p = 0.875, not 1). The tolerance here is relative to the differences'
    size. Above EXACT_SIGN_FLIP pairs, 2^n patterns are too many: scipy's Monte Carlo test."""
    d = np.asarray(d, dtype=float)
    if len(d) < MIN_PAIRS:
        return None
    if np.all(np.abs(d) <= TOL):
        return 1.0
    tol = 1e-9 * float(np.abs(d).sum())
    if len(d) <= EXACT_SIGN_FLIP:
        sums = np.abs(_sign_patterns(len(d)) @ d)
        return float(np.mean(sums >= abs(float(d.sum())) - tol))
    res = stats.permutation_test(
        (d,),
        lambda x, axis: np.mean(x, axis=axis),
        permutation_type="samples",
        n_resamples=99_999,
        rng=np.random.default_rng(0),
        vectorized=True,
    )
    return float(min(1.0, res.pvalue))


def wilcoxon_p(d: Sequence[float]) -> float | None:
    """Two-sided p of the exact Wilcoxon signed-rank test of the paired differences: zeros
    dropped, tied |d| given their mean rank, and the statistic sum(sign * rank) referred to
    all 2^n sign patterns of those ranks (the exact conditional test; without ties it is
    scipy's exact test). 1 where every difference is 0, None under MIN_PAIRS. Above
    EXACT_SIGN_FLIP non-zero differences: scipy's normal approximation.

    Enumerated here because scipy's test switches to a normal approximation at the first
    tie (metrics rounded to 4 decimals tie often) and takes milliseconds a call, too slow to
    invert into an interval (``inverted_interval``)."""
    d = np.asarray(d, dtype=float)
    if len(d) < MIN_PAIRS:
        return None
    d = d[np.abs(d) > TOL * max(1.0, float(np.abs(d).max()))]
    if len(d) == 0:
        return 1.0
    if len(d) > EXACT_SIGN_FLIP:
        return float(stats.wilcoxon(d).pvalue)
    ranks = stats.rankdata(np.abs(d))
    observed = abs(float(np.sign(d) @ ranks))
    sums = np.abs(_sign_patterns(len(d)) @ ranks)
    return float(np.mean(sums >= observed - 1e-9))


def _wilcoxon_interval(d: np.ndarray, alpha: float) -> tuple[float | None, float | None]:
    """The Wilcoxon test's acceptance set, exactly: its statistic changes only where the
    shift crosses a Walsh average (d_i + d_j) / 2, so the test is evaluated once at each
    Walsh average and once inside each gap between two, and the interval is the closure of
    the accepted cells."""
    i, j = np.triu_indices(len(d))
    walsh = np.unique((d[i] + d[j]) / 2)
    k = len(walsh)
    deltas = np.concatenate([walsh, (walsh[:-1] + walsh[1:]) / 2])
    ok = np.array([(wilcoxon_p(d - x) or 0.0) > alpha for x in deltas])
    if not ok.any():
        return None, None
    lows = [walsh[n] for n in range(k) if ok[n]] + [walsh[n] for n in range(k - 1) if ok[k + n]]
    highs = [walsh[n] for n in range(k) if ok[n]] + [walsh[n + 1] for n in range(k - 1) if ok[k + n]]
    return float(min(lows)), float(max(highs))


def inverted_interval(d: Sequence[float], level: float, test: str) -> tuple[float | None, float | None]:
    """The interval of the shift the test itself accepts: every delta for which the test of
    ``d - delta`` does not reject at ``1 - level`` (Hodges-Lehmann's for the Wilcoxon test;
    the sign-flip test's likewise). An interval that excludes 0 therefore comes with a test
    that rejects at that level, and one that includes 0 with a test that does not: interval
    and p can never disagree. None where the test cannot reject at that level with this many
    pairs (every delta is accepted) or no spread exists.

    No library inverts these tests; the bounds are found by bisection from the centre (the
    Hodges-Lehmann estimate, or the mean) outwards to where the test first rejects, and 0 is
    taken into the interval whenever the test at 0 does not reject (the accepted set of a
    discrete test need not be one interval)."""
    d = np.asarray(d, dtype=float)
    alpha = 1 - level
    p_of = sign_flip_p if test == "sign_flip" else wilcoxon_p
    if len(d) < MIN_PAIRS or float(np.std(d)) <= TOL:
        return None, None
    if test == "sign_flip":
        centre, floor = float(d.mean()), sign_flip_floor(len(d))
    else:
        i, j = np.triu_indices(len(d))
        centre, floor = float(np.median((d[i] + d[j]) / 2)), wilcoxon_p(np.arange(1.0, len(d) + 1))
    if floor is None or floor > alpha:
        return None, None

    if test == "wilcoxon":
        return _wilcoxon_interval(d, alpha)

    def accepted(delta: float) -> bool:
        p = p_of(d - delta)
        return p is not None and p > alpha

    span = float(d.max() - d.min()) + abs(centre) + 1.0
    bounds = []
    for outside in (centre - span, centre + span):
        inside = centre
        for _ in range(80):
            mid = (inside + outside) / 2
            if accepted(mid):
                inside = mid
            else:
                outside = mid
        bounds.append(outside)
    low, high = min(bounds), max(bounds)
    if accepted(0.0):
        low, high = min(low, 0.0), max(high, 0.0)
    return low, high


def sign_flip_floor(n: int) -> float:
    """The smallest two-sided p the exact sign-flip test can give with ``n`` pairs."""
    return min(1.0, 2.0 / 2**n)


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

#: The power the smallest detectable effect is stated at.
POWER = 0.8


def t_power(effect: float, n_a: int, n_b: int | None, alpha: float) -> float:
    """Power of the two-sided t-test at level ``alpha`` to detect a standardised effect
    ``effect`` (Cohen's d_z paired: ``n_b`` None, ``n_a`` pairs; Cohen's d for two samples
    of ``n_a`` and ``n_b``)."""
    if n_b is None:
        df, nc = n_a - 1, effect * math.sqrt(n_a)
    else:
        df, nc = n_a + n_b - 2, effect * math.sqrt(n_a * n_b / (n_a + n_b))
    if df < 1:
        return math.nan
    crit = float(stats.t.ppf(1 - alpha / 2, df))
    upper = float(stats.nct.sf(crit, df, nc))
    if not math.isfinite(upper):
        upper = 1.0 - float(stats.nct.cdf(crit, df, nc))
    # the far tail: scipy's nct returns NaN where this term is below 1e-17 (large nc)
    lower = float(stats.nct.cdf(-crit, df, nc))
    return upper + (lower if math.isfinite(lower) else 0.0)


#: Simulated power: this many normal samples, from a fixed seed (power to about +-0.01).
POWER_DRAWS = 4000
#: Above these pair counts simulation is replaced by the large-sample equivalents: the
#: sign-flip test of the mean converges to the t-test, and the Wilcoxon test has 3/pi of the
#: t-test's efficiency under normal differences (Pitman's asymptotic relative efficiency).
SIMULATE_SIGN_FLIP, SIMULATE_WILCOXON = 14, 14


def _simulated_power(effect: float, n: int, alpha: float, test: str) -> float:
    """Power of the paired ``test`` (sign_flip or wilcoxon) at level ``alpha`` against normal
    differences of standardised mean ``effect``: the share of POWER_DRAWS simulated studies
    of ``n`` pairs that it rejects (the same draws for every effect, so the curve is smooth)."""
    z = np.random.default_rng(12345).standard_normal((POWER_DRAWS, n)) + effect
    if test == "sign_flip":
        observed = np.abs(z.sum(axis=1))
        sums = np.abs(z @ _sign_patterns(n).T)
        p = np.mean(sums >= observed[:, None] - 1e-9 * np.abs(z).sum(axis=1)[:, None], axis=1)
    else:  # no ties in continuous draws: the ranks of |z| per row, against every sign pattern
        ranks = stats.rankdata(np.abs(z), axis=1)
        observed = np.abs(np.sum(np.sign(z) * ranks, axis=1))
        p = np.mean(np.abs(ranks @ _sign_patterns(n).T) >= observed[:, None] - 1e-9, axis=1)
    return float(np.mean(p <= alpha))


def power_of(effect: float, n_a: int, n_b: int | None, alpha: float, test: str = "paired_t") -> float:
    """Power of the two-sided ``test`` the table uses: the t-tests' from the noncentral t
    (``t_power``); the sign-flip and Wilcoxon tests' simulated (``_simulated_power``), or from
    their large-sample equivalents above SIMULATE_SIGN_FLIP / SIMULATE_WILCOXON pairs."""
    if test == "sign_flip":
        if n_a <= SIMULATE_SIGN_FLIP:
            return _simulated_power(effect, n_a, alpha, test) if sign_flip_floor(n_a) <= alpha else 0.0
        return t_power(effect, n_a, None, alpha)
    if test == "wilcoxon":
        if n_a <= SIMULATE_WILCOXON:
            return _simulated_power(effect, n_a, alpha, test)
        return t_power(effect, max(2, int(round(n_a * 3 / math.pi))), None, alpha)
    return t_power(effect, n_a, n_b, alpha)


def detectable_effect(
    n_a: int, n_b: int | None, alpha: float, power: float = POWER, test: str = "paired_t"
) -> float | None:
    """The smallest standardised effect ``test`` detects with ``power`` (None below two
    observations per side, or where no effect reaches it). Multiply by the sd of the
    differences (or the pooled sd) for the smallest detectable difference in the metric's units."""
    from scipy.optimize import brentq

    if n_a < 2 or (n_b is not None and n_b < 2):
        return None

    def short(d: float) -> float:
        return power_of(d, n_a, n_b, alpha, test) - power

    hi = 1.0
    while short(hi) < 0:  # grows fast for tiny n (d of 20+ with 2 seeds)
        hi *= 2
        if hi > 1e6 or (test in INVERTED and hi > 64):  # a sign test's power stops short of 1 at n
            return None
    return float(brentq(short, 0.0, hi, xtol=1e-10 if test not in INVERTED else 1e-4))


def seeds_for(
    effect: float, *, paired: bool, alpha: float, power: float = POWER, most: int = 1000, test: str = "paired_t"
) -> int | None:
    """The fewest seeds (pairs, or seeds per side for two samples) at which ``test`` (the
    t-test by default) detects the standardised ``effect`` with ``power``; None if more than
    ``most`` would be needed."""
    if not effect or not math.isfinite(effect):
        return None
    effect = abs(effect)

    def enough(n: int) -> bool:
        return power_of(effect, n, None if paired else n, alpha, test if paired else "welch") >= power

    if not enough(most):
        return None
    lo, hi = 2, most
    while lo < hi:  # power grows with n: the first n that is enough
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo
