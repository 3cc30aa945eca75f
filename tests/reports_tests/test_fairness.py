"""Fairness at one global threshold (``reports.fairness``) against a computation written here
from its definition (brute force over every threshold), on a hand-checkable case, random ones
with ties, one group and the smallest size; and its table and figure in a report built from
the trials' evaluation files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.fairness import fairness
from tests.trainables_tests.test_protocols import _thresholds


def fairness_reference(scores, labels, groups, target, alpha):
    imp = scores[labels == 0]
    t = min(t for t in _thresholds(scores) if np.mean(imp >= t) <= target)
    names = sorted(set(groups.tolist()) - {None})
    fmr = {g: np.mean(scores[(groups == g) & (labels == 0)] >= t) for g in names}
    fnmr = {g: np.mean(scores[(groups == g) & (labels == 1)] < t) for g in names}
    dfmr = max(abs(fmr[a] - fmr[b]) for a in names for b in names)
    dfnmr = max(abs(fnmr[a] - fnmr[b]) for a in names for b in names)
    return t, fmr, fnmr, 1 - (alpha * dfmr + (1 - alpha) * dfnmr)


def test_fairness_by_hand():
    # group A: impostors 0.9 0.2 (x4), genuine 0.8 0.3; group B: impostors 0.1 (x5), genuine 0.95 0.6
    scores = np.array([0.9, 0.2, 0.2, 0.2, 0.2, 0.8, 0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.95, 0.6])
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    groups = np.array(["A"] * 7 + ["B"] * 7, dtype=object)
    ids = np.arange(14)
    out = fairness(scores, labels, groups, ids, target_fmr=0.1, alpha=0.5, resamples=50)
    # 10 impostors, FMR 0.1: one may pass, the 0.9; t just above 0.2: A's FMR 1/5, B's 0;
    # A rejects its genuine 0.3? no: 0.3 > 0.2 passes; FNMR 0 and 0
    assert out.threshold == np.nextafter(0.2, 1) and out.fmr == {"A": 0.2, "B": 0.0} and out.fnmr == {"A": 0, "B": 0}
    assert out.fdr == pytest.approx(1 - 0.5 * 0.2) and out.fmr_ratio["B"] == 1.0 and out.fmr_ratio["A"] == np.inf


@pytest.mark.parametrize("seed, groups_n, alpha", [(0, 2, 0.5), (1, 3, 0.3), (2, 1, 0.7)])
def test_fairness_against_the_definition(seed, groups_n, alpha):
    rng = np.random.default_rng(seed)
    n = 600
    groups = np.array([f"g{k}" for k in rng.integers(0, groups_n, n)], dtype=object)
    labels = rng.integers(0, 2, n)
    shift = np.array([0.1 * int(g[1:]) for g in groups])
    scores = np.round(rng.normal(0.5 * labels + shift, 0.2), 2)
    ids = rng.integers(0, 50, n)
    out = fairness(scores, labels, groups, ids, target_fmr=0.01, alpha=alpha, resamples=200, seed=1)
    t, fmr, fnmr, fdr = fairness_reference(scores, labels, groups, 0.01, alpha)
    assert out.threshold == t and out.fmr == pytest.approx(fmr) and out.fnmr == pytest.approx(fnmr)
    assert out.fdr == pytest.approx(fdr)
    if groups_n == 1:
        assert out.fdr == 1.0  # one group: nothing to differ from
    lo, hi = out.intervals["fdr"]
    assert lo <= hi <= 1.0 and set(out.intervals) == {"fdr", *(f"fmr/{g}" for g in fmr), *(f"fnmr/{g}" for g in fmr)}
    again = fairness(scores, labels, groups, ids, target_fmr=0.01, alpha=alpha, resamples=200, seed=1)
    assert again.intervals == out.intervals  # the resamples are the seed's


def test_fairness_refuses_an_fmr_its_impostors_cannot_measure():
    with pytest.raises(ValueError, match="cannot measure an FMR of 0.01"):
        fairness(
            np.array([0.1, 0.9]),
            np.array([0, 1]),
            np.array(["a", "a"], dtype=object),
            np.array([0, 1]),
            target_fmr=0.01,
        )
    # the smallest case that can: one impostor pair, FMR 1
    out = fairness(
        np.array([0.1, 0.9]),
        np.array([0, 1]),
        np.array(["a", "a"], dtype=object),
        np.array([0, 1]),
        target_fmr=1.0,
        resamples=10,
    )
    assert out.threshold == -np.inf and out.fmr == {"a": 1.0} and out.fnmr == {"a": 0.0}


def test_the_ablation_report_has_a_fairness_table_across_domains(tmp_path):
    from reports import build_report
    from reports.rundir.evaluation import EVAL_FILE, Evaluation, write_evaluation

    rng, rows, M = np.random.default_rng(2), [], "eval/cross_domain/acc"
    for v, gap in (("ref", 0.3), ("fair", 0.0)):
        for seed in range(2):
            name = f"{v}_seed{seed}"
            rows.append({"trial_name": name, "variant": v, "seed": seed, "status": "TERMINATED", "error": "", M: 0.7})
            pairs = {}
            for d, domain in enumerate(("visible", "thermal")):
                labels = np.r_[np.ones(100, int), np.zeros(400, int)]
                scores = rng.normal(0.5 * labels + gap * d, 0.15).astype(np.float32)  # thermal impostors high in "ref"
                pairs[f"eval/{domain}"] = {"scores": scores, "labels": labels, "folds": np.arange(500) % 10,
                                           "identity": rng.integers(0, 40, 500)}  # fmt: skip
            ckpt = tmp_path / "tune" / f"abl_{name}" / "checkpoint_000001"
            ckpt.mkdir(parents=True)
            write_evaluation(ckpt / EVAL_FILE, Evaluation(1, pairs=pairs))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    meta = {"study": "abl", "kind": "ablation", "metric": M, "mode": "max", "variants": ["ref", "fair"]}
    (tmp_path / "run.json").write_text(json.dumps({**meta, "reference": "ref"}))
    page = build_report(tmp_path).read_text()
    table = pd.read_csv(tmp_path / "report" / "fairness.csv")
    assert "Fairness across domains" in page and "fig_fairness.html" in page
    assert table["variant"].fillna("").tolist() == ["ref", "", "fair", ""]
    assert table["domain"].tolist() == ["thermal", "visible"] * 2
    firsts = table[table["variant"].notna()]
    fdr = {r["variant"]: float(r["FDR(0.5)"].split()[0]) for _, r in firsts.iterrows()}
    assert fdr["fair"] > fdr["ref"]  # the variant whose thermal impostors score high is less fair
    assert "FMR 0.001" in (tmp_path / "report" / "fairness.tex").read_text()  # 1600 impostor pairs: 1e-3 measurable
    from tests.latex_check import assert_fits

    assert_fits([tmp_path / "report" / "fairness.tex"], tmp_path / "latex")


def test_a_benchmark_graded_by_an_attribute_gets_its_own_fairness_table(tmp_path):
    """A pair list whose pairs carry their people's shared attribute value (``group``; -1 for a
    pair of two values): ``fairness_<set>.csv`` has each value's FMR and FNMR at the global
    threshold over every impostor pair of the set (cross-group ones included), by the definition."""
    from reports import build_report
    from reports.rundir.evaluation import EVAL_FILE, Evaluation, write_evaluation

    rng, rows, M = np.random.default_rng(5), [], "eval/lfw/acc"
    kept = []
    for seed in range(2):
        name = f"ref_seed{seed}"
        rows.append({"trial_name": name, "variant": "ref", "seed": seed, "status": "TERMINATED", "error": "", M: 0.7})
        labels = np.r_[np.ones(200, int), np.zeros(1200, int)]
        group = rng.integers(-1, 2, len(labels))  # -1: the pair's two people differ in the attribute
        scores = rng.normal(0.5 * labels + 0.2 * (group == 1), 0.15).astype(np.float32)
        pairs = {M.rsplit("/", 1)[0]: {"scores": scores, "labels": labels, "folds": np.arange(1400) % 10,
                                       "identity": rng.integers(0, 80, 1400), "group": group}}  # fmt: skip
        kept.append((scores.astype(np.float64), labels, group))
        ckpt = tmp_path / "tune" / f"abl_{name}" / "checkpoint_000001"
        ckpt.mkdir(parents=True)
        write_evaluation(ckpt / EVAL_FILE, Evaluation(1, pairs=pairs, grouping="cohort", groups=["A", "B"]))
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    meta = {"study": "abl", "kind": "ablation", "metric": M, "mode": "max", "variants": ["ref"], "reference": "ref"}
    (tmp_path / "run.json").write_text(json.dumps(meta))
    page = build_report(tmp_path).read_text()
    assert "Fairness on lfw" in page and "fig_fairness_lfw.html" in page
    table = pd.read_csv(tmp_path / "report" / "fairness_lfw.csv")
    assert table["cohort"].tolist() == ["A", "B"]
    scores, labels, group = (np.concatenate(x) for x in zip(*kept))
    names = np.array([None if g < 0 else "AB"[g] for g in group], dtype=object)
    _, fmr, fnmr, _ = fairness_reference(scores, labels, names, 1e-3, 0.5)
    for _, row in table.iterrows():
        assert float(row["FMR"].split()[0]) == pytest.approx(fmr[row["cohort"]], abs=5e-5)
        assert float(row["FNMR"].split()[0]) == pytest.approx(fnmr[row["cohort"]], abs=5e-5)
