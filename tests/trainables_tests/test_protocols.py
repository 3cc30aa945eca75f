"""The IJB-style template 1:1, the two-gallery open-set 1:N and closed-set with distractors,
each against a computation written here from the protocol's
definition (brute force over every threshold), on hand-checkable cases, random ones, ties and
the smallest sizes."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.evaluation.decisions import identification
from trainables.evaluation.protocols import (
    open_set_identification,
    template_features,
    template_scores,
    template_verification,
    with_distractors,
)


def _thresholds(*score_sets) -> list[float]:
    """Every threshold at which a rate of ``score >= t`` can change: each score, just above
    each score, and -inf (the rates are step functions of t)."""
    s = np.unique(np.concatenate([np.asarray(x, dtype=np.float64) for x in score_sets]))
    return [-np.inf, *s.tolist(), *np.nextafter(s, np.inf).tolist()]


def tar_reference(scores, labels, far):
    """The largest TAR over the thresholds whose FAR is at most ``far``; None below 1/FAR impostors."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    gen, imp = scores[labels == 1], scores[labels == 0]
    if len(imp) * far < 1 - 1e-9:
        return None
    return max(np.mean(gen >= t) for t in _thresholds(scores) if np.mean(imp >= t) <= far)


# ---------------------------------------------------------------- templates
def test_a_template_averages_a_medias_frames_and_sums_its_media():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 2.0]])
    # template 7: media 1 (two frames: mean (0.5, 0.5)) and media 2 (one image (1, 0)): sum (1.5, 0.5)
    ids, feats = template_features(emb, np.array([7, 7, 7, 9]), np.array([1, 1, 2, 3]))
    assert ids.tolist() == [7, 9]
    assert feats[0] == pytest.approx(np.array([1.5, 0.5]) / np.hypot(1.5, 0.5))
    assert feats[1] == pytest.approx([0.0, 1.0])
    assert template_scores(ids, feats, np.array([7]), np.array([9]))[0] == pytest.approx(0.5 / np.hypot(1.5, 0.5))
    with pytest.raises(ValueError, match="no image"):
        template_scores(ids, feats, np.array([7]), np.array([8]))


def test_template_features_of_random_templates_follow_the_rule():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 8))
    template, media = rng.integers(0, 6, 60), rng.integers(0, 4, 60)
    ids, feats = template_features(emb, template, media)
    for k, t in enumerate(ids):
        total = np.zeros(8)
        for m in set(media[template == t].tolist()):
            total += emb[(template == t) & (media == m)].mean(axis=0)
        assert feats[k] == pytest.approx(total / np.linalg.norm(total))


def test_template_tar_is_the_largest_tar_within_the_far_and_only_from_enough_impostors():
    rng = np.random.default_rng(1)
    for n_pos, n_neg in ((1, 1), (5, 10), (50, 1000), (300, 120)):
        scores = np.round(rng.normal(0, 1, n_pos + n_neg), 1)  # rounded: many ties
        labels = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
        labels[0], labels[-1] = 1, 0
        out = template_verification(scores, labels)
        for far in (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6):
            key = f"tar@far={far:.0e}".replace("e-0", "e-")
            want = tar_reference(scores, labels, far)
            if want is None:
                assert np.isnan(out[key]), (n_neg, far)
            else:
                assert out[key] == pytest.approx(want), (n_neg, far)
        assert out["impostor_pairs"] == n_neg and out["pairs"] == n_pos + n_neg


def test_the_tar_is_not_read_at_the_roc_point_nearest_the_far():
    # 10 impostors at 0.95, 0.85, ..., 0.05; genuine at 0.9 and 0.5. At FAR 0.1 only the
    # impostor at 0.95 may pass: TAR 1/2 (t in (0.9, 0.95] rejects the genuine at 0.9, so t <= 0.9
    # lets 0.95 through alone: FAR 0.1, TAR 1/2). The nearest-point reading would take FAR 0.2's 1/2.
    imp = np.arange(0.95, 0, -0.1)
    scores, labels = np.r_[[0.9, 0.5], imp], np.r_[[1, 1], np.zeros(10, int)]
    assert template_verification(scores, labels, fars=(0.1, 0.15))["tar@far=1e-1"] == 0.5
    assert template_verification(scores, labels, fars=(0.5,))["tar@far=5e-1"] == 1.0


