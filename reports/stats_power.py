"""Power of the report's tests, and what it implies: the smallest difference a table can
detect (MDE) and the seeds needed for a given difference. The paired and Welch t-tests in
closed form (noncentral t); the sign-flip and Wilcoxon tests by simulation from a fixed
seed, with their large-sample equivalents above a few pairs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from reports.stats_exact import INVERTED, _sign_patterns, sign_flip_floor

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
