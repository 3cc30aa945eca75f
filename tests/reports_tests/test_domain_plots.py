"""The cross-domain and few-shot figures: accuracy per source -> target pair of domains at the
thresholds the trials applied, and test accuracy against training images per identity, each
the mean over seeds with its 95% t interval, computed here from the definitions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.domain_plots import cross_domain_info, fewshot_info
from reports.rundir.evaluation import Evaluation
from reports.rundir.info import RunInfo


def _t_interval(values):
    v = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return v.mean(), v.mean() - half, v.mean() + half


def _cross_pairs(rng, n=120):
    """Gallery images of domain 0, probes of domains 1 and 2, ten folds each with a threshold."""
    labels = rng.integers(0, 2, n)
    target = rng.integers(1, 3, n)
    scores = rng.normal(0.3 * labels - 0.05 * target, 0.1).astype(np.float32)
    return {
        "scores": scores,
        "labels": labels,
        "folds": np.arange(n) % 10,
        "fold_thresholds": rng.uniform(0.0, 0.2, 10),
        "source": np.zeros(n, int),
        "target": target,
    }


def test_cross_domain_accuracy_is_per_domain_pair_at_each_pairs_fold_threshold():
    rng = np.random.default_rng(3)
    evs = {
        v: [
            Evaluation(
                1, pairs={"eval/cross_domain": _cross_pairs(rng), "eval/visible": {}}, domains=["vis", "th", "sk"]
            )
            for _ in range(3)
        ]
        for v in ("ref", "other")
    }
    for v in evs:  # a set without domains (a benchmark) is not split
        for ev in evs[v]:
            del ev.pairs["eval/visible"]
    bars = cross_domain_info(evs, {"ref": "Reference"})
    assert [(b.variant, b.pair) for b in bars] == [
        ("ref", "vis → th"),
        ("ref", "vis → sk"),
        ("other", "vis → th"),
        ("other", "vis → sk"),
    ]
    assert bars[0].shown == "Reference" and all(b.n == 3 for b in bars)
    for b in bars:
        t = ["vis", "th", "sk"].index(b.pair.split(" → ")[1])
        per_seed = []
        for ev in evs[b.variant]:
            p = ev.pairs["eval/cross_domain"]
            right = [
                (s >= p["fold_thresholds"][f]) == (y == 1)
                for s, y, f, tt in zip(p["scores"], p["labels"], p["folds"], p["target"])
                if tt == t
            ]
            per_seed.append(sum(right) / len(right))
        mean, lo, hi = _t_interval(per_seed)
        assert (b.mean, b.lo, b.hi) == pytest.approx((mean, lo, hi))


def test_pairs_within_one_domain_or_without_domains_draw_no_cross_domain_bar():
    rng = np.random.default_rng(0)
    same = _cross_pairs(rng)
    same["target"] = same["source"]
    plain = {k: v for k, v in _cross_pairs(rng).items() if k not in ("source", "target")}
    assert cross_domain_info({"v": [Evaluation(1, pairs={"eval/a": same, "eval/b": plain})]}) == []


def _fewshot_run(metrics=("eval/visible/acc", "eval/cross_domain/acc")):
    rng = np.random.default_rng(1)
    shots = {"spi=20": 20, "base": 5, "spi=50": 50}  # declared out of order: drawn by shots
    rows = [
        {"trial_name": f"{p}_{s}", "point": p, "seed": s, "status": "TERMINATED", **{m: rng.random() for m in metrics}}
        for p in shots
        for s in range(3)
    ]
    axis = [
        {"label": f"spi={n}", "point": p, "values": {"samples_per_identity": n}, "base": p == "base"}
        for p, n in shots.items()
    ]
    meta = RunInfo.model_validate(
        {
            "study": "s",
            "kind": "sensitivity",
            "metric": "val/x/acc",
            "mode": "max",
            "axes": {"samples_per_identity": axis},
        }
    )
    return pd.DataFrame(rows), meta


def test_fewshot_curves_are_each_test_sets_accuracy_over_the_shots_in_order():
    df, meta = _fewshot_run()
    curves = fewshot_info(df, meta)
    assert [c.metric for c in curves] == ["eval/visible/acc", "eval/cross_domain/acc"]
    for c in curves:
        assert c.shots == [5.0, 20.0, 50.0] and c.n == [3, 3, 3]
        for shots, mean, lo, hi in zip(c.shots, c.mean, c.lo, c.hi):
            point = {5.0: "base", 20.0: "spi=20", 50.0: "spi=50"}[shots]
            want = _t_interval(df.loc[df["point"] == point, c.metric])
            assert (mean, lo, hi) == pytest.approx(want)
    # an axis that varies anything else draws none
    other = meta.model_copy(
        update={"axes": {"r": [p.model_copy(update={"values": {"r": 1}}) for p in meta.axes["samples_per_identity"]]}}
    )
    assert fewshot_info(df, other) == []


def test_the_sensitivity_page_draws_the_fewshot_curves(tmp_path):
    from reports import build_report

    df, meta = _fewshot_run(("eval/visible/acc", "val/x/acc"))
    df["error"] = ""
    df.to_csv(tmp_path / "results.csv", index=False)
    info = meta.model_dump(mode="json", by_alias=True, exclude_none=True)
    (tmp_path / "run.json").write_text(
        json.dumps({**info, "reference": "base", "variants": ["base", "spi=20", "spi=50"]})
    )
    page = build_report(tmp_path).read_text()
    assert "fig_fewshot.html" in page and (tmp_path / "report" / "fig_fewshot.html").is_file()
