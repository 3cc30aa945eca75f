"""Configuration of the ``pair_contrastive`` trainable."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from trainables.metric.config import MetricLearningConfig


class PairContrastiveConfig(MetricLearningConfig):
    """Contrastive fine-tuning from same/different feedback pairs (the MagFace note);
    unknown keys refused.

    ``pairs`` (a feedback-pairs file) is split into train / validation / test, by identity
    when identities are known (``identity_from_folder``: no person of a test pair was
    trained on), else by pair (no test pair was
    trained on; an image may recur, and ``eval/pairs/with_training_image`` says how often).
    With ``test_pairs`` the test set is that file instead, and it is refused if it shares a
    pair, an image, or (identities known) a person with ``pairs``. ``synthfaces`` brings a
    pairs file over its training people and a test file over its held-out people.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "pairs", "test_pairs")

    pairs: str = Field("synthfaces", description="feedback-pairs file ([{image1, image2, label}]) or 'synthfaces'")
    test_pairs: str | None = Field(None, description="a separate feedback-pairs file to test on")
    identity_from_folder: bool = Field(
        False, description="an image's identity is the folder it sits in: split by identity (synthfaces: always)"
    )
    val_fraction: float = Field(0.15, gt=0, lt=1, description="share of identities (or pairs) for validation")
    test_fraction: float = Field(
        0.15, gt=0, lt=1, description="share of identities (or pairs) for testing, when there is no test_pairs"
    )
    margin: float = Field(
        1.0,
        gt=0,
        description="m in L = Y D^2 + (1 - Y) max(0, m - D)^2 (D: euclidean "
        "distance of L2-normalised embeddings, 0..2)",
    )
    threshold_policy: Literal["fixed", "accuracy", "eer"] = Field(
        "accuracy",
        description="the cosine-similarity threshold for 'same': fixed (threshold), or chosen on "
        "validation for best accuracy or FAR = FRR",
    )
    threshold: float = Field(0.4, ge=-1, le=1, description="the fixed threshold (the note's 0.4)")
    batch_size: int = Field(16, ge=1, description="pairs per batch (2 x this many images)")
    lr: float = Field(1e-4, gt=0, le=1)

    @model_validator(mode="after")
    def _data(self) -> "PairContrastiveConfig":
        if self.pairs == "synthfaces" and self.test_pairs is not None:
            raise ValueError("pairs: synthfaces brings its own test split; test_pairs cannot be set with it")
        if self.test_pairs is None and self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave something to train on (< 1)")
        return self


def metric_keys(cfg: PairContrastiveConfig) -> list[str]:
    """Keys of a trial's final report: validation AUC and EER, the test metrics at the
    threshold of the policy, the test pairs' count and overlap with training images."""
    from trainables.evaluation.keys import VERIFICATION_AT_KEYS
    from trainables.metric.config import metric_keys_common

    evaluation = [
        "val/pairs/auc",
        "val/pairs/eer",
        *(f"eval/pairs/{k}" for k in VERIFICATION_AT_KEYS),
        "eval/pairs/n",
        "eval/pairs/with_training_image",
    ]
    return metric_keys_common(cfg, evaluation, ["train/loss", "train/pairs"])
