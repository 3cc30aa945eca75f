"""Every interval and power figure says what its test computes: an interval beside a rank or
sign test is that test's own (inverted), a bootstrap interval that disagrees with the test is
marked, the power of a rank or sign test is that test's, and the exact sign-flip p of an
exactly-zero mean is 1. Expected values come from the definitions (enumeration, simulation
written here, scipy's tests), not from ``reports.stats``."""

from __future__ import annotations

from fractions import Fraction
from itertools import product

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.ablation import DISAGREE, ablation_table

M = "eval/x/acc"


def test_sign_flip_p_of_an_exactly_zero_mean_is_one():
    """[.03, 0, .02, -.02, -.03] sums to 0 exactly (in decimals); in floating point to
    about 1e-18. Every sign pattern's |sum| is at least 0, so p is 1 by enumeration."""
    from reports.stats_exact import sign_flip_p

    d = ["0.03", "0", "0.02", "-0.02", "-0.03"]
    exact = [Fraction(x) for x in d]
    observed = abs(sum(exact))
    expected = Fraction(
        sum(abs(sum(s * x for s, x in zip(signs, exact))) >= observed for signs in product([1, -1], repeat=len(d))),
        2 ** len(d),
    )
    assert expected == 1
    assert sign_flip_p([float(x) for x in d]) == 1.0


def _p(test: str, d: np.ndarray) -> float:
    """The test's p by its definition: Wilcoxon from scipy, sign-flip by enumeration."""
    if test == "wilcoxon":  # signed ranks of the non-zero differences, mean ranks for ties
        d = d[np.abs(d) > 1e-12]
        if not len(d):
            return 1.0
        r = stats.rankdata(np.abs(d))
        sums = np.abs(np.array(list(product([1, -1], repeat=len(d)))) @ r)
        return float(np.mean(sums >= abs(np.sign(d) @ r) - 1e-9))
    sums = np.abs(np.array(list(product([1, -1], repeat=len(d)))) @ d)
    return float(np.mean(sums >= abs(d.sum()) - 1e-9 * np.abs(d).sum()))


def test_the_exact_wilcoxon_p_is_scipys_exact_p_without_ties():
    from reports.stats_exact import wilcoxon_p

    d = np.array([0.021, -0.004, 0.013, 0.035, 0.008, -0.011, 0.027])
    assert wilcoxon_p(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)


@pytest.mark.parametrize("test", ["wilcoxon", "sign_flip"])
@pytest.mark.parametrize("level", [0.95, 1 - 0.05 / 3])
def test_the_interval_of_a_rank_or_sign_test_is_every_shift_it_accepts(test, level):
    """By definition the interval is {delta: p(d - delta) > 1 - level}: every accepted delta
    of a fine grid lies inside it, deltas just outside its ends are rejected, and it excludes
    0 exactly when the test rejects at 0."""
    from reports.stats_exact import inverted_interval

    rng = np.random.default_rng(3)
    for _ in range(12):
        d = np.round(rng.normal(0.004, 0.006, size=int(rng.integers(8, 11))), 4)
        low, high = inverted_interval(d, level, test)
        alpha = 1 - level
        assert low is not None and high is not None
        grid = np.linspace(d.min() - 0.01, d.max() + 0.01, 121)
        accepted = [g for g in grid if _p(test, d - g) > alpha]
        assert accepted and min(accepted) >= low - 1e-9 and max(accepted) <= high + 1e-9
        eps = 1e-6 * (d.max() - d.min())
        assert _p(test, d - (low - eps)) <= alpha and _p(test, d - (high + eps)) <= alpha
        excludes = low > 0 or high < 0
        if excludes:
            assert _p(test, d) <= alpha
        else:
            assert low <= 0 <= high


