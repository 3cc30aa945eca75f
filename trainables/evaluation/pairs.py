"""Verification pair lists over held-out synthfaces identities.

Pairs are laid out as in LFW's View 2: ten contiguous folds, each with its own disjoint
set of identities (twins stay in the same fold), positives first then negatives. The
lists depend only on the evaluation set and a fixed seed, never on a trial's seed, so
every trial of a study is scored on the same pairs and seeds can be paired in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairList:
    """Indices into an image array: ``left[i]`` vs ``right[i]``, ``label`` 1 = same identity."""

    left: np.ndarray
    right: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    @staticmethod
    def concat(parts: list["PairList"]) -> "PairList":
        return PairList(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("left", "right", "label")))


def identity_folds(identities: np.ndarray, twin_of: np.ndarray, *, folds: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Deal identities into ``folds`` disjoint groups, each twin pair as one unit."""
    units, seen = [], set()
    for ident in np.unique(identities):
        if ident in seen:
            continue
        twin = twin_of[ident]
        unit = [ident] if twin < 0 or twin not in identities else [ident, twin]
        seen.update(unit)
        units.append(unit)
    order = rng.permutation(len(units))
    groups: list[list[int]] = [[] for _ in range(folds)]
    for k, u in enumerate(order):
        groups[k % folds].extend(units[u])
    return [np.asarray(sorted(g), dtype=np.int64) for g in groups]


def _fold_pairs(identity, domain, ids, gallery_domain, probe_domain, per_fold, rng) -> PairList:
    pos_l, pos_r = [], []
    gal = {i: np.flatnonzero((identity == i) & (domain == gallery_domain)) for i in ids}
    prb = {i: np.flatnonzero((identity == i) & (domain == probe_domain)) for i in ids}
    for i in ids:
        for a in gal[i]:
            for b in prb[i]:
                if a < b or (gallery_domain != probe_domain and a != b):
                    pos_l.append(a)
                    pos_r.append(b)
    n_pos = min(per_fold, len(pos_l))
    pick = np.sort(rng.choice(len(pos_l), size=n_pos, replace=False))
    neg_l, neg_r, seen = [], [], set()
    while len(neg_l) < n_pos:
        i, j = rng.choice(ids, size=2, replace=False)
        a, b = int(rng.choice(gal[i])), int(rng.choice(prb[j]))
        if (a, b) not in seen:
            seen.add((a, b))
            neg_l.append(a)
            neg_r.append(b)
    left = np.concatenate([np.asarray(pos_l)[pick], neg_l]).astype(np.int64)
    right = np.concatenate([np.asarray(pos_r)[pick], neg_r]).astype(np.int64)
    label = np.concatenate([np.ones(n_pos), np.zeros(n_pos)]).astype(np.int64)
    return PairList(left, right, label)


def verification_pairs(
    identity: np.ndarray, domain: np.ndarray, twin_of: np.ndarray, *,
    gallery_domain: int, probe_domains: list[int], per_fold: int, folds: int = 10, seed: int = 0,
) -> PairList:
    """Fold-ordered pairs: gallery image in ``gallery_domain``, probe in each of ``probe_domains``.

    With ``probe_domains == [gallery_domain]`` these are same-domain pairs. For several
    probe domains each fold holds ``per_fold`` positives and as many negatives per domain.
    """
    rng = np.random.default_rng(seed)
    groups = identity_folds(np.unique(identity), twin_of, folds=folds, rng=rng)
    if any(len(g) < 2 for g in groups):
        raise ValueError(f"{len(np.unique(identity))} identities are too few for {folds} folds of at least 2")
    parts = []
    for ids in groups:
        for d in probe_domains:
            parts.append(_fold_pairs(identity, domain, ids, gallery_domain, d, per_fold, rng))
    return PairList.concat(parts)
