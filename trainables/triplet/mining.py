"""Triplets of the AdaFace plan: (anchor, positive, hard negative), the hard negative an
image of the anchor's twin.

A *possible triplet* is an ordered pair (anchor, positive) of two different images of one
person with at least two images, with its negative: an image of one of the person's twins,
or, for a person without a twin, an image of a random other identity. Persons with a single
image are never anchor or positive, only negatives.

``mining_level`` keeps a fraction of the possible triplets: minimal 25 %, average 50 %,
maximum 100 %. The sample is a prefix of one permutation drawn from the trial's seed, and
each triplet's negative is drawn with the triplet, so the samples are deterministic per
seed and nested (minimal within average within maximum).
"""

from __future__ import annotations

import math

import numpy as np

from trainables.data.json_lists import PersonSet

MINING_FRACTIONS = {"minimal": 0.25, "average": 0.5, "maximum": 1.0}


def anchor_positive_pairs(persons: PersonSet) -> np.ndarray:
    """(N, 2) every ordered pair of two different images of one person, by identity."""
    parts = []
    for k in range(persons.num_identities):
        imgs = persons.images_of(k)
        if len(imgs) < 2:
            continue
        a, p = np.meshgrid(imgs, imgs, indexing="ij")
        keep = a != p
        parts.append(np.stack([a[keep], p[keep]], axis=1))
    if not parts:
        raise ValueError(f"{persons.source}: no person has two images, so no triplet can be formed")
    return np.concatenate(parts).astype(np.int64)


def possible_triplets(persons: PersonSet) -> int:
    counts = np.bincount(persons.identity, minlength=persons.num_identities)
    return int(np.sum(counts * (counts - 1)))


def sample_triplets(persons: PersonSet, level: str, seed: int) -> np.ndarray:
    """(M, 3) image indices (anchor, positive, negative) of ``level`` for ``seed``."""
    if level not in MINING_FRACTIONS:
        raise ValueError(f"unknown mining level {level!r}; known: {', '.join(MINING_FRACTIONS)}")
    if persons.num_identities < 2:
        raise ValueError(f"{persons.source}: triplets need at least two identities")
    ap = anchor_positive_pairs(persons)
    rng = np.random.default_rng([seed, 101])
    ap = ap[rng.permutation(len(ap))]
    u_who, u_img = rng.random(len(ap)), rng.random(len(ap))  # one draw per triplet: nested prefixes
    ids = persons.identity
    anchor_id = ids[ap[:, 0]]
    by_id = np.argsort(ids, kind="stable")
    counts = np.bincount(ids, minlength=persons.num_identities)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_twins = np.asarray([len(t) for t in persons.twins])
    neg_id = np.empty(len(ap), dtype=np.int64)
    has_twin = n_twins[anchor_id] > 0
    for k in np.unique(anchor_id[has_twin]):
        rows = np.flatnonzero(has_twin & (anchor_id == k))
        twins = np.asarray(persons.twins[k])
        neg_id[rows] = twins[np.minimum((u_who[rows] * len(twins)).astype(np.int64), len(twins) - 1)]
    rows = np.flatnonzero(~has_twin)
    other = np.minimum((u_who[rows] * (persons.num_identities - 1)).astype(np.int64), persons.num_identities - 2)
    neg_id[rows] = other + (other >= anchor_id[rows])  # any identity but the anchor's
    pick = np.minimum((u_img * counts[neg_id]).astype(np.int64), counts[neg_id] - 1)
    neg = by_id[start[neg_id] + pick]
    n = math.ceil(MINING_FRACTIONS[level] * len(ap))
    return np.concatenate([ap, neg[:, None]], axis=1)[:n]


__all__ = ["MINING_FRACTIONS", "anchor_positive_pairs", "possible_triplets", "sample_triplets"]
