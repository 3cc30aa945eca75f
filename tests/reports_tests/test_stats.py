"""Paired t-test and Holm adjustment against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reports.stats import compare, holm, mean_std, paired_ttest
from tests.stats_reference import holm as holm_reference


def test_paired_ttest_matches_scipy_and_hand_value():
    a = [0.81, 0.79, 0.84, 0.80]
    b = [0.78, 0.77, 0.80, 0.79]
    res = paired_ttest(a, b)
    ref = stats.ttest_rel(a, b)
    assert res.p == pytest.approx(ref.pvalue)
    assert res.t == pytest.approx(ref.statistic)
    # by hand: d = [.03, .02, .04, .01], mean .025, sd = sqrt(.0005/3), t = mean / (sd / 2)
    d = np.array([0.03, 0.02, 0.04, 0.01])
    t = d.mean() / (math.sqrt(((d - d.mean()) ** 2).sum() / 3) / 2)
    assert res.t == pytest.approx(t)
    assert res.mean_diff == pytest.approx(0.025)
    assert res.n == 4


def test_paired_ttest_too_few_pairs_has_no_p():
    res = paired_ttest([0.8], [0.7])
    assert res.p is None and res.n == 1 and res.mean_diff == pytest.approx(0.1)


def test_paired_ttest_constant_differences():
    assert paired_ttest([0.5, 0.6], [0.5, 0.6]).p == 1.0
    # no spread: the exact sign-flip test, 2 / 2^n, not p = 0
    assert paired_ttest([0.6, 0.7], [0.5, 0.6]).p == pytest.approx(0.5)
    assert paired_ttest([0.6, 0.7, 0.8, 0.9, 1.0], [0.5, 0.6, 0.7, 0.8, 0.9]).p == pytest.approx(2 / 32)
    assert compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7]).p == pytest.approx(0.25)
    # Welch with both samples constant: 2 / C(nx + ny, nx)
    assert compare([0.7, 0.7, 0.7], [0.5, 0.5, 0.5], test="welch").p == pytest.approx(2 / 20)


def test_holm_hand_values():
    # m = 4; sorted p: .01 (x4 = .04), .02 (x3 = .06), .03 (x2 = .06), .04 (x1 = .04 -> max .06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # capped at 1, order kept, None ignored (m = 2)
    assert holm([0.6, None, 0.01]) == [pytest.approx(0.6), None, pytest.approx(0.02)]


def test_holm_against_definition_on_random_pvalues():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, size=7)
    adj = holm(list(p))
    assert adj == pytest.approx(holm_reference(list(p)))
    assert all(a >= q for a, q in zip(adj, p))


def test_mean_std_sample_std():
    mean, std, n = mean_std([1.0, 2.0, 4.0, float("nan")])
    assert (mean, n) == (pytest.approx(7 / 3), 3)
    assert std == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert math.isnan(mean_std([1.0])[1])


def test_compare_paired_ci_and_effect_by_hand():
    from reports.stats import compare

    c = compare([0.70, 0.72, 0.71], [0.68, 0.69, 0.70])
    # d = [.02, .03, .01]: mean .02, sd .01, se .01/sqrt(3); t(0.975, 2) = 4.302653
    half = 4.302653 * 0.01 / math.sqrt(3)
    assert c.mean_diff == pytest.approx(0.02) and c.n_pairs == 3
    assert (c.ci_low, c.ci_high) == (pytest.approx(0.02 - half, rel=1e-5), pytest.approx(0.02 + half, rel=1e-5))
    assert c.effect == pytest.approx(2.0) and c.effect_name == "d_z"
    assert c.p == pytest.approx(stats.ttest_rel([0.70, 0.72, 0.71], [0.68, 0.69, 0.70]).pvalue)


def test_compare_welch_by_hand_and_against_scipy():
    from reports.stats import compare

    a, b = [0.70, 0.72, 0.71], [0.68, 0.69, 0.70, 0.67]
    c = compare(a, b, test="welch")
    va, vb = np.var(a, ddof=1), np.var(b, ddof=1)
    se = math.sqrt(va / 3 + vb / 4)
    df = (va / 3 + vb / 4) ** 2 / ((va / 3) ** 2 / 2 + (vb / 4) ** 2 / 3)
    diff = np.mean(a) - np.mean(b)
    assert c.mean_diff == pytest.approx(diff) and (c.n_a, c.n_b, c.n_pairs) == (3, 4, 0)
    assert c.ci_high - c.ci_low == pytest.approx(2 * stats.t.ppf(0.975, df) * se)
    assert c.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    pooled = math.sqrt((2 * va + 3 * vb) / 5)
    assert c.effect == pytest.approx(diff / pooled) and c.effect_name == "d"
    assert compare([0.7], b, test="welch").p is None


def test_compare_wilcoxon_matches_scipy():
    from reports.stats import compare

    a = [0.70, 0.72, 0.71, 0.75, 0.70, 0.73]
    b = [0.68, 0.69, 0.70, 0.71, 0.66, 0.74]
    c = compare(a, b, test="wilcoxon")
    # the differences tie (0.04 twice): the exact conditional test over all 2^6 sign patterns
    # of the mean ranks, by definition (scipy's own falls back to a normal approximation)
    from itertools import product

    d = np.subtract(a, b)
    r = stats.rankdata(np.abs(d))
    sums = np.abs(np.array(list(product([1, -1], repeat=len(d)))) @ r)
    assert c.p == pytest.approx(np.mean(sums >= abs(np.sign(d) @ r) - 1e-9))
    assert c.effect == pytest.approx(np.mean(np.subtract(a, b)) / np.std(np.subtract(a, b), ddof=1))
    assert compare([0.7, 0.7], [0.7, 0.7], test="wilcoxon").p == 1.0
    with pytest.raises(ValueError, match="unknown test"):
        compare(a, b, test="anova")


def test_table_uses_welch_when_seeds_differ():
    import pandas as pd

    from reports.ablation import ablation_table
    from reports.stats import TESTS

    rows = [{"variant": "ref", "seed": s, "status": "TERMINATED", "m": 0.7 + 0.01 * s} for s in (0, 1, 2)]
    rows += [{"variant": "new", "seed": s, "status": "TERMINATED", "m": 0.75 + 0.01 * (s % 3)} for s in (3, 4, 5)]
    df = pd.DataFrame(rows).assign(trial_name="t", error="")
    table = ablation_table(
        df, study="s", variants=["ref", "new"], metrics=["m"], reference="ref", primary="m", mode="max"
    )
    cell = table.cells[("new", "m")]
    assert table.test == TESTS["welch"] and table.effect_name == "d"
    assert cell.p == pytest.approx(stats.ttest_ind([0.75, 0.76, 0.77], [0.70, 0.71, 0.72], equal_var=False).pvalue)
    paired = ablation_table(
        df.assign(seed=[0, 1, 2, 0, 1, 2]),
        study="s",
        variants=["ref", "new"],
        metrics=["m"],
        reference="ref",
        primary="m",
        mode="max",
    )
    assert paired.test == TESTS["paired_t"] and paired.cells[("new", "m")].n_pairs == 3


def test_welch_on_equal_constant_samples_of_different_sizes_is_no_difference():
    # the means of [0.7]*5 and [0.7]*3 differ by 1e-16 in floating point: that is no difference
    c = compare([0.7] * 5, [0.7] * 3, test="welch")
    assert c.p == 1.0
    assert c.ci_low is None and c.ci_high is None


def test_no_zero_width_interval():
    # every paired difference equal: no t interval exists (sd 0), so none is reported
    c = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert c.ci_low is None and c.ci_high is None and c.effect is None
    w = compare([0.7, 0.7, 0.7], [0.5, 0.5, 0.5], test="welch")
    assert w.ci_low is None and w.ci_high is None
    # with spread the t interval, by hand: mean +- t_{0.975, n-1} * sd / sqrt(n)
    d = np.array([0.1, 0.3, 0.2])
    c = compare(list(0.5 + d), [0.5] * 3)
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (c.ci_low, c.ci_high) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))


def test_interval_without_one_is_shown_as_not_available():
    from reports._format import interval

    assert interval(None, None) == "[CI n/a]"
    assert interval(-0.01, 0.02) == "[-0.010, +0.020]"


@pytest.mark.parametrize("n_a,n_b,d,alpha", [(3, None, 1.5, 0.05), (9, None, 0.4, 0.01), (4, 6, 1.2, 0.05)])
def test_t_power_and_detectable_effect_agree_with_statsmodels(n_a, n_b, d, alpha):
    from statsmodels.stats.power import TTestIndPower, TTestPower

    from reports.stats_power import detectable_effect, t_power

    if n_b is None:
        ref = TTestPower()
        kw = dict(nobs=n_a)
    else:
        ref = TTestIndPower()
        kw = dict(nobs1=n_a, ratio=n_b / n_a)
    assert t_power(d, n_a, n_b, alpha) == pytest.approx(ref.power(effect_size=d, alpha=alpha, **kw), rel=1e-6)
    # the detectable effect is where statsmodels' power reaches 80% (its solve_power can stop short)
    mde = detectable_effect(n_a, n_b, alpha)
    assert ref.power(effect_size=mde, alpha=alpha, **kw) == pytest.approx(0.8, abs=1e-9)
    assert ref.power(effect_size=mde * 0.99, alpha=alpha, **kw) < 0.8


def test_seeds_for_is_the_first_n_with_enough_power():
    from statsmodels.stats.power import TTestPower

    from reports.stats_power import seeds_for

    got = seeds_for(0.8, paired=True, alpha=0.05)
    assert TTestPower().power(effect_size=0.8, nobs=got, alpha=0.05) >= 0.8
    assert TTestPower().power(effect_size=0.8, nobs=got - 1, alpha=0.05) < 0.8
    assert seeds_for(1e-4, paired=True, alpha=0.05) is None  # beyond 1000 seeds


def test_interval_at_a_level_is_the_t_interval():
    a, b = [0.81, 0.79, 0.84, 0.80, 0.83], [0.78, 0.77, 0.80, 0.79, 0.80]
    c = compare(a, b)
    d = np.subtract(a, b)
    for level in (0.95, 1 - 0.05 / 5):
        half = stats.t.ppf(1 - (1 - level) / 2, 4) * d.std(ddof=1) / math.sqrt(5)
        assert c.interval(level) == pytest.approx((d.mean() - half, d.mean() + half))
    assert c.interval(0.95) == pytest.approx((c.ci_low, c.ci_high))
    assert compare([0.8, 0.8], [0.7, 0.7]).interval(0.99) == (None, None)  # no spread: no interval


# -- robust alternatives (report.test: sign_flip, report.interval: bootstrap, P(better)) ----


@pytest.mark.parametrize(
    "d",
    [
        [0.01, 0.03, -0.005, 0.02],
        [0.02, -0.01, 0.03, 0.01, -0.02, 0.015],
        [0.004, 0.001, 0.003, 0.002, 0.006, -0.001, 0.005, 0.002],
        [0.1, 0.2, 0.3],  # every difference of one sign: the smallest p there is, 2/2^n
    ],
)
def test_sign_flip_p_enumerates_every_sign_pattern(d):
    """By definition: under the null each difference keeps or flips its sign with equal
    chance; p is the share of the 2^n sign patterns whose |mean| is at least the observed."""
    from itertools import product

    from reports.stats_exact import sign_flip_p

    d = np.asarray(d)
    observed = abs(d.mean())
    means = [abs((d * np.array(signs)).mean()) for signs in product([1, -1], repeat=len(d))]
    expected = sum(m >= observed - 1e-12 for m in means) / len(means)
    assert sign_flip_p(d) == pytest.approx(expected)
    assert compare(d, np.zeros_like(d), test="sign_flip").p == pytest.approx(expected)


def test_sign_flip_floor_and_no_difference():
    from reports.stats_exact import sign_flip_floor, sign_flip_p

    assert sign_flip_p([0.1, 0.2, 0.3]) == pytest.approx(2 / 8) == pytest.approx(sign_flip_floor(3))
    assert sign_flip_p([0.0, 0.0, 0.0]) == 1.0
    assert sign_flip_p([0.1]) is None


def _exact_bca(d: np.ndarray, level: float) -> tuple[float, float]:
    """The BCa interval of the mean from its definition (Efron & Tibshirani 1993, 14.3), on the
    exact bootstrap distribution: every one of the n^n ordered resamples, equally likely."""
    from itertools import product

    n = len(d)
    boot = np.sort([d[list(idx)].mean() for idx in product(range(n), repeat=n)])
    z0 = stats.norm.ppf(np.mean(boot < d.mean()))
    jack = np.array([np.delete(d, i).mean() for i in range(n)])
    dev = jack.mean() - jack
    a = (dev**3).sum() / (6 * ((dev**2).sum()) ** 1.5)
    out = []
    for z in stats.norm.ppf([(1 - level) / 2, (1 + level) / 2]):
        q = stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))
        out.append(float(np.quantile(boot, q)))
    return out[0], out[1]


def test_bootstrap_interval_is_the_bca_interval_of_the_mean_difference():
    """The BCa interval of the mean paired difference, from 9999 resamples, agrees with the
    exact one (all 5^5 resamples) up to resampling noise; on these skewed differences the
    plain percentile interval is further off than that, so the adjustment is applied."""
    from reports.stats import bootstrap_interval

    d = np.array([0.0, 0.004, 0.006, 0.01, 0.05])
    low, high = bootstrap_interval((d,), 0.95, paired=True)
    exact = _exact_bca(d, 0.95)
    assert low == pytest.approx(exact[0], abs=0.0015) and high == pytest.approx(exact[1], abs=0.0015)
    from itertools import product

    boot = [d[list(i)].mean() for i in product(range(5), repeat=5)]
    percentile = np.quantile(boot, [0.025, 0.975])
    assert abs(percentile[0] - exact[0]) > 0.0015 or abs(percentile[1] - exact[1]) > 0.0015
    a, b = d + 0.7, np.full(5, 0.7)
    c = compare(a, b, interval="bootstrap")
    assert (c.ci_low, c.ci_high) == bootstrap_interval((a - b,), 0.95, paired=True)
    assert c.interval(0.99)[0] < c.ci_low and c.interval(0.99)[1] > c.ci_high  # a wider level, a wider interval


def test_bootstrap_interval_of_few_seeds_stays_inside_the_values():
    """Why the report warns under 10 seeds: a bootstrap resample of 3 values cannot average
    beyond them, while the t interval (df = 2) reaches far past them."""
    a, b = np.array([0.72, 0.75, 0.71]), np.array([0.70, 0.71, 0.70])
    d = a - b
    boot = compare(a, b, interval="bootstrap")
    t = compare(a, b)
    assert d.min() - 1e-12 <= boot.ci_low < boot.ci_high <= d.max() + 1e-12
    assert t.ci_low < d.min() and t.ci_high > d.max()
    assert compare([0.7, 0.7, 0.7], [0.6, 0.6, 0.6], interval="bootstrap").ci_low is None  # no spread


def test_welch_bootstrap_interval_is_of_the_difference_of_means():
    from reports.stats import bootstrap_interval

    x, y = np.array([0.70, 0.74, 0.72, 0.79]), np.array([0.66, 0.69, 0.65])
    c = compare(x, y, test="welch", interval="bootstrap")
    assert (c.ci_low, c.ci_high) == bootstrap_interval((x, y), 0.95, paired=False)
    assert c.ci_low < x.mean() - y.mean() < c.ci_high
    # each resample's difference lies between the extreme pairings of the two samples
    assert x.min() - y.max() <= c.ci_low and c.ci_high <= x.max() - y.min()


@pytest.mark.parametrize("mode", ["max", "min"])
def test_prob_better_counts_every_pair_of_seeds(mode):
    """P(A better than B) by its definition: over all n_a x n_b pairs of values, 1 where A's
    is better, 1/2 where they tie, 0 otherwise, averaged."""
    from reports.stats import prob_better

    a, b = [0.71, 0.74, 0.70, 0.72], [0.70, 0.73, 0.70]
    better = (lambda x, y: x > y) if mode == "max" else (lambda x, y: x < y)
    expected = np.mean([1.0 if better(x, y) else 0.5 if x == y else 0.0 for x in a for y in b])
    assert prob_better(a, b, mode=mode) == pytest.approx(expected)
    assert prob_better(a, [np.nan], mode=mode) is None
