"""Verification on held-out synthfaces identities, per domain and across domains."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.data.synthfaces import FaceSet
from trainables.evaluation.artifacts import record_domain_names, record_embeddings, record_pairs, record_ranks
from trainables.evaluation.keys import CROSS_DOMAIN, set_names, verification_keys  # noqa: F401  (re-exported)
from trainables.evaluation.pairs import PairList, fold_count, verification_pairs
from trainables.evaluation.verification import verification_metrics
from trainables.training import embed_all


class DomainVerification:
    """Scores an encoder on a group of identities that it was never trained on.

    Pair sets (metric prefixes, ``prefix`` being ``eval`` for the test identities and ``val``
    for the validation identities held out of training): ``<prefix>/<domain>/`` with both
    images of a pair in that domain, and ``<prefix>/cross_domain/`` with the gallery image in
    the source domain (the first) and the probe in any other, pooled over those domains.
    Fewer than 20 identities get fewer folds (at least two identity units each).
    """

    def __init__(
        self,
        images: np.ndarray,
        identity: np.ndarray,
        domain: np.ndarray,
        twin_of: np.ndarray,
        domains: tuple[str, ...],
        *,
        prefix: str,
        per_fold_same: int = 50,
        per_fold_cross: int = 40,
        seed: int = 0,
        flip: bool = False,
        protocols: bool = False,
    ) -> None:
        self.flip, self.prefix, self.domain_names = flip, prefix, tuple(domains)
        self.identity, self.domain = np.asarray(identity), np.asarray(domain)
        # rows of the shared decoded-image cache stay a view, read in batches by ``embed_all``
        self.images = images if hasattr(images, "subset") else torch.as_tensor(images)
        self.identities = np.unique(identity)
        self.folds = fold_count(self.identities, twin_of)
        self.pairs: dict[str, PairList] = {}
        for d, name in enumerate(domains):
            self.pairs[name] = verification_pairs(
                identity,
                domain,
                twin_of,
                gallery_domain=d,
                probe_domains=[d],
                per_fold=per_fold_same,
                seed=seed,
                folds=self.folds,
            )
        if len(domains) > 1:
            self.pairs[CROSS_DOMAIN] = verification_pairs(
                identity,
                domain,
                twin_of,
                gallery_domain=0,
                probe_domains=list(range(1, len(domains))),
                per_fold=per_fold_cross,
                seed=seed,
                folds=self.folds,
            )

        self.protocols = ProtocolSets.of(self.identity, self.domain) if protocols else None

    def __call__(self, embed: nn.Module, **embed_kw) -> dict[str, float]:
        emb = embed_all(embed, self.images, flip=self.flip, **embed_kw)
        out: dict[str, float] = {}
        for name, pl in self.pairs.items():
            scores = (emb[pl.left] * emb[pl.right]).sum(dim=1).numpy().astype(np.float64)
            for metric, value in verification_metrics(scores, pl.label, folds=self.folds).items():
                out[f"{self.prefix}/{name}/{metric}"] = value
            record_pairs(
                f"{self.prefix}/{name}",
                scores,
                pl.label,
                folds=self.folds,
                identity=self.identity[pl.left],
                domains=(self.domain[pl.left], self.domain[pl.right]),
            )
        record_domain_names(self.domain_names)
        record_embeddings(self.prefix, emb, self.identity, self.domain, self.domain_names)
        if self.protocols is not None:
            out.update(self.protocols(emb.numpy(), self.identity, self.prefix))
        return out


@dataclass(frozen=True)
class ProtocolSets:
    """The template 1:1 and open-set 1:N protocols on a group of held-out identities, each
    identity's images (every domain) cut in two by their order within it: even ones and odd
    ones.

    Templates: each identity gives two templates, its even and its odd images, the images of
    one domain a media (their embeddings averaged, as a video's frames are); the two templates
    of an identity are a genuine pair, every template pair of two identities an impostor pair.
    Open set: the identities alternate between two galleries; an identity's even images are its
    gallery entry, its odd images its probes (mated in its own gallery, non-mated in the other).
    Closed set with distractors (TinyFace-style): the first gallery's probes against its entries
    plus the second gallery's images, each a distractor (a person no probe is)."""

    template: np.ndarray
    media: np.ndarray
    first: np.ndarray
    second: np.ndarray
    label: np.ndarray
    rows: np.ndarray
    gallery: np.ndarray
    probe: np.ndarray
    in_g1: np.ndarray

    @classmethod
    def of(cls, identity: np.ndarray, domain: np.ndarray) -> ProtocolSets | None:
        identity, domain = np.asarray(identity), np.asarray(domain)
        ids = np.unique(identity)
        rank = np.empty(len(identity), dtype=np.int64)  # each image's position within its identity
        for i in ids:
            rows = np.flatnonzero(identity == i)
            rank[rows] = np.arange(len(rows))
        counts = np.bincount(np.searchsorted(ids, identity))
        if len(ids) < 2 or counts.min() < 2:
            return None  # two identities with two images each, at least
        dense = np.searchsorted(ids, identity)
        template = 2 * dense + (rank % 2)
        media = template * (int(domain.max()) + 1) + domain
        a, b = np.meshgrid(np.arange(len(ids)), np.arange(len(ids)), indexing="ij")
        first, second = (2 * a).ravel(), (2 * b + 1).ravel()  # (even of i, odd of j), every i and j
        gallery, probe = rank % 2 == 0, rank % 2 == 1
        return cls(template, media, first, second, (a == b).ravel().astype(int), np.arange(len(identity)),
                   gallery, probe, dense % 2 == 0)  # fmt: skip

    def __call__(self, emb: np.ndarray, identity: np.ndarray, prefix: str) -> dict[str, float]:
        from trainables.evaluation.decisions import identification_ranks
        from trainables.evaluation.keys import CMC_RANKS, DISTRACTORS, OPEN_SET, TEMPLATES
        from trainables.evaluation.protocols import (
            open_set_identification,
            template_features,
            template_scores,
            template_verification,
            with_distractors,
        )

        out: dict[str, float] = {}
        ids, feats = template_features(emb, self.template, self.media)
        scores = template_scores(ids, feats, self.first, self.second)
        out.update({f"{prefix}/{TEMPLATES}/{k}": v for k, v in template_verification(scores, self.label).items()})
        record_pairs(f"{prefix}/{TEMPLATES}", scores, self.label)
        g1, g2 = self.gallery & self.in_g1, self.gallery & ~self.in_g1
        open_set = open_set_identification(
            (emb[g1], identity[g1]), (emb[g2], identity[g2]), (emb[self.probe], identity[self.probe])
        )
        out.update({f"{prefix}/{OPEN_SET}/{k}": v for k, v in open_set.items()})
        gallery, ids = with_distractors(emb[g1], identity[g1], emb[g2])
        mine = self.probe & self.in_g1
        rank, mate, nonmate = identification_ranks(gallery, ids, emb[mine], identity[mine])
        record_ranks(f"{prefix}/{DISTRACTORS}", rank, mate, nonmate, identity[mine])
        out.update({f"{prefix}/{DISTRACTORS}/rank{k}": float(np.mean(rank <= k)) for k in CMC_RANKS})
        out[f"{prefix}/{DISTRACTORS}/probes"] = float(mine.sum())
        out[f"{prefix}/{DISTRACTORS}/gallery_images"] = float(g1.sum())
        out[f"{prefix}/{DISTRACTORS}/distractors"] = float(g2.sum())
        return out


class SynthfacesVerification(DomainVerification):
    """``DomainVerification`` on the ``eval`` group of a FaceSet (the test identities)."""

    def __init__(
        self, faces: FaceSet, *, per_fold_same: int = 50, per_fold_cross: int = 40, seed: int = 0, flip: bool = False
    ) -> None:
        ev = faces.group("eval")
        super().__init__(
            ev.images,
            ev.identity,
            ev.domain,
            faces.twin_of,
            faces.domains,
            prefix="eval",
            per_fold_same=per_fold_same,
            per_fold_cross=per_fold_cross,
            seed=seed,
            flip=flip,
            protocols=True,
        )
