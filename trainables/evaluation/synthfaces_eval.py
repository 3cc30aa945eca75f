"""Verification on held-out synthfaces identities, per domain and across domains."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.data.synthfaces import FaceSet
from trainables.evaluation.artifacts import record_embeddings, record_pairs
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
    ) -> None:
        self.flip, self.prefix = flip, prefix
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

    def __call__(self, embed: nn.Module, **embed_kw) -> dict[str, float]:
        emb = embed_all(embed, self.images, flip=self.flip, **embed_kw)
        out: dict[str, float] = {}
        for name, pl in self.pairs.items():
            scores = (emb[pl.left] * emb[pl.right]).sum(dim=1).numpy().astype(np.float64)
            for metric, value in verification_metrics(scores, pl.label, folds=self.folds).items():
                out[f"{self.prefix}/{name}/{metric}"] = value
            record_pairs(f"{self.prefix}/{name}", scores, pl.label, folds=self.folds, identity=self.identity[pl.left])
        record_embeddings(self.prefix, emb, self.identity, self.domain)
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
        )
