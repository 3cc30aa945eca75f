"""The ablation table's numbers from a hand-made results table."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats

from reports.ablation import ablation_table, metric_mode
from reports.stats import holm

M = "eval/x/acc"


def _results() -> pd.DataFrame:
    rows = []
    values = {"ref": [0.70, 0.72, 0.71], "better": [0.75, 0.78, 0.76], "same": [0.70, 0.73, 0.70]}
    for variant, vals in values.items():
        for seed, v in enumerate(vals):
            rows.append(
                {
                    "trial_name": f"{variant}_{seed}",
                    "variant": variant,
                    "seed": seed,
                    "status": "TERMINATED",
                    "error": "",
                    M: v,
                    "eval/x/eer": 1 - v,
                }
            )
    rows.append(
        {
            "trial_name": "better_3",
            "variant": "better",
            "seed": 3,
            "status": "ERROR",
            "error": "RuntimeError: boom",
            M: 0.1,
            "eval/x/eer": 0.9,
        }
    )
    return pd.DataFrame(rows)


def test_ablation_cells():
    t = ablation_table(
        _results(),
        study="s",
        variants=["ref", "better", "same"],
        metrics=[M, "eval/x/eer"],
        reference="ref",
        primary=M,
        mode="max",
    )
    better = t.cells[("better", M)]
    assert better.n == 3  # the ERROR trial is not in the statistics
    assert better.mean == pytest.approx((0.75 + 0.78 + 0.76) / 3)
    assert better.diff == pytest.approx(0.0533333, abs=1e-6)
    raw = [
        stats.ttest_rel([0.75, 0.78, 0.76], [0.70, 0.72, 0.71]).pvalue,
        stats.ttest_rel([0.70, 0.73, 0.70], [0.70, 0.72, 0.71]).pvalue,
        stats.ttest_rel([0.25, 0.22, 0.24], [0.30, 0.28, 0.29]).pvalue,
        stats.ttest_rel([0.30, 0.27, 0.30], [0.30, 0.28, 0.29]).pvalue,
    ]
    adjusted = holm(raw)
    assert better.p == pytest.approx(raw[0])
    assert better.p_holm == pytest.approx(adjusted[0])
    assert t.cells[("same", "eval/x/eer")].p_holm == pytest.approx(adjusted[3])
    assert t.comparisons == 4
    # best: highest accuracy, lowest EER
    assert better.best and not t.cells[("ref", M)].best
    assert t.cells[("better", "eval/x/eer")].best
    assert t.cells[("ref", M)].diff is None
    assert [e["trial_name"] for e in t.excluded] == ["better_3"]
    assert any("did not complete" in w for w in t.warnings)


def test_metric_mode():
    assert metric_mode("eval/twins/eer", primary="x", mode="max") == "min"
    assert metric_mode("train/loss", primary="x", mode="max") == "min"
    assert metric_mode("eval/lfw/tar@far=1e-3", primary="x", mode="min") == "max"
    assert metric_mode("x", primary="x", mode="min") == "min"


def test_report_uses_the_test_the_spec_names(tmp_path):
    """report.test reaches the tables through run.json; each rendering names the test."""
    import json

    from reports import build_report

    _results().to_csv(tmp_path / "results.csv", index=False)
    meta = {
        "study": "s",
        "kind": "ablation",
        "description": "",
        "trainable": "t",
        "metric": M,
        "mode": "max",
        "report_metrics": [M],
        "variants": ["ref", "better", "same"],
        "reference": "ref",
        "test": "wilcoxon",
    }
    (tmp_path / "run.json").write_text(json.dumps(meta))
    build_report(tmp_path)
    csv = pd.read_csv(tmp_path / "report" / "ablation.csv")
    row = csv[(csv["variant"] == "better") & (csv["metric"] == M)].iloc[0]
    assert row["test"] == "Wilcoxon signed-rank test over seeds"
    assert row["p"] == pytest.approx(stats.wilcoxon([0.75, 0.78, 0.76], [0.70, 0.72, 0.71]).pvalue)
    for name in ("ablation.md", "ablation.tex", "ablation_stats.tex", "index.html"):
        assert "Wilcoxon signed-rank test" in (tmp_path / "report" / name).read_text(), name
