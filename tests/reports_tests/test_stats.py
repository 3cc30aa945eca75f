"""Paired t-test and Holm adjustment against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reports.stats import holm, mean_std, paired_ttest


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
    assert paired_ttest([0.6, 0.7], [0.5, 0.6]).p == 0.0


def test_holm_hand_values():
    # m = 4; sorted p: .01 (x4 = .04), .02 (x3 = .06), .03 (x2 = .06), .04 (x1 = .04 -> max .06)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    # capped at 1, order kept, None ignored (m = 2)
    assert holm([0.6, None, 0.01]) == [pytest.approx(0.6), None, pytest.approx(0.02)]


def test_holm_against_definition_on_random_pvalues():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, size=7)
    adj = holm(list(p))
    order = np.argsort(p)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (7 - rank) * p[i]))
        assert adj[i] == pytest.approx(running)
    assert all(a >= q for a, q in zip(adj, p))


def test_mean_std_sample_std():
    mean, std, n = mean_std([1.0, 2.0, 4.0, float("nan")])
    assert (mean, n) == (pytest.approx(7 / 3), 3)
    assert std == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert math.isnan(mean_std([1.0])[1])
