"""Face-recognition protocols beyond LFW-style pairs, as the IJB benchmarks and the fairness
literature define them, on embeddings and scores (numpy; no model, no Ray):

- **Template verification (1:1), IJB-B/C style** (``template_features``, ``template_verification``):
  a template is several images; the frames of one media (video) are averaged, the media of a
  template summed, the result L2-normalised (insightface's ``ijb_11.py`` does the same); template
  pairs are scored by cosine similarity. TAR at FAR 1e-1 ... 1e-6 is the largest TAR whose FAR is
  at most the target (not the TAR at the ROC point nearest it), and only where the impostor pairs
  number at least 1/FAR; never read off fewer.
- **Open-set identification (1:N)** (``open_set_identification``): two disjoint galleries scored
  separately, each gallery's non-mates (the probes of the other gallery's identities) serving as
  its non-mated probes. FPIR at a threshold is the share of non-mated probes whose highest
  gallery score reaches it; a mated probe counts towards TPIR only when its mate ranks first and
  scores at least the threshold. TPIR at FPIR f is read at the lowest threshold whose FPIR is at
  most f. Reported per gallery and as the mean of the two (insightface's ``ijb_1n.py`` merged the
  galleries, which makes the test closed-set: its issue #1386).
- **Closed-set identification with distractors** (``with_distractors``): extra identities in the
  gallery that no probe belongs to (TinyFace, MegaFace), ranked like any other.

Fairness at one global threshold is computed by the report from the scores the trials kept
(``reports.fairness``); the rule both read a threshold at a target rate by is the run
directory's (``reports.rundir.evaluation.threshold_at_rate``).

Written here because no well-kept library computes them: scikit-learn gives the ROC points
(``roc_curve``) these read, and nothing of the template or open-set rules.
"""

from __future__ import annotations

import numpy as np

from reports.rundir.evaluation import threshold_at_rate
from trainables.evaluation.keys import CMC_RANKS, OPEN_SET_FPIRS, TEMPLATE_FARS, tar_key, tpir_key
from trainables.evaluation.verification import tar_at_far


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


