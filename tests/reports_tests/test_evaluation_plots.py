"""The figures drawn from the trials' evaluation files (ROC, DET, score histograms): TAR at a
FAR by its definition, the mean over seeds and its band, what is not measurable left out, the
threshold drawn, and the figures in a report built from the run directory alone."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reports.evaluation_plots import roc_info, score_info, shown_set, tar_at
from reports.rundir.evaluation import EVAL_FILE, Evaluation, write_evaluation
from reports.rundir.info import RunInfo

M = "eval/cross_domain/acc"


def test_tar_at_far_is_the_largest_tar_whose_far_is_at_most_it():
    # genuine 0.9 0.7 0.5, impostors 0.8 0.6 0.4 0.3 (4 impostor pairs: FAR 1/4 is measurable)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    labels = np.array([1, 0, 1, 0, 1, 0, 0])
    # accepting >= 0.9: TAR 1/3, FAR 0; >= 0.7: TAR 2/3, FAR 1/4; >= 0.5: TAR 1, FAR 2/4
    assert tar_at(scores, labels, np.array([0.25, 0.3, 0.5, 1.0])).tolist() == pytest.approx([2 / 3, 2 / 3, 1, 1])
    # below 1/4 no rate is measurable from 4 impostor pairs (not the TAR at FAR 0 read off the curve)
    assert np.isnan(tar_at(scores, labels, np.array([0.1]))).all()
    # a genuine pair tied with two impostors is accepted with them (FAR 2/8): below that FAR
    # only the genuine pair above them counts
    tied = np.array([0.9, 0.8, 0.8, 0.8, *[0.1] * 6])
    tied_labels = np.array([1, 1, 0, 0, *[0] * 6])
    assert tar_at(tied, tied_labels, np.array([0.25, 0.2, 0.125])).tolist() == [1.0, 0.5, 0.5]


def _pairs(rng, n_pos, n_neg, shift):
    scores = np.concatenate([rng.normal(shift, 0.1, n_pos), rng.normal(0.0, 0.1, n_neg)]).astype(np.float32)
    labels = np.concatenate([np.ones(n_pos, int), np.zeros(n_neg, int)])
    folds = np.arange(n_pos + n_neg) % 10
    return {"scores": scores, "labels": labels, "folds": folds, "fold_thresholds": rng.uniform(0.1, 0.3, 10)}


def _evaluations(seed=0):
    rng = np.random.default_rng(seed)
    return {
        v: [Evaluation(2, pairs={"eval/cross_domain": _pairs(rng, 60, 200, shift)}) for _ in range(3)]
        for v, shift in (("ref", 0.2), ("better", 0.35))
    }


def test_roc_is_the_mean_over_seeds_with_the_t_band_and_unmeasurable_fars_left_out():
    evs = _evaluations()
    info = roc_info(evs, "eval/cross_domain", {"better": "Better (ours)"})
    assert info.far[0] == pytest.approx(1 / 200) and info.far[-1] == pytest.approx(1.0)
    by = {c.variant: c for c in info.curves}
    assert by["better"].shown == "Better (ours)" and by["better"].n == 3
    for v, c in by.items():
        for j in (0, 40, 79):
            per_seed = [tar_at(ev.pairs["eval/cross_domain"]["scores"].astype(float),
                               ev.pairs["eval/cross_domain"]["labels"], info.far[j : j + 1])[0] for ev in evs[v]]  # fmt: skip
            half = stats.t.ppf(0.975, 2) * np.std(per_seed, ddof=1) / np.sqrt(3)
            assert c.tar[j] == pytest.approx(np.mean(per_seed))
            assert (c.lo[j], c.hi[j]) == pytest.approx((np.mean(per_seed) - half, np.mean(per_seed) + half))
        # 200 impostor pairs: TAR at FAR 1e-2 and 1e-1 are measurable, 1e-3 and 1e-4 are not
        assert sorted(c.points) == [1e-2, 1e-1]
    assert by["better"].points[1e-2] > by["ref"].points[1e-2]  # the better-separated variant


def test_score_histograms_pool_seeds_and_draw_the_mean_threshold_applied():
    evs = _evaluations()
    info = score_info(evs)
    assert info.sets == ["eval/cross_domain"] and info.variants == ["ref", "better"]
    cell = info.cells[("ref", "eval/cross_domain")]
    assert len(cell.genuine) == 3 * 60 and len(cell.impostor) == 3 * 200
    thresholds = np.concatenate([ev.pairs["eval/cross_domain"]["fold_thresholds"] for ev in evs["ref"]])
    assert cell.threshold == pytest.approx(thresholds.mean())


def test_cmc_is_the_share_of_probes_whose_identity_ranks_at_most_k():
    from reports.evaluation_plots import cmc_info

    def ev(ranks):
        r = np.array(ranks)
        zero = np.zeros(len(r))
        return Evaluation(
            1, ranks={"eval/gallery": {"mate_rank": r, "mate_score": zero, "nonmate_score": zero, "identity": zero}}
        )

    evs = {"a": [ev([1, 2, 3, 1]), ev([1, 1, 4, 2])], "b": [ev([1, 1, 1, 1]), ev([2, 1, 1, 1])]}
    info = cmc_info(evs, "eval/gallery")
    assert info.ranks.tolist() == [1, 2, 3, 4]  # up to the largest rank a true identity took
    a = {c.variant: c for c in info.curves}["a"]
    # seed 0: 2/4, 3/4, 4/4, 4/4; seed 1: 2/4, 3/4, 3/4, 4/4
    assert a.tar.tolist() == pytest.approx([0.5, 0.75, 0.875, 1.0]) and a.n == 2
    half = stats.t.ppf(0.975, 1) * np.std([1.0, 0.75], ddof=1) / np.sqrt(2)
    assert (a.lo[2], a.hi[2]) == pytest.approx((0.875 - half, 0.875 + half))


def test_the_roc_shows_the_test_set_of_the_study_metric():
    evs = {"a": [Evaluation(1, pairs={"eval/x": {}, "val/x": {}, "eval/y": {}})]}
    info = RunInfo(study="s", kind="ablation", metric="val/x/acc", mode="max")
    assert shown_set(info, evs) == "eval/x"  # chosen on validation, reported on the test identities
    assert shown_set(info.model_copy(update={"metric": "eval/y/auc"}), evs) == "eval/y"
    assert shown_set(info.model_copy(update={"metric": "eval/z/auc"}), evs) == "eval/x"  # the first test set
    assert shown_set(info, {}) is None


def test_tsne_lays_out_every_variants_embeddings_of_the_same_images(monkeypatch):
    import reports.tsne_plots as ep
    from reports.tsne_plots import tsne_info

    monkeypatch.setattr(ep, "TSNE_POINTS", 100)  # the cap, made small: the sample's size is what is checked
    TSNE_POINTS = ep.TSNE_POINTS

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 5
    identity = np.repeat(np.arange(4), 15)
    vectors = (centres[identity] + rng.normal(size=(60, 16))).astype(np.float16)
    emb = {"eval": {"vectors": vectors, "identity": identity, "domain": identity % 2}}
    evs = {"ref": [Evaluation(1, embeddings=emb)], "base": [Evaluation(1, embeddings=emb)], "none": [Evaluation(1)]}
    panels = tsne_info(evs, ["ref", "none", "base"], {"ref": "Reference"})
    assert [p.variant for p in panels] == ["ref", "base"] and panels[0].shown == "Reference"
    assert np.array_equal(panels[0].xy, panels[1].xy)  # seed 0: the same embeddings, the same layout
    xy = panels[0].xy
    # four well-separated identities stay apart: each point is nearer its own identity's centre
    means = np.stack([xy[identity == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((xy[:, None, :] - means[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == identity).mean() > 0.95
    many = {"eval": {"vectors": rng.normal(size=(TSNE_POINTS + 50, 4)).astype(np.float16),
                     "identity": np.arange(TSNE_POINTS + 50), "domain": np.zeros(TSNE_POINTS + 50, int)}}  # fmt: skip
    assert len(tsne_info({"v": [Evaluation(1, embeddings=many)]}, ["v"])[0].xy) == TSNE_POINTS


def test_a_report_draws_them_from_the_run_directory_alone(tmp_path):
    from reports import build_report

    rows, rng = [], np.random.default_rng(1)
    for v, shift in (("ref", 0.2), ("better", 0.35)):
        for seed in range(3):
            name = f"{v}_seed{seed}"
            rows.append({"trial_name": name, "variant": v, "seed": seed, "status": "TERMINATED", "error": "", M: 0.7})
            ckpt = tmp_path / "tune" / f"abl_{name}" / "checkpoint_000001"
            ckpt.mkdir(parents=True)
            emb = {
                "eval": {
                    "vectors": rng.normal(size=(40, 8)),
                    "identity": np.arange(40) // 4,
                    "domain": np.arange(40) % 2,
                }
            }
            pairs = {"eval/cross_domain": _pairs(rng, 30, 100, shift)}
            pairs["eval/cross_domain"] |= {"source": np.zeros(130, int), "target": 1 + np.arange(130) % 1}
            probes = {"mate_rank": rng.integers(1, 6, 20), "mate_score": rng.random(20)}
            ranks = {"eval/gallery": {**probes, "nonmate_score": rng.random(20), "identity": np.arange(20)}}
            routing = {"eval": {"weights": rng.dirichlet([1, 1], 40), "domain": np.arange(40) % 2}}
            write_evaluation(
                ckpt / EVAL_FILE,
                Evaluation(
                    1,
                    pairs=pairs,
                    ranks=ranks,
                    embeddings=emb,
                    domains=["visible", "thermal"],
                    routing=routing if v == "better" else {},  # the variant that routes
                    adapters=["visible", "thermal"] if v == "better" else [],
                ),
            )
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    meta = {"study": "abl", "kind": "ablation", "metric": M, "mode": "max", "variants": ["ref", "better"]}
    (tmp_path / "run.json").write_text(json.dumps({**meta, "reference": "ref"}))
    page = build_report(tmp_path).read_text()
    for stem in ("fig_roc", "fig_det", "fig_scores", "fig_tsne", "fig_cmc", "fig_routing", "fig_cross_domain"):
        assert (tmp_path / "report" / f"{stem}.html").is_file() and f"{stem}.html" in page, stem
    assert "thermal adapter" in (tmp_path / "report" / "fig_routing.html").read_text() and "Routing:" in page
    assert "visible \\u2192 thermal" in (tmp_path / "report" / "fig_cross_domain.html").read_text()  # JSON-escaped
    assert "evaluation.npz" in page and "largest TAR whose FAR is at most it" in page and "t-SNE" in page
    assert '"thermal"' in (tmp_path / "report" / "fig_tsne.html").read_text()  # the domains by name
    # a run whose trials kept no evaluation file says so, and draws the rest
    for ckpt in (tmp_path / "tune").rglob(EVAL_FILE):
        ckpt.unlink()
    page = build_report(tmp_path).read_text()
    assert "No ROC, DET or score histograms" in page and (tmp_path / "report" / "fig_ablation.html").is_file()


def test_routing_is_each_domains_mean_weight_per_adapter_averaged_over_seeds():
    """Row d of a variant's routing: over each seed's test images of true domain d, the mean
    weight of each adapter; then the mean of the seeds' rows (computed here by loops)."""
    from reports.routing_plots import routing_info

    rng = np.random.default_rng(4)
    seeds = []
    for _ in range(3):
        domain = rng.integers(0, 3, 30)
        domain[:3] = [0, 1, 2]  # every domain has images
        seeds.append({"weights": rng.dirichlet([1, 1, 1, 1], 30).astype(np.float16), "domain": domain})
    evs = [Evaluation(1, routing={"eval": r}, domains=["a", "b", "c"], adapters=["a", "b", "c", "d"]) for r in seeds]
    (panel,) = routing_info({"v": evs, "plain": [Evaluation(1)]}, {"v": "V"})
    assert (panel.variant, panel.shown, panel.seeds, panel.domains) == ("v", "V", 3, ["a", "b", "c"])
    for d in range(3):
        for k in range(4):
            per_seed = []
            for r in seeds:
                ws = [float(w[k]) for w, dd in zip(r["weights"], r["domain"]) if dd == d]
                per_seed.append(sum(ws) / len(ws))
            assert panel.weights[d, k] == pytest.approx(sum(per_seed) / 3, abs=1e-12)
    assert np.allclose(panel.weights.sum(axis=1), 1.0, atol=1e-2)  # each image's weights sum to 1 (float16)
