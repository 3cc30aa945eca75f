"""Metric names of the evaluation protocols, without importing any of them (torch, sklearn):
a study's metric is checked against them in the driver before anything heavy is loaded."""

from __future__ import annotations

#: The false accept rates at which every verification protocol reports its TAR.
FARS = (1e-2, 1e-3)
CROSS_DOMAIN = "cross_domain"


def tar_key(far: float) -> str:
    """``tar@far=1e-3``: the metric name of the TAR at ``far``."""
    return f"tar@far={far:.0e}".replace("e-0", "e-")


#: The keys of ``verification.verification_metrics`` (the 10-fold protocol), in its order.
VERIFICATION_KEYS = ("acc", "acc_std", "auc", *(tar_key(f) for f in FARS))
#: The keys of ``decisions.verification_at`` (a threshold chosen on validation pairs).
VERIFICATION_AT_KEYS = ("eer", "auc", "acc", "precision", "recall", "f1", "threshold", *(tar_key(f) for f in FARS))


#: The FARs of the IJB-B/C 1:1 template protocol, the FPIRs of the open-set protocol and the
#: ranks of its CMC (``trainables.evaluation.protocols``).
TEMPLATE_FARS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
OPEN_SET_FPIRS = (1e-1, 1e-2)
CMC_RANKS = (1, 5, 10)
TEMPLATES, OPEN_SET, DISTRACTORS = "templates", "open_set", "distractors"


def tpir_key(fpir: float) -> str:
    """``tpir@fpir=1e-2``: the metric name of the TPIR at ``fpir``."""
    return f"tpir@fpir={fpir:.0e}".replace("e-0", "e-")


#: ``template_verification``'s keys, and ``open_set_identification``'s (each gallery and their mean).
TEMPLATE_KEYS = (*(tar_key(f) for f in TEMPLATE_FARS), "auc", "pairs", "impostor_pairs")
OPEN_SET_KEYS = tuple(
    f"{g}/{k}"
    for g in ("g1", "g2", "mean")
    for k in (*(tpir_key(f) for f in OPEN_SET_FPIRS), *(f"rank{r}" for r in CMC_RANKS))
)


#: The keys of closed-set identification with distractors (``trainables.evaluation.tinyface``).
IDENTIFICATION_KEYS = (*(f"rank{r}" for r in CMC_RANKS), "probes", "gallery_images", "distractors")


def protocol_keys(prefix: str, *, distractors: bool = False) -> list[str]:
    """The template 1:1 and open-set 1:N keys of a group of identities (``<prefix>/templates/...``,
    ``<prefix>/open_set/...``) and, with ``distractors``, closed-set identification with
    distractors (``<prefix>/distractors/...``)."""
    keys = [f"{prefix}/{TEMPLATES}/{k}" for k in TEMPLATE_KEYS] + [f"{prefix}/{OPEN_SET}/{k}" for k in OPEN_SET_KEYS]
    return keys + ([f"{prefix}/{DISTRACTORS}/{k}" for k in IDENTIFICATION_KEYS] if distractors else [])


def set_names(domains: tuple[str, ...]) -> list[str]:
    """The pair sets of ``DomainVerification`` over these domains: each domain, then the cross-domain set."""
    return [*domains, *([CROSS_DOMAIN] if len(domains) > 1 else [])]


def verification_keys(prefix: str, sets: list[str], metrics: tuple[str, ...] = VERIFICATION_KEYS) -> list[str]:
    """``<prefix>/<set>/<metric>`` for every set and metric."""
    return [f"{prefix}/{s}/{k}" for s in sets for k in metrics]
