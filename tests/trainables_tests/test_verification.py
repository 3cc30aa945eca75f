"""The 10-fold protocol, TAR@FAR and AUC against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from trainables.evaluation.verification import best_threshold, tar_at_far, ten_fold_accuracy, verification_metrics


def test_best_threshold_by_hand():
    # sorted scores 0.1(n) 0.2(p) 0.3(n) 0.4(p) 0.5(p): cut between 0.3 and 0.4 gets 4/5 right,
    # as does the cut between 0.1 and 0.2; the lower one (0.15) is taken.
    scores = np.array([0.4, 0.1, 0.5, 0.3, 0.2])
    labels = np.array([1, 0, 1, 0, 1])
    assert best_threshold(scores, labels) == pytest.approx(0.15)
    # strictly separable: the threshold sits halfway across the gap
    assert best_threshold(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == pytest.approx(0.5)


def test_best_threshold_keeps_ties_together():
    # a cut may not fall between equal scores: 0.5 (neg) and 0.5 (pos) go to the same side
    t = best_threshold(np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1]))
    assert t in (-np.inf, pytest.approx(0.7))


def test_all_one_side_thresholds():
    assert best_threshold(np.array([0.1, 0.2]), np.array([1, 1])) == -np.inf
    assert best_threshold(np.array([0.1, 0.2]), np.array([0, 0])) == np.inf


def test_ten_fold_hand_case():
    # 10 folds of 2 pairs (pos 0.9, neg 0.1) except fold 3 whose positive scores 0.05.
    scores = np.tile([0.9, 0.1], 10)
    labels = np.tile([1, 0], 10)
    scores[6] = 0.05
    acc = ten_fold_accuracy(scores, labels, folds=10)
    # Training on any 9 folds picks a threshold in (0.1, 0.9); the odd positive is then
    # rejected: fold 3 scores 1/2, the other folds 2/2.
    expected = [1.0] * 10
    expected[3] = 0.5
    assert acc.per_fold == pytest.approx(expected)
    assert acc.mean == pytest.approx(0.95)
    assert acc.std == pytest.approx(np.std(expected))
    assert all(0.1 < t < 0.9 for t in acc.thresholds)


def test_threshold_never_chosen_on_its_own_fold():
    # Fold 0 alone is separable at a threshold that the other folds contradict.
    scores = np.array([0.3, 0.2] + [0.9, 0.4] * 9)
    labels = np.array([1, 0] + [1, 0] * 9)
    acc = ten_fold_accuracy(scores, labels, folds=10)
    # other folds put the threshold in (0.4, 0.9): fold 0's positive at 0.3 is rejected
    assert acc.per_fold[0] == 0.5


def test_tar_at_far_hand_case():
    neg = np.linspace(0.0, 0.99, 100)  # 100 impostor scores
    pos = np.array([0.995, 0.985, 0.5, 0.2])
    scores = np.concatenate([pos, neg])
    labels = np.concatenate([np.ones(4), np.zeros(100)])
    # FAR <= 1e-2 allows one impostor above threshold (0.99): positives above 0.98 pass -> 2/4
    assert tar_at_far(scores, labels, 1e-2) == pytest.approx(0.5)
    # fewer than 1/far impostors: the rate is not measurable
    assert tar_at_far(scores, labels, 1e-3) is None


def test_verification_metrics_keys_and_auc():
    rng = np.random.default_rng(0)
    labels = np.tile([1, 0], 600)
    scores = rng.normal(labels * 1.0, 1.0)
    m = verification_metrics(scores, labels)
    # 600 impostors: TAR at 1e-3 needs 1000, so it is reported as NaN (the keys never change)
    assert set(m) == {"acc", "acc_std", "auc", "tar@far=1e-2", "tar@far=1e-3"}
    assert np.isnan(m["tar@far=1e-3"]) and not np.isnan(m["tar@far=1e-2"])
    assert m["auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert 0.6 < m["acc"] < 0.8  # d' = 1: Bayes accuracy is 0.69


def test_tar_at_far_with_tied_scores_keeps_the_operating_point():
    # accepting score >= 2 gives 2 of 3 genuine pairs and 1 of 100 impostors: FAR exactly 1e-2.
    # sklearn's roc_curve(drop_intermediate=True) drops that point as "collinear" (0.333)
    labels = np.array([1, 1, 0, 1, 0] + [0] * 98)
    scores = np.array([3, 2, 2, 1, 1] + [0] * 98, dtype=float)
    assert tar_at_far(scores, labels, 1e-2) == pytest.approx(2 / 3)
    # by the definition: the best TPR over thresholds whose FPR is at most the target
    best = max(
        np.mean(scores[labels == 1] >= t) for t in np.unique(scores) if np.mean(scores[labels == 0] >= t) <= 1e-2
    )
    assert tar_at_far(scores, labels, 1e-2) == pytest.approx(best)


def test_fold_blocks_stay_identity_disjoint_when_folds_are_short_of_genuine_pairs():
    # 24 identities x 3 images in one domain: 10 folds of 2-3 identities hold 6-9 genuine
    # pairs, fewer than per_fold=50. Every one of the ten contiguous parts that the 10-fold
    # protocol cuts must hold the identities of one fold only.
    from trainables.evaluation.pairs import verification_pairs
    from trainables.evaluation.verification import ten_fold_accuracy

    identity = np.repeat(np.arange(24), 3)
    domain = np.zeros(len(identity), dtype=np.int64)
    twin_of = np.full(24, -1)
    twin_of[[0, 1]] = [1, 0]
    pl = verification_pairs(identity, domain, twin_of, gallery_domain=0, probe_domains=[0], per_fold=50)
    parts = np.array_split(np.arange(len(pl)), 10)
    people = [set(identity[pl.left[p]]) | set(identity[pl.right[p]]) for p in parts]
    for k in range(10):
        others = set().union(*(people[j] for j in range(10) if j != k))
        assert not people[k] & others, k
        labels = pl.label[parts[k]]
        assert labels.sum() == len(labels) / 2  # as many genuine as impostor pairs in each part
    assert {0, 1} <= next(p for p in people if 0 in p)  # twins in one fold
    # and the protocol accepts the list (it would cut through folds if they differed in size)
    ten_fold_accuracy(np.random.default_rng(0).normal(size=len(pl)), pl.label)
