"""Which way each reported metric is better, declared by the trainable that reports it.

A report bolds the best row of a column, a study's best epoch is chosen by a validation
metric, and a sensitivity curve says which value is best: each needs to know whether higher or
lower is better. That is a fact about the metric, so the trainable that reports it declares it
at registration (``register_module(..., directions=...)``). The orchestrator records the
directions in ``run.json`` (``metric_directions``) for the report, which does not import the
trainables.

A declaration is an ordered list of (pattern, direction): the first pattern that matches the
whole key (shell-style, ``fnmatch``: ``*/eer``, ``train/*_loss``) gives its direction, ``max``
or ``min``. The shared sets below cover what several trainables report. A key that no pattern
matches is refused when the trainable's keys are checked (``undeclared``, run by the
registry's contract test for every trainable), so a new metric cannot be reported without
saying which way is better.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Iterable, Sequence

MAX, MIN = "max", "min"
Directions = Sequence[tuple[str, str]]

#: Verification (pairs of images): accuracy, AUC and TAR at a FAR are better higher; EER and a
#: fold-to-fold spread lower; the gain in EER over the untrained baseline is better higher.
VERIFICATION: Directions = (
    ("*/acc_std", MIN),
    ("*/acc", MAX),
    ("*/auc", MAX),
    ("*/eer_gain", MAX),
    ("*/eer", MIN),
    ("*/tar@far=*", MAX),
    ("*/f1", MAX),
    ("*/macro_f1", MAX),
    ("*/precision", MAX),
    ("*/recall", MAX),
)
#: Identification (probes against a gallery).
IDENTIFICATION: Directions = (
    ("*/rank1_gain", MAX),
    ("*/rank1", MAX),
    ("*/rank5", MAX),
    ("*/rank10", MAX),
    ("*/map", MAX),
    ("*/tpir@fpir=*", MAX),
)
#: Training: losses and seconds lower, throughput higher.
TRAINING: Directions = (
    ("train/loss", MIN),
    ("train/*_loss", MIN),
    ("train/images_per_s", MAX),
    ("*_s", MIN),
)
#: A probe's spread of its predictions over classes (prediction CV): lower is better.
PREDICTIONS: Directions = (("*/pred_cv", MIN),)
#: Counts and settings a trial reports for the record (images, pairs, the chosen threshold):
#: neither better higher nor lower; ``max`` only so that every key has a direction, as the
#: study's ``mode`` gives its own metric one.
RECORD: Directions = (
    ("train/epochs", MAX),
    ("*/n", MAX),
    ("*/pairs", MAX),
    ("*/impostor_pairs", MAX),
    ("*/probes", MAX),
    ("*/images", MAX),
    ("*/triplets", MAX),
    ("*/possible_triplets", MAX),
    ("*/mined_triplets_per_batch", MAX),
    ("*/threshold", MAX),
    ("*/with_training_image", MAX),
    ("*/classes", MAX),
    ("*/test_images", MAX),
    ("*/encoded", MAX),
    ("train/fusion_weight/*", MAX),
)


def direction(directions: Directions, key: str) -> str | None:
    """``max`` or ``min`` for ``key`` by the first matching pattern; None when none matches."""
    for pattern, way in directions:
        if fnmatchcase(key, pattern):
            return way
    return None


def undeclared(directions: Directions, keys: Iterable[str]) -> list[str]:
    """The keys no pattern of ``directions`` matches."""
    return [k for k in keys if direction(directions, k) is None]
