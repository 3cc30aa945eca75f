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


def identity_folds(
    identities: np.ndarray, twin_of: np.ndarray, *, folds: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Deal identities into ``folds`` disjoint groups, each twin pair as one unit."""
    units = identity_units(identities, twin_of)
    order = rng.permutation(len(units))
    groups: list[list[int]] = [[] for _ in range(folds)]
    for k, u in enumerate(order):
        groups[k % folds].extend(units[u])
    return [np.asarray(sorted(g), dtype=np.int64) for g in groups]


def identity_units(identities: np.ndarray, twin_of: np.ndarray) -> list[list[int]]:
    """The identities as units that must stay together: a twin pair (both present) or one identity."""
    units, seen = [], set()
    present = set(np.asarray(identities).tolist())
    for ident in np.unique(identities):
        if ident in seen:
            continue
        twin = twin_of[ident] if 0 <= ident < len(twin_of) else -1
        unit = [int(ident)] if twin < 0 or int(twin) not in present else [int(ident), int(twin)]
        seen.update(unit)
        units.append(unit)
    return units


def fold_count(identities: np.ndarray, twin_of: np.ndarray, *, folds: int = 10) -> int:
    """``folds``, or fewer when there are fewer than two identity units per fold (a small
    validation split); every fold then holds at least two units. Fewer than four units
    (two folds) cannot be cross-validated."""
    n = len(identity_units(identities, twin_of))
    if n < 4:
        raise ValueError(
            f"{len(np.unique(identities))} identities are too few for a verification protocol "
            "(at least two folds of two identities)"
        )
    return min(folds, n // 2)


def _positives(identity, domain, ids, gallery_domain, probe_domain) -> tuple[list[int], list[int]]:
    pos_l, pos_r = [], []
    for i in ids:
        gal = np.flatnonzero((identity == i) & (domain == gallery_domain))
        prb = np.flatnonzero((identity == i) & (domain == probe_domain))
        for a in gal:
            for b in prb:
                if a < b or (gallery_domain != probe_domain and a != b):
                    pos_l.append(a)
                    pos_r.append(b)
    return pos_l, pos_r


def _fold_pairs(identity, domain, ids, gallery_domain, probe_domain, positives, n_pos, rng) -> PairList:
    pos_l, pos_r = positives
    pick = np.sort(rng.choice(len(pos_l), size=n_pos, replace=False))
    gal = {i: np.flatnonzero((identity == i) & (domain == gallery_domain)) for i in ids}
    prb = {i: np.flatnonzero((identity == i) & (domain == probe_domain)) for i in ids}
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
    identity: np.ndarray,
    domain: np.ndarray,
    twin_of: np.ndarray,
    *,
    gallery_domain: int,
    probe_domains: list[int],
    per_fold: int,
    folds: int = 10,
    seed: int = 0,
) -> PairList:
    """Fold-ordered pairs: gallery image in ``gallery_domain``, probe in each of ``probe_domains``.

    With ``probe_domains == [gallery_domain]`` these are same-domain pairs. Every fold holds
    the same number of positives per probe domain (``per_fold``, or fewer when some fold has
    fewer genuine pairs: then every fold has as many as the poorest one) and as many
    negatives, so that the contiguous 10-way split of the 10-fold protocol
    (``verification.ten_fold_accuracy``) cuts exactly at the identity folds: a threshold is
    never chosen on pairs of the identities it is scored on.
    """
    rng = np.random.default_rng(seed)
    groups = identity_folds(np.unique(identity), twin_of, folds=folds, rng=rng)
    if any(len(g) < 2 for g in groups):
        raise ValueError(f"{len(np.unique(identity))} identities are too few for {folds} folds of at least 2")
    positives = [[_positives(identity, domain, ids, gallery_domain, d) for d in probe_domains] for ids in groups]
    n_pos = min(per_fold, min(len(pos[0]) for per_domain in positives for pos in per_domain))
    if n_pos == 0:
        raise ValueError(f"a fold of {folds} has no genuine pair (too few images per identity in its domains)")
    parts = []
    for ids, per_domain in zip(groups, positives):
        for d, pos in zip(probe_domains, per_domain):
            parts.append(_fold_pairs(identity, domain, ids, gallery_domain, d, pos, n_pos, rng))
    return PairList.concat(parts)
