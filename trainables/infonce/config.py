"""Configuration of the ``infonce`` trainable."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from trainables.metric.config import MetricLearningConfig


class InfoNCEConfig(MetricLearningConfig):
    """InfoNCE / SupCon fine-tuning on P x K batches, validated by gallery-probe matching
    (the EdgeFace post-mortem); unknown keys refused.

    Validation is never the similarity of the paired samples of a batch (the note's 0.999
    while real matching was at 2 %): it is identification of held-out probe images against a
    gallery of each held-out identity's mean clean embedding.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "train_data", "test_data")

    train_data: str = Field(
        "synthfaces", description="'synthfaces', a person file (.json) or an image folder (<identity>/<image>)"
    )
    test_data: str | None = Field(
        None, description="held-out identities (person file or image folder) for the test gallery and probes"
    )
    val_fraction: float = Field(0.2, gt=0, lt=1, description="training identities held out for validation")
    loss: Literal["supcon", "ntxent"] = Field(
        "supcon", description="SupCon (every same-identity image a positive) or NT-Xent (each positive pair on its own)"
    )
    temperature: float = Field(0.07, gt=0, le=10)
    identities_per_batch: int = Field(8, ge=2, description="P")
    images_per_identity: int = Field(4, ge=2, description="K")
    gallery_per_identity: int = Field(
        3,
        ge=1,
        description="the first this many images of a held-out identity "
        "form its gallery (their mean embedding); the rest are probes",
    )
    probe_downscale: int = Field(
        1, ge=1, le=16, description="probes down-sampled by this factor and back up (1: none); the gallery stays clean"
    )
    probe_blur: float = Field(0.0, ge=0, le=10, description="Gaussian blur sigma (pixels) of the probes")
    train_degraded: float = Field(
        0.5,
        ge=0,
        le=1,
        description="share of training images degraded as the probes are, so positives span clean and degraded",
    )

    @model_validator(mode="after")
    def _data(self) -> "InfoNCEConfig":
        if self.train_data == "synthfaces" and self.test_data is not None:
            raise ValueError("train_data: synthfaces brings its own test identities; test_data cannot be set with it")
        if self.train_data != "synthfaces" and self.test_data is None:
            raise ValueError(
                "test_data is needed with your own train_data: evaluation must use identities the model never saw"
            )
        return self

    @property
    def degrades(self) -> bool:
        return self.probe_downscale > 1 or self.probe_blur > 0


def metric_keys(cfg: InfoNCEConfig) -> list[str]:
    """Keys of a trial's final report: gallery-probe identification on the validation and
    the test identities (``loop.Evaluator``) and the epoch's training keys."""
    from trainables.metric.config import metric_keys_common

    evaluation = [f"{s}/gallery/{k}" for s in ("val", "eval") for k in ("rank1", "rank5", "map", "probes")]
    return metric_keys_common(cfg, evaluation, ["train/loss", "train/images"])
