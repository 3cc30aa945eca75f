"""Which way each reported metric is better, and what a table calls it, declared by the
trainable that reports it.

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

import re
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
    ("*/gallery_images", MAX),
    ("*/distractors", MAX),
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


# How a report names a metric: the set it was computed on (the key's middle parts, the ``eval/``
# and ``train/`` namespaces left out, ``val/`` kept: validation and test must not read alike),
# then the measure, named by the first pattern that matches the whole key. A name may use
# ``{value}`` (what follows "=" in the key's last part: ``tar@far=1e-3`` -> ``1e-3``), ``{stem}``
# (the last part without ``_loss`` or ``_s``) and ``{measure}`` (the last part, "_" as spaces).
Names = Sequence[tuple[str, str]]

VERIFICATION_NAMES: Names = (
    ("*/acc_std", "accuracy SD"),
    ("*/acc", "accuracy"),
    ("*/auc", "AUC"),
    ("*/eer_gain", "EER gain"),
    ("*/eer", "EER"),
    ("*/tar@far=*", "TAR@FAR={value}"),
    ("*/f1", "F1"),
    ("*/macro_f1", "macro-F1"),
    ("*/precision", "precision"),
    ("*/recall", "recall"),
)
IDENTIFICATION_NAMES: Names = (
    ("*/rank1_gain", "rank-1 gain"),
    ("*/rank1", "rank-1"),
    ("*/rank5", "rank-5"),
    ("*/rank10", "rank-10"),
    ("*/map", "mAP"),
    ("*/tpir@fpir=*", "TPIR@FPIR={value}"),
)
TRAINING_NAMES: Names = (
    ("train/loss", "loss"),
    ("train/*_loss", "{stem} loss"),
    ("train/images_per_s", "images/s"),
    ("*_s", "{stem} (s)"),
)
PREDICTIONS_NAMES: Names = (("*/pred_cv", "prediction CV"),)
#: Counts and settings: their own words.
RECORD_NAMES: Names = tuple((pattern, "{measure}") for pattern, _ in RECORD)
_NAMESPACES = ("eval", "train")


def display_name(names: Names, key: str) -> str | None:
    """What a table or a figure calls ``key`` by the first matching pattern of ``names``
    (``eval/cross_domain/tar@far=1e-3`` -> ``cross_domain TAR@FAR=1e-3``); None when none
    matches."""
    for pattern, name in names:
        if fnmatchcase(key, pattern):
            parts = key.split("/")
            last = parts[-1]
            measure = name.format(
                value=last.partition("=")[2],
                stem=re.sub(r"(_loss|_s)$", "", last).replace("_", " "),
                measure=last.replace("_", " "),
            )
            scope = parts[1:-1] if parts[0] in _NAMESPACES and len(parts) > 1 else parts[:-1]
            return " ".join([*scope, measure])
    return None


def direction(directions: Directions, key: str) -> str | None:
    """``max`` or ``min`` for ``key`` by the first matching pattern; None when none matches."""
    for pattern, way in directions:
        if fnmatchcase(key, pattern):
            return way
    return None


def undeclared(directions: Directions, keys: Iterable[str]) -> list[str]:
    """The keys no pattern of ``directions`` (or of ``Names``) matches."""
    return [k for k in keys if not any(fnmatchcase(k, pattern) for pattern, _ in directions)]