# ---------------------------------------------------------------- open set
def open_set_reference(gallery, gallery_ids, probes, probe_ids, nonmated, fpir):
    """Brute force: each identity's template the normalised sum of its images; FPIR(t) the share
    of non-mated probes whose best score is >= t; TPIR(t) the share of mated probes whose mate
    scores highest (strictly above every other identity) and >= t; TPIR at FPIR f the largest
    TPIR over thresholds with FPIR(t) <= f."""
    labels = sorted(set(gallery_ids.tolist()))
    templates = []
    for k in labels:
        v = gallery[gallery_ids == k].sum(axis=0)
        templates.append(v / np.linalg.norm(v))
    unit = lambda x: x / np.linalg.norm(x)  # noqa: E731
    tops = [max(float(unit(p) @ t) for t in templates) for p in nonmated]
    mates, firsts = [], []
    for p, i in zip(probes, probe_ids):
        s = [float(unit(p) @ t) for t in templates]
        mate = s[labels.index(i)]
        mates.append(mate)
        firsts.append(all(mate > x for j, x in enumerate(s) if labels[j] != i))
    if len(tops) * fpir < 1 - 1e-9:
        return float("nan")
    tops, mates, firsts = np.array(tops), np.array(mates), np.array(firsts)
    return max(np.mean(firsts & (mates >= t)) for t in _thresholds(tops, mates) if np.mean(tops >= t) <= fpir)


def _open_set_data(rng, n1, n2, per_id=2, probes_per_id=3, noise=0.8):
    centres = rng.normal(size=(n1 + n2, 6))
    ids = np.arange(n1 + n2)
    g1 = np.repeat(ids[:n1], per_id)
    g2 = np.repeat(ids[n1:], per_id)
    pid = np.repeat(ids, probes_per_id)
    draw = lambda which: centres[which] + noise * rng.normal(size=(len(which), 6))  # noqa: E731
    return (draw(g1), g1), (draw(g2), g2), (draw(pid), pid)


@pytest.mark.parametrize("n1, n2, noise", [(2, 2, 0.5), (5, 7, 0.8), (20, 20, 1.2)])
def test_open_set_against_the_definition(n1, n2, noise):
    rng = np.random.default_rng(n1 + n2)
    (e1, i1), (e2, i2), (ep, ip) = _open_set_data(rng, n1, n2, noise=noise)
    out = open_set_identification((e1, i1), (e2, i2), (ep, ip))
    for name, (e, i), mine, other in (("g1", (e1, i1), np.isin(ip, i1), np.isin(ip, i2)),
                                      ("g2", (e2, i2), np.isin(ip, i2), np.isin(ip, i1))):  # fmt: skip
        for f in (1e-1, 1e-2):
            key = f"tpir@fpir={f:.0e}".replace("e-0", "e-")
            want = open_set_reference(e, i, ep[mine], ip[mine], ep[other], f)
            got = out[f"{name}/{key}"]
            assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want), (name, f)
        ref_rank1 = identification(*_templates(e, i), ep[mine], ip[mine], ranks=(1, 5, 10))
        for k in (1, 5, 10):
            assert out[f"{name}/rank{k}"] == pytest.approx(ref_rank1[f"rank{k}"])
    assert out["mean/rank1"] == pytest.approx((out["g1/rank1"] + out["g2/rank1"]) / 2)


def _templates(e, i):
    labels = np.unique(i)
    return np.stack([e[i == k].sum(axis=0) for k in labels]), labels


def test_a_tie_with_another_identity_counts_against_the_probe():
    from trainables.evaluation.protocols import open_set_gallery

    gallery, ids = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1])
    # the probe scores its mate (0) and identity 1 alike: it is not first (rank 2)
    nonmated = np.array([[-1.0, -1.0]] * 10)
    out = open_set_gallery(gallery, ids, np.array([[1.0, 1.0], [1.0, 0.1]]), np.array([0, 0]), nonmated, ranks=(1, 2))
    assert (out["rank1"], out["rank2"]) == (0.5, 1.0)
    assert out["tpir@fpir=1e-1"] == 0.5  # the tied probe is not counted even above the threshold
    assert out["tpir@fpir=1e-1"] == open_set_reference(
        gallery, ids, np.array([[1.0, 1.0], [1.0, 0.1]]), np.array([0, 0]), nonmated, 0.1
    )


def test_open_set_needs_enough_non_mated_probes_and_disjoint_galleries():
    rng = np.random.default_rng(3)
    # 2 identities per gallery, 3 probes each: 6 non-mated probes per gallery, FPIR 1e-1 needs 10
    (e1, i1), (e2, i2), (ep, ip) = _open_set_data(rng, 2, 2)
    out = open_set_identification((e1, i1), (e2, i2), (ep, ip))
    assert np.isnan(out["g1/tpir@fpir=1e-1"]) and np.isnan(out["mean/tpir@fpir=1e-2"])
    with pytest.raises(ValueError, match="share identities"):
        open_set_identification((e1, i1), (e1, i1), (ep, ip))


