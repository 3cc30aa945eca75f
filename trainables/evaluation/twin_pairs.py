"""Verification pairs over a PersonSet: genuine pairs against twin impostors, and against
ordinary (non-twin) impostors, as in the AdaFace twin-verification evaluation.

The pairs depend on the person set and a fixed seed only, never on a trial's seed, so every
trial of a study is scored on the same pairs.
"""

from __future__ import annotations

import itertools

import numpy as np

from trainables.data.json_lists import PersonSet
from trainables.evaluation.pairs import PairList

TWIN, NONTWIN = "twin", "nontwin"


def _capped(pairs: list[tuple[int, int]], cap: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    if len(pairs) <= cap:
        return pairs
    return [pairs[i] for i in np.sort(rng.choice(len(pairs), size=cap, replace=False))]


def person_pairs(persons: PersonSet, *, genuine_per_person: int = 50, seed: int = 0) -> dict[str, PairList]:
    """Balanced pair lists (as many impostor as genuine pairs, as in LFW's protocol):

    * ``twin``: for each twin pair, the genuine pairs of both twins (up to
      ``genuine_per_person`` image pairs each) against as many impostor pairs of an image of
      one twin and one of the other (ND-TWINS style: can the model tell the twins apart?);
      left out when the set has no twin pair;
    * ``nontwin``: every identity's genuine pairs against as many impostor pairs of two
      identities that are not twins.
    """
    rng = np.random.default_rng([seed, 29])
    genuine: dict[int, list[tuple[int, int]]] = {}
    for k in range(persons.num_identities):
        genuine[k] = _capped(list(itertools.combinations(persons.images_of(k).tolist(), 2)), genuine_per_person, rng)
    all_genuine = [p for k in sorted(genuine) for p in genuine[k]]
    if not all_genuine:
        raise ValueError(f"{persons.source}: no identity has two images, so there is no genuine pair")
    out = {}
    twin_pos: list[tuple[int, int]] = []
    twin_neg: list[tuple[int, int]] = []
    for a, b in persons.twin_pairs():
        pos = genuine[a] + genuine[b]
        cross = list(itertools.product(persons.images_of(a).tolist(), persons.images_of(b).tolist()))
        neg = _capped(cross, len(pos), rng)
        twin_pos += _capped(pos, len(neg), rng)
        twin_neg += neg
    if twin_pos and twin_neg:
        out[TWIN] = _pair_list(twin_pos, twin_neg)
    ids = persons.identity
    nontwin, seen = [], set()
    if persons.num_identities >= 2:
        for _ in range(50 * len(all_genuine)):
            if len(nontwin) == len(all_genuine):
                break
            i, j = (int(x) for x in rng.integers(len(ids), size=2))
            a, b = int(ids[i]), int(ids[j])
            if a == b or b in persons.twins[a] or (min(i, j), max(i, j)) in seen:
                continue
            seen.add((min(i, j), max(i, j)))
            nontwin.append((i, j))
    if nontwin:
        out[NONTWIN] = _pair_list(all_genuine[: len(nontwin)], nontwin)
    return out


def _pair_list(pos: list[tuple[int, int]], neg: list[tuple[int, int]]) -> PairList:
    both = pos + neg
    return PairList(
        np.asarray([p[0] for p in both], dtype=np.int64),
        np.asarray([p[1] for p in both], dtype=np.int64),
        np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.int64),
    )


def pair_scores(emb: np.ndarray, pairs: PairList) -> np.ndarray:
    """Cosine similarity of each pair (embeddings already L2-normalised)."""
    return np.einsum("ij,ij->i", emb[pairs.left], emb[pairs.right])


__all__ = ["NONTWIN", "TWIN", "pair_scores", "person_pairs"]
