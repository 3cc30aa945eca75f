"""Figure contents: the plotted numbers are the per-point means and t intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.plots import _log_axis, mean_ci, sensitivity_figure

M = "eval/x/acc"


def test_mean_ci_is_the_t_interval():
    v = np.array([0.70, 0.72, 0.75, 0.71])
    m, lo, hi, n = mean_ci(v)
    ref = stats.t.interval(0.95, 3, loc=v.mean(), scale=stats.sem(v))
    assert (m, lo, hi, n) == (pytest.approx(v.mean()), pytest.approx(ref[0]), pytest.approx(ref[1]), 4)
    assert np.isnan(mean_ci(np.array([0.7]))[1]) and mean_ci(np.array([]))[3] == 0


def test_log_axis_only_for_rank_like_values():
    assert _log_axis([2, 4, 8, 16, 32]) and _log_axis([0.01, 0.1, 0.5])
    assert not _log_axis([1, 3, 5]) and not _log_axis([0, 10, 100]) and not _log_axis([None, 10])


def _df(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"point": p, "seed": s, "status": "TERMINATED", M: v}
            for p, vals in values.items()
            for s, v in enumerate(vals)
        ]
    )


def test_line_figure_plots_means_and_band():
    df = _df({"base": [0.70, 0.72], "r=2": [0.60, 0.64], "r=32": [0.80, 0.81]})
    points = [
        {"point": "r=2", "values": {"r": 2}, "base": False},
        {"point": "base", "values": {"r": 8}, "base": True},
        {"point": "r=32", "values": {"r": 32}, "base": False},
    ]
    fig = sensitivity_figure(df, "r", points, M)
    band, mean, base = fig.data
    assert list(mean.x) == [2, 8, 32] and list(mean.y) == pytest.approx([0.62, 0.71, 0.805])
    lo = [mean_ci(np.array(v))[1] for v in ([0.60, 0.64], [0.70, 0.72], [0.80, 0.81])]
    assert list(band.y)[3:] == pytest.approx(lo[::-1])
    assert list(base.x) == [8] and fig.layout.xaxis.type == "log"


def test_grid_figure_is_a_heatmap_of_means():
    df = _df({"base": [0.7, 0.7], "a=1,b=2": [0.6, 0.8], "a=2,b=1": [0.5, 0.5], "a=2,b=2": [0.9, 0.7]})
    points = [
        {"point": "base", "values": {"a": 1, "b": 1}, "base": True},
        {"point": "a=1,b=2", "values": {"a": 1, "b": 2}, "base": False},
        {"point": "a=2,b=1", "values": {"a": 2, "b": 1}, "base": False},
        {"point": "a=2,b=2", "values": {"a": 2, "b": 2}, "base": False},
    ]
    heat = sensitivity_figure(df, "ab", points, M).data[0]
    assert np.allclose(np.asarray(heat.z), [[0.7, 0.7], [0.5, 0.8]])  # rows a, columns b
    assert heat.text[0][0] == "0.700*"