def test_merging_the_galleries_would_turn_the_test_closed_set():
    """What insightface's merged galleries measure (their issue #1386): every probe has a mate,
    none is non-mated; the two-gallery protocol keeps each gallery's non-mates."""
    rng = np.random.default_rng(4)
    (e1, i1), (e2, i2), (ep, ip) = _open_set_data(rng, 20, 20, noise=1.2)
    two = open_set_identification((e1, i1), (e2, i2), (ep, ip))
    merged, merged_ids = np.concatenate([e1, e2]), np.concatenate([i1, i2])
    closed = identification(*_templates(merged, merged_ids), ep, ip, ranks=(1,))
    assert closed["rank1"] > two["mean/tpir@fpir=1e-1"]


def test_distractors_can_only_push_the_true_identity_down():
    rng = np.random.default_rng(5)
    (e1, i1), _, (ep, ip) = _open_set_data(rng, 10, 0)
    base = identification(*_templates(e1, i1), ep, ip, ranks=(1, 5))
    near = ep[::3] + 0.05 * rng.normal(size=ep[::3].shape)  # a distractor beside each identity's probe
    g, gi = with_distractors(e1, i1, near)
    assert len(np.unique(gi)) == 10 + len(near) and not set(gi[len(e1) :]) & set(i1.tolist())
    worse = identification(*_templates(g, gi), ep, ip, ranks=(1, 5))
    assert worse["rank1"] < base["rank1"] and worse["rank5"] <= base["rank5"]


def test_the_synthfaces_template_and_open_set_sets():
    """Each identity's images (every domain) alternate between its two templates, and between
    its gallery entry and its probes; the identities alternate between the two galleries."""
    from trainables.evaluation.synthfaces_eval import ProtocolSets

    identity = np.array([5, 5, 5, 5, 9, 9, 9, 9, 2, 2])
    domain = np.array([0, 0, 1, 1, 0, 0, 1, 1, 0, 1])
    sets = ProtocolSets.of(identity, domain)
    # identities 2, 5, 9 (dense 0, 1, 2): templates 2k (even images) and 2k + 1 (odd images)
    assert sets.template.tolist() == [2, 3, 2, 3, 4, 5, 4, 5, 0, 1]
    # a media is one template's images of one domain
    assert len(set(zip(sets.template.tolist(), domain.tolist()))) == len(np.unique(sets.media))
    pairs = sorted(zip(sets.first.tolist(), sets.second.tolist(), sets.label.tolist()))
    assert len(pairs) == 9 and [p for p in pairs if p[2]] == [(0, 1, 1), (2, 3, 1), (4, 5, 1)]
    assert not (sets.gallery & sets.probe).any() and (sets.gallery | sets.probe).all()
    g1 = set(identity[sets.gallery & sets.in_g1].tolist())
    g2 = set(identity[sets.gallery & ~sets.in_g1].tolist())
    assert g1 == {2, 9} and g2 == {5} and not g1 & g2
    assert ProtocolSets.of(np.array([1, 1, 2]), np.zeros(3, int)) is None  # an identity with one image
    assert ProtocolSets.of(np.array([1, 1]), np.zeros(2, int)) is None  # one identity


def test_the_synthfaces_distractor_identification_follows_its_definition():
    """Closed set with distractors on synthfaces' sets: the first gallery's probes, each ranked
    against the first gallery's identities (an identity scored by its best entry image) and every
    image of the second gallery as a distractor of its own; rank = 1 + everything else scoring at
    least as high as the probe's own identity (brute force here)."""
    from trainables.evaluation.synthfaces_eval import ProtocolSets

    rng = np.random.default_rng(7)
    identity = np.repeat(np.arange(12), 4)
    domain = np.tile([0, 1], 24)
    emb = rng.normal(size=(48, 6)) + 1.5 * rng.normal(size=(12, 6))[identity]
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    sets = ProtocolSets.of(identity, domain)
    with_keys = sets(emb, identity, "eval")
    g1 = sets.gallery & sets.in_g1
    distractors = emb[sets.gallery & ~sets.in_g1]
    ranks = []
    for p, i in zip(emb[sets.probe & sets.in_g1], identity[sets.probe & sets.in_g1]):
        own = max(float(p @ g) for g in emb[g1 & (identity == i)])
        others = [max(float(p @ g) for g in emb[g1 & (identity == j)]) for j in set(identity[g1].tolist()) - {i}]
        others += [float(p @ d) for d in distractors]
        ranks.append(1 + sum(s >= own for s in others))
    ranks = np.array(ranks)
    for k in (1, 5, 10):
        assert with_keys[f"eval/distractors/rank{k}"] == pytest.approx(np.mean(ranks <= k)), k
    assert with_keys["eval/distractors/distractors"] == len(distractors) == 12  # 6 identities x 2 entry images
    assert (ranks > 1).any()  # the distractors do push some probes down
