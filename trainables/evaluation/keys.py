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


def set_names(domains: tuple[str, ...]) -> list[str]:
    """The pair sets of ``DomainVerification`` over these domains: each domain, then the cross-domain set."""
    return [*domains, *([CROSS_DOMAIN] if len(domains) > 1 else [])]


def verification_keys(prefix: str, sets: list[str], metrics: tuple[str, ...] = VERIFICATION_KEYS) -> list[str]:
    """``<prefix>/<set>/<metric>`` for every set and metric."""
    return [f"{prefix}/{s}/{k}" for s in sets for k in metrics]