# ---------------------------------------------------------------- template verification (1:1)
def template_features(embeddings: np.ndarray, template: np.ndarray, media: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(template ids in sorted order, their L2-normalised features): within each template the
    images of one media are averaged, the media summed, the sum normalised."""
    template, media = np.asarray(template), np.asarray(media)
    ids = np.unique(template)
    out = np.zeros((len(ids), embeddings.shape[1]))
    for k, t in enumerate(ids):
        rows = template == t
        feats, meds = np.asarray(embeddings[rows], dtype=np.float64), media[rows]
        out[k] = sum(feats[meds == m].mean(axis=0) for m in np.unique(meds))
    return ids, _normalise(out)


def template_scores(ids: np.ndarray, features: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine similarity of each template pair (``first[i]``, ``second[i]``)."""
    index = np.searchsorted(ids, first), np.searchsorted(ids, second)
    for which, wanted in zip(index, (first, second)):
        if np.any(which >= len(ids)) or np.any(ids[np.minimum(which, len(ids) - 1)] != wanted):
            raise ValueError("a template pair names a template with no image")
    return np.einsum("ij,ij->i", features[index[0]], features[index[1]])


def template_verification(scores: np.ndarray, labels: np.ndarray, fars=TEMPLATE_FARS) -> dict[str, float]:
    """``tar@far=1e-k`` (NaN where fewer than 1/FAR impostor pairs) and ``auc``."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for far in fars:
        tar = tar_at_far(scores, labels, far)
        out[tar_key(far)] = float("nan") if tar is None else tar
    out["auc"] = float(roc_auc_score(labels, scores))
    out["pairs"] = float(len(labels))
    out["impostor_pairs"] = float(np.sum(np.asarray(labels) == 0))
    return out


# ---------------------------------------------------------------- open-set identification (1:N)
def _per_identity(gallery: np.ndarray, gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each gallery identity's template: its images' embeddings summed and normalised."""
    labels = np.unique(gallery_ids)
    feats = np.stack([np.asarray(gallery[gallery_ids == k], dtype=np.float64).sum(axis=0) for k in labels])
    return labels, _normalise(feats)


def open_set_gallery(
    gallery: np.ndarray,
    gallery_ids: np.ndarray,
    probes: np.ndarray,
    probe_ids: np.ndarray,
    nonmated: np.ndarray,
    *,
    fpirs=OPEN_SET_FPIRS,
    ranks=CMC_RANKS,
) -> dict[str, float]:
    """One gallery: ``probes`` are its mated probes (their identities in it), ``nonmated``
    probes of identities it does not hold. ``tpir@fpir=...`` (NaN where fewer than 1/FPIR
    non-mated probes), ``rank<k>`` (closed-set CMC of the mated probes)."""
    labels, templates = _per_identity(gallery, np.asarray(gallery_ids))
    probe_ids = np.asarray(probe_ids)
    if not np.isin(probe_ids, labels).all():
        raise ValueError("a mated probe's identity is not in its gallery")
    mated = _normalise(probes) @ templates.T
    top_nonmated = (_normalise(nonmated) @ templates.T).max(axis=1)
    col = np.searchsorted(labels, probe_ids)
    mate = mated[np.arange(len(mated)), col]
    rank = (mated >= mate[:, None]).sum(axis=1)  # 1 = first; an identity scoring as high counts ahead
    out = {}
    for f in fpirs:
        key = tpir_key(f)
        if len(top_nonmated) * f < 1 - 1e-9:
            out[key] = float("nan")
            continue
        t = threshold_at_rate(top_nonmated, f)
        out[key] = float(np.mean((rank == 1) & (mate >= t)))
    out.update({f"rank{k}": float(np.mean(rank <= k)) for k in ranks})
    return out


def open_set_identification(
    gallery1: tuple[np.ndarray, np.ndarray],
    gallery2: tuple[np.ndarray, np.ndarray],
    probes: tuple[np.ndarray, np.ndarray],
    *,
    fpirs=OPEN_SET_FPIRS,
    ranks=CMC_RANKS,
) -> dict[str, float]:
    """The two-gallery protocol: ``gallery1`` and ``gallery2`` are (embeddings, identities) of
    disjoint identities; ``probes`` (embeddings, identities) each belong to one of them. For each
    gallery its own identities' probes are mated, the other's non-mated. Keys ``g1/...``,
    ``g2/...`` and ``mean/...`` (the mean of the two)."""
    (e1, i1), (e2, i2), (ep, ip) = gallery1, gallery2, probes
    i1, i2, ip = np.asarray(i1), np.asarray(i2), np.asarray(ip)
    if set(i1.tolist()) & set(i2.tolist()):
        raise ValueError("the two galleries share identities; the open-set protocol needs them disjoint")
    in1, in2 = np.isin(ip, i1), np.isin(ip, i2)
    if not (in1 | in2).all():
        raise ValueError("a probe's identity is in neither gallery")
    out = {}
    for name, (e, i), mated, other in (("g1", (e1, i1), in1, in2), ("g2", (e2, i2), in2, in1)):
        for k, v in open_set_gallery(e, i, ep[mated], ip[mated], ep[other], fpirs=fpirs, ranks=ranks).items():
            out[f"{name}/{k}"] = v
    for k in [k.split("/", 1)[1] for k in out if k.startswith("g1/")]:
        out[f"mean/{k}"] = (out[f"g1/{k}"] + out[f"g2/{k}"]) / 2
    return out


def with_distractors(
    gallery: np.ndarray, gallery_ids: np.ndarray, distractors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gallery with ``distractors`` appended, each an identity of its own that no probe has
    (ids below every real one), for closed-set identification with distractors."""
    gallery_ids = np.asarray(gallery_ids)
    first = min(int(gallery_ids.min()), 0) - 1
    ids = np.arange(first, first - len(distractors), -1)
    return np.concatenate([np.asarray(gallery), np.asarray(distractors)]), np.concatenate([gallery_ids, ids])


__all__ = [
    "CMC_RANKS",
    "OPEN_SET_FPIRS",
    "TEMPLATE_FARS",
    "open_set_gallery",
    "open_set_identification",
    "template_features",
    "template_scores",
    "template_verification",
    "with_distractors",
]
