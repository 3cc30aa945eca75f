"""The exact tests over paired differences, and the intervals inverted from them: the
sign-flip test of the mean (every sign pattern enumerated) and the Wilcoxon signed-rank
test (its exact conditional distribution, mean ranks for ties), each with the set of shifts
it does not reject, so that an interval beside a test always agrees with it.

Written here: scipy's ``permutation_test`` and ``wilcoxon`` give the p of one sample, not the
acceptance region an interval needs, and ``wilcoxon``'s exact mode refuses ties and zeros.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats

#: Below this, a spread or a difference of metric values is rounding, not a difference.
TOL = 1e-12

#: Fewer pairs than this: no p-value. Fewer than WARN_PAIRS: p shown with a warning.
MIN_PAIRS = 2
WARN_PAIRS = 3


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
