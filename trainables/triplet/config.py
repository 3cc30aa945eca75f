"""Configuration of the ``triplet`` trainable."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from trainables.metric.config import MetricLearningConfig


class TripletConfig(MetricLearningConfig):
    """Triplet fine-tuning with twin hard negatives (the AdaFace plan); unknown keys refused.

    Data: a person file and a twin file for training and for testing (the plan's
    ``train_dataset_infor.json`` / ``train_twin_pairs.json`` and ``test_...``), or
    ``synthfaces``, exported in those formats. ``val_fraction`` of the training identities
    (twins together) are held out to choose the decision threshold and rank trials.
    """

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("backbone", "train_persons", "train_twins", "test_persons", "test_twins")

    train_persons: str = Field("synthfaces", description="person file (identity -> image paths) or 'synthfaces'")
    train_twins: str | None = Field(None, description="twin file (list of identity pairs) of the training persons")
    test_persons: str | None = Field(None, description="person file of the held-out test identities")
    test_twins: str | None = Field(None, description="twin file of the test persons")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="training identities held out for validation")
    mining_level: Literal["minimal", "average", "maximum"] = Field(
        "maximum", description="share of the possible triplets trained on: 25 / 50 / 100 %"
    )
    margin: float = Field(
        0.2,
        gt=0,
        description="triplet margin (set here: pytorch-metric-learning's default "
        "is 0.05 in the loss and 0.2 in its miner)",
    )
    distance: Literal["euclidean", "cosine"] = Field("euclidean", description="on L2-normalised embeddings")
    batch_mining: Literal["none", "semihard", "hard"] = Field(
        "none", description="also train on the semi-hard or hard triplets mined within each batch"
    )
    batch_size: int = Field(32, ge=1, description="triplets per batch (3 x this many images)")
    genuine_per_person: int = Field(50, ge=1, description="evaluation: genuine pairs per identity, at most")
    threshold_policy: Literal["accuracy", "eer"] = Field(
        "accuracy", description="decision threshold chosen on validation: best accuracy, or where FAR = FRR"
    )

    @model_validator(mode="after")
    def _data(self) -> "TripletConfig":
        if self.train_persons == "synthfaces":
            given = [k for k in ("train_twins", "test_persons", "test_twins") if getattr(self, k) is not None]
            if given:
                raise ValueError(f"train_persons: synthfaces brings its own files; {given[0]} cannot be set with it")
        elif self.test_persons is None:
            raise ValueError(
                "test_persons is needed with a person file for training: evaluation must use "
                "identities the model never saw"
            )
        return self


def metric_keys(cfg: TripletConfig) -> list[str]:
    """Keys of a trial's final report (``loop.Evaluator`` and the epoch): per protocol
    (``twin`` where the test persons have twins: synthfaces, or a test twin file; and
    ``nontwin``) the validation EER and the test metrics at the validation threshold."""
    from trainables.evaluation.keys import VERIFICATION_AT_KEYS
    from trainables.metric.config import metric_keys_common

    protocols = (["twin"] if cfg.train_persons == "synthfaces" or cfg.test_twins else []) + ["nontwin"]
    evaluation = [
        f"{s}/{p}/{k}" for p in protocols for s, ks in (("val", ("eer",)), ("eval", VERIFICATION_AT_KEYS)) for k in ks
    ]
    training = ["train/loss", "train/triplets", "train/possible_triplets"]
    if cfg.batch_mining != "none":
        training.append("train/mined_triplets_per_batch")
    return metric_keys_common(cfg, evaluation, training)