def _frame(values: dict[str, list[float]]) -> pd.DataFrame:
    rows = [
        {"trial_name": f"{v}_{s}", "variant": v, "seed": s, "status": "TERMINATED", "error": "", M: x}
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


def _tables(test: str, interval: str, n_tables: int = 30, seeds: int = 8):
    rng = np.random.default_rng(11)
    for _ in range(n_tables):
        ref = rng.normal(0.70, 0.01, seeds)
        values = {"ref": list(ref)}
        for k in range(3):
            values[f"v{k}"] = list(ref + rng.normal(0.006 * k, 0.006, seeds))
        yield ablation_table(
            _frame(values),
            study="s",
            variants=list(values),
            reference="ref",
            metrics=[M],
            primary=M,
            mode="max",
            test=test,
            interval=interval,
        )


@pytest.mark.parametrize("test", ["wilcoxon", "sign_flip"])
def test_no_simultaneous_interval_excludes_zero_beside_a_p_that_is_not_significant(test):
    """With the test's own intervals, Bonferroni at alpha/m: an interval that excludes 0
    needs p <= alpha/m, and then Holm's p is at most alpha."""
    checked = excluded = 0
    for table in _tables(test, "t"):
        for (v, _), c in table.cells.items():
            if v == "ref" or c.sim_low is None:
                continue
            checked += 1
            if c.sim_low > 0 or c.sim_high < 0:
                excluded += 1
                assert c.p_holm is not None and c.p_holm < table.alpha, (v, c)
            assert c.ci_mark == ""
    assert checked > 60 and excluded, (checked, excluded)


def test_a_bootstrap_interval_that_disagrees_with_its_test_is_marked():
    """Bootstrap intervals are not the test's: where one excludes 0 beside a Holm p that is
    not significant, the cell carries the mark, and only there; the caption says what it means."""
    from reports._format import interval_sentence

    marked = 0
    for table in _tables("wilcoxon", "bootstrap", n_tables=25):
        for (v, _), c in table.cells.items():
            if v == "ref" or c.sim_low is None:
                continue
            disagrees = (c.sim_low > 0 or c.sim_high < 0) and not (c.p_holm is not None and c.p_holm < table.alpha)
            assert (c.ci_mark == DISAGREE) == disagrees
            if disagrees:
                marked += 1
                assert "the interval excludes 0 but the test's Holm p" in interval_sentence(table)
    assert marked, "the sample should hold at least one disagreement (6-27% of comparisons)"


def _simulated_power(test: str, effect: float, n: int, alpha: float, draws: int = 1500) -> float:
    rng = np.random.default_rng(99)
    return float(np.mean([_p(test, rng.normal(effect, 1.0, n)) <= alpha for _ in range(draws)]))


@pytest.mark.parametrize("test", ["wilcoxon", "sign_flip"])
def test_the_power_of_a_rank_or_sign_test_is_that_tests(test):
    """The smallest detectable effect of a Wilcoxon or sign-flip table is the effect at which
    that test (simulated here on its own) has 80% power, not the t-test's: the t-test's
    detectable effect has less than 80% power under these tests with 6 seeds."""
    from reports.stats_power import POWER, detectable_effect

    n, alpha = 6, 0.05
    d_test = detectable_effect(n, None, alpha, test=test)
    d_t = detectable_effect(n, None, alpha)
    assert d_test is not None and d_t is not None and d_test > d_t
    assert _simulated_power(test, d_test, n, alpha) == pytest.approx(POWER, abs=0.03)
    assert _simulated_power(test, d_t, n, alpha) < POWER - 0.05


def test_a_non_integer_reduction_factor_lists_each_rung_once():
    """grace 1, factor 1.5, max 10: 1, 1.5, 2.25, 3.4, 5.1, 7.6 -> whole iterations 1, 2, 3, 5, 7."""
    from reports.rundir.names import rung_milestones

    assert rung_milestones(grace_period=1, reduction_factor=1.5, max_t=10) == [1, 2, 3, 5, 7]
    assert rung_milestones(grace_period=1, reduction_factor=3, max_t=10) == [1, 3, 9]


def test_ten_fold_accuracy_of_nan_scores_is_nan_not_chance():
    from trainables.evaluation.verification import ten_fold_accuracy

    scores = np.linspace(0, 1, 40)
    scores[3] = np.nan
    labels = np.arange(40) % 2
    assert np.isnan(ten_fold_accuracy(scores, labels).mean)
