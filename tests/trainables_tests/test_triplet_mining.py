"""Triplets of the mining levels: counts, nesting, seeds, roles of single-image persons."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainables.data.json_lists import PersonSet
from trainables.triplet.mining import MINING_FRACTIONS, possible_triplets, sample_triplets


def _persons(counts, twins) -> PersonSet:
    identity = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(0)
    identity = identity[rng.permutation(len(identity))]  # images of a person need not be adjacent
    links = [set() for _ in counts]
    for a, b in twins:
        links[a].add(b)
        links[b].add(a)
    return PersonSet(
        names=tuple(f"p{k}" for k in range(len(counts))),
        paths=tuple(f"{i}.png" for i in range(len(identity))),
        identity=identity,
        twins=tuple(tuple(sorted(t)) for t in links),
        fingerprint="x",
        source="test",
    )


PERSONS = _persons([4, 3, 1, 5, 2, 1], twins=[(0, 1), (3, 5)])


def test_possible_triplets_are_every_ordered_pair_of_a_persons_images():
    assert possible_triplets(PERSONS) == 4 * 3 + 3 * 2 + 5 * 4 + 2 * 1 == 40


@pytest.mark.parametrize("level, expected", [("minimal", 10), ("average", 20), ("maximum", 40)])
def test_mining_levels_give_25_50_100_percent(level, expected):
    t = sample_triplets(PERSONS, level, seed=0)
    assert len(t) == expected == math.ceil(MINING_FRACTIONS[level] * 40)
    assert len({tuple(x) for x in t[:, :2]}) == len(t)  # no (anchor, positive) twice


def test_levels_are_nested_and_stable_per_seed():
    a = {lvl: sample_triplets(PERSONS, lvl, seed=7) for lvl in MINING_FRACTIONS}
    assert (a["average"][:10] == a["minimal"]).all() and (a["maximum"][:20] == a["average"]).all()
    assert (sample_triplets(PERSONS, "average", seed=7) == a["average"]).all()
    other = sample_triplets(PERSONS, "average", seed=8)
    assert {tuple(x) for x in other} != {tuple(x) for x in a["average"]}
    full7, full8 = (sample_triplets(PERSONS, "maximum", seed=s) for s in (7, 8))
    assert {tuple(x) for x in full7[:, :2]} == {tuple(x) for x in full8[:, :2]}  # 100 % is every pair, any seed


def test_roles_anchor_positive_and_twin_negatives():
    ids = PERSONS.identity
    for seed in range(5):
        t = sample_triplets(PERSONS, "maximum", seed=seed)
        a, p, n = ids[t[:, 0]], ids[t[:, 1]], ids[t[:, 2]]
        assert (a == p).all() and (t[:, 0] != t[:, 1]).all()
        assert not np.isin(a, [2, 5]).any()  # single-image persons are never anchor or positive
        assert (n != a).all()
        # with a twin, the negative is the twin; person 3's twin (5) has one image
        for anchor, twin in ((0, 1), (1, 0), (3, 5)):
            assert (n[a == anchor] == twin).all()
        # persons without a twin draw from everyone else, single-image persons included
    negs = np.concatenate(
        [
            ids[sample_triplets(PERSONS, "maximum", seed=s)[:, 2]][
                ids[sample_triplets(PERSONS, "maximum", seed=s)[:, 0]] == 4
            ]
            for s in range(20)
        ]
    )
    assert set(negs.tolist()) == {0, 1, 2, 3, 5}


def test_no_triplet_without_a_person_of_two_images():
    with pytest.raises(ValueError, match="no person has two images"):
        sample_triplets(_persons([1, 1, 1], twins=[]), "maximum", seed=0)
