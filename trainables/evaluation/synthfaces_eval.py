"""Verification on held-out synthfaces identities, per domain and across domains."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trainables.data.synthfaces import FaceSet
from trainables.evaluation.pairs import PairList, verification_pairs
from trainables.evaluation.verification import verification_metrics
from trainables.training import embed_all

CROSS_DOMAIN = "cross_domain"


class SynthfacesVerification:
    """Scores an encoder on the ``eval`` group of a FaceSet.

    Benchmarks (metric prefixes): ``eval/<domain>/`` with both images of a pair in that
    domain, and ``eval/cross_domain/`` with the gallery image in the source domain (the
    first) and the probe in any other, pooled over those domains.
    """

    def __init__(self, faces: FaceSet, *, per_fold_same: int = 50, per_fold_cross: int = 40, seed: int = 0,
                 flip: bool = False) -> None:
        ev = faces.group("eval")
        self.flip = flip
        self.images = torch.as_tensor(ev.images)
        self.pairs: dict[str, PairList] = {}
        for d, name in enumerate(faces.domains):
            self.pairs[name] = verification_pairs(ev.identity, ev.domain, faces.twin_of, gallery_domain=d,
                                                  probe_domains=[d], per_fold=per_fold_same, seed=seed)
        if len(faces.domains) > 1:
            self.pairs[CROSS_DOMAIN] = verification_pairs(
                ev.identity, ev.domain, faces.twin_of, gallery_domain=0,
                probe_domains=list(range(1, len(faces.domains))), per_fold=per_fold_cross, seed=seed)

    def __call__(self, embed: nn.Module, **embed_kw) -> dict[str, float]:
        emb = embed_all(embed, self.images, flip=self.flip, **embed_kw)
        out: dict[str, float] = {}
        for name, pl in self.pairs.items():
            scores = (emb[pl.left] * emb[pl.right]).sum(dim=1).numpy().astype(np.float64)
            for metric, value in verification_metrics(scores, pl.label).items():
                out[f"eval/{name}/{metric}"] = value
        return out
