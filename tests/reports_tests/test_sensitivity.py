"""Sensitivity tables from a hand-made run: per-axis comparisons with the base, and the
points not significantly worse than the best."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from scipy import stats

from reports import build_report

M = "val/x/acc"  # the marks recommend points: they are made on validation identities only
VALUES = {"base": [0.70, 0.71, 0.72], "r=4": [0.60, 0.615, 0.62], "r=16": [0.705, 0.712, 0.721]}


def _run_dir(tmp_path, metric=M, **extra):
    rows = [
        {"trial_name": f"{p}_{s}", "point": p, "seed": s, "status": "TERMINATED", "error": "", metric: v}
        for p, vals in VALUES.items()
        for s, v in enumerate(vals)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    axes = {
        "r": [
            {"label": "r=4", "point": "r=4", "values": {"r": 4}, "base": False},
            {"label": "r=8", "point": "base", "values": {"r": 8}, "base": True},
            {"label": "r=16", "point": "r=16", "values": {"r": 16}, "base": False},
        ]
    }
    meta = {
        "study": "s",
        "kind": "sensitivity",
        "description": "",
        "trainable": "t",
        "metric": metric,
        "mode": "max",
        "report_metrics": [metric],
        "variants": list(VALUES),
        "reference": "base",
        "axes": axes,
        **extra,
    }
    (tmp_path / "run.json").write_text(json.dumps(meta))
    return tmp_path


def test_axis_table_against_base_and_best(tmp_path):
    build_report(_run_dir(tmp_path))
    csv = pd.read_csv(tmp_path / "report" / "sensitivity_r.csv")
    assert list(csv["r"]) == ["r=4", "r=8", "r=16"]
    worse = csv[csv["r"] == "r=4"].iloc[0]
    assert worse["p"] == pytest.approx(stats.ttest_rel(VALUES["r=4"], VALUES["base"]).pvalue)
    assert worse["p_holm"] == pytest.approx(2 * worse["p"])  # Holm over the axis's 2 comparisons; smallest p
    # r=16 is best; the base is within noise of it (p >= 0.05); r=4 is clearly worse
    marks = dict(zip(csv["r"], csv["mark"].fillna("")))
    assert marks == {"r=4": "", "r=8": "†", "r=16": "†"}
    md = (tmp_path / "report" / "sensitivity_r.md").read_text()
    assert "r=16†" in md and "not significantly worse than the best point (r=16)" in md
    tex = (tmp_path / "report" / "sensitivity_r.tex").read_text()
    assert r"r=16$^\dagger$" in tex and "†" not in tex  # typeset, not a raw Unicode dagger


@pytest.mark.parametrize("alpha", [0.05, 0.0005])
def test_not_worse_than_the_best_is_judged_at_the_studys_alpha(tmp_path, alpha):
    """A point is marked when its Holm-adjusted p against the best (paired t over seeds,
    Holm over the axis's comparisons with the best) is at least report.alpha: at 0.0005
    even r=4 (Holm p about 0.001) is not significantly worse; at 0.05 it is."""
    raw = {p: stats.ttest_rel(VALUES[p], VALUES["r=16"]).pvalue for p in ("r=4", "base")}
    lo, hi = sorted(raw.values())
    holm = {p: (2 * lo if raw[p] == lo else max(2 * lo, hi)) for p in raw}
    expected = {"r=16": "†", **{("r=8" if p == "base" else p): "†" if holm[p] >= alpha else "" for p in holm}}
    assert expected["r=4"] == ("†" if alpha < 0.01 else "")  # the two cases differ where the rule matters
    build_report(_run_dir(tmp_path, alpha=alpha))
    csv = pd.read_csv(tmp_path / "report" / "sensitivity_r.csv")
    assert dict(zip(csv["r"], csv["mark"].fillna(""))) == expected
    assert f"alpha {alpha:g})" in (tmp_path / "report" / "sensitivity_r.md").read_text()


@pytest.mark.parametrize("metric, extra", [("eval/x/acc", {}), (M, {"recommend": False})])
def test_no_recommendation_on_test_identities_or_when_not_asked(tmp_path, metric, extra):
    """A run ranked on a test metric (made before the rule, or edited by hand) gets no marks:
    the report never recommends a point chosen on the test identities."""
    build_report(_run_dir(tmp_path, metric, **extra))
    csv = pd.read_csv(tmp_path / "report" / "sensitivity_r.csv")
    assert set(csv["mark"].fillna("")) == {""}
    md = (tmp_path / "report" / "sensitivity_r.md").read_text()
    assert "not significantly worse" not in md and "Chosen on: nothing" in md
