"""EER, decisions at a threshold and gallery-probe identification on hand-built inputs."""

from __future__ import annotations

import numpy as np
import pytest

from trainables.evaluation.decisions import at_threshold, choose_threshold, equal_error_rate, identification


def test_eer_where_false_accepts_meet_false_rejects():
    # genuine 0.9 0.8 0.3, impostors 0.7 0.2 0.1: at t = 0.7 one genuine is rejected (0.3)
    # and one impostor accepted (0.7): FAR = FRR = 1/3
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    eer, t = equal_error_rate(scores, labels)
    assert eer == pytest.approx(1 / 3) and t == pytest.approx(0.7)


def test_eer_at_operating_points_and_extremes():
    # genuine 0.9 0.6, impostors 0.7 0.1. Operating points (FAR, FRR): t=0.9 -> (0, .5),
    # t=0.7 -> (.5, .5): they meet at 0.5
    eer, _ = equal_error_rate(np.array([0.9, 0.6, 0.7, 0.1]), np.array([1, 1, 0, 0]))
    assert eer == pytest.approx(0.5)
    # separable sets give 0
    assert equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), np.array([1, 1, 0, 0]))[0] == 0.0
    # everything inverted gives 1
    assert equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), np.array([1, 1, 0, 0]))[0] == pytest.approx(1.0)


def test_eer_crossing_between_points_is_linear():
    # genuine 0.9 0.5, impostors 0.6 0.55 0.1 0.05: t=0.9 (FAR 0, FRR .5), t=0.6 (.25, .5),
    # t=0.55 (.5, .5): FRR - FAR reaches exactly 0 at t = 0.55
    eer, t = equal_error_rate(np.array([0.9, 0.5, 0.6, 0.55, 0.1, 0.05]), np.array([1, 1, 0, 0, 0, 0]))
    assert eer == pytest.approx(0.5) and t == pytest.approx(0.55)
    # a true crossing: genuine 0.9 0.8 0.4, impostors 0.85 0.3: points (FAR, FRR):
    # t=.9 (0, 2/3); t=.85 (1/2, 2/3); t=.8 (1/2, 1/3): diff goes 2/3, 1/6, -1/6
    # -> halfway between t=.85 and t=.8: FAR = 1/2, FRR = 1/2 -> 0.5
    eer, t = equal_error_rate(np.array([0.9, 0.8, 0.4, 0.85, 0.3]), np.array([1, 1, 1, 0, 0]))
    assert eer == pytest.approx(0.5) and t == pytest.approx(0.825)


def test_decisions_at_a_threshold():
    scores = np.array([0.9, 0.5, 0.3, 0.6, 0.2])
    labels = np.array([1, 1, 1, 0, 0])
    m = at_threshold(scores, labels, 0.45)  # accepts 0.9 0.5 0.6: TP 2, FP 1, FN 1, TN 1
    assert m == pytest.approx({"acc": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert choose_threshold(scores, labels, "fixed", fixed=0.4) == 0.4
    t = choose_threshold(scores, labels, "accuracy")
    assert at_threshold(scores, labels, t)["acc"] == pytest.approx(4 / 5)


def test_identification_rank_and_map_on_hand_built_embeddings():
    gallery = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # identities 10, 20, 30
    gids = np.array([10, 20, 30])
    # probe of 10 closest to 10 (rank 1); probe of 20 closest to 10, then 20 (rank 2);
    # probe of 30 closest to 20, then 30 (rank 2)... see the angles
    probes = np.array([[0.9, 0.1], [0.8, 0.6], [-0.6, 0.8]])
    pids = np.array([10, 20, 30])
    m = identification(gallery, gids, probes, pids, ranks=(1, 2))
    assert m["rank1"] == pytest.approx(1 / 3)
    assert m["rank2"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)
    with pytest.raises(ValueError, match="no gallery entry"):
        identification(gallery, gids, probes, np.array([10, 20, 40]))


def test_identification_with_two_gallery_identities():
    # sklearn's top_k_accuracy_score takes its binary path with two labels and raised here
    gallery = np.array([[1.0, 0.0], [0.0, 1.0]])  # identities 10, 20
    gids = np.array([10, 20])
    probes = np.array([[0.9, 0.1], [0.9, 0.2], [0.1, 0.9]])  # closest: 10, 10, 20
    pids = np.array([10, 20, 20])
    m = identification(gallery, gids, probes, pids, ranks=(1, 5))
    assert m["rank1"] == pytest.approx(2 / 3)  # the second probe ranks its identity second
    assert m["rank5"] == pytest.approx(1.0)
    assert m["map"] == pytest.approx((1 + 1 / 2 + 1) / 3)  # reciprocal ranks 1, 1/2, 1
