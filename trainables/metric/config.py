"""The settings every metric-learning trainable shares (``triplet``, ``pair_contrastive``,
``infonce``): pydantic only, so that importing a config (every Ray trial actor unpickles
one, and ``import trainables`` imports them all) does not import torch, peft or timm."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from trainables.config_base import TrainableConfig
from trainables.data import synthfaces


class MetricLearningConfig(TrainableConfig):
    """Settings every metric-learning trainable has (unknown keys refused)."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("backbone",)

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="seed of initialisation, sampling, data order")
    baseline: bool = Field(
        False,
        description="evaluate the backbone as loaded, without fine-tuning (the "
        "'baseline' variant every study compares with)",
    )
    # -- backbone and adaptation
    backbone: str = Field(
        "standin",
        description="'standin', a timm or Hugging Face checkpoint directory, 'timm:<dir>', or 'hf:<repo id or dir>'",
    )
    adaptation: Literal["lora", "full"] = Field("full", description="full: every weight trains; lora: LoRA adapters")
    lora_rank: int = Field(8, gt=0, le=1024)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: tuple[str, ...] = Field(("auto",), min_length=1)
    # -- optimisation
    lr: float = Field(1e-4, gt=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up length, then cosine decay")
    epochs: int = Field(3, gt=0, le=10_000)
    eval_every: int = Field(1, ge=1, description="evaluate every this many epochs (and after the last)")
    flip_test: bool = Field(True, description="embed each evaluation image and its mirror image, summed")
    # -- data (synthfaces settings apply when the data is 'synthfaces')
    image_size: int = Field(32, ge=16, le=256, multiple_of=8, description="synthfaces resolution")
    data_seed: int = Field(0, ge=0, description="synthfaces seed (identities and images)")
    synth_train_identities: int = Field(120, ge=4)
    synth_train_images: int = Field(4, ge=2, description="synthfaces images per identity and domain (train group)")
    synth_eval_identities: int = Field(60, ge=4)
    synth_eval_images: int = Field(5, ge=2, description="synthfaces images per identity and domain (eval group)")
    synth_twin_spread: float = Field(
        0.06, ge=0, le=1, description="synthfaces: how far twins' identity parameters lie apart (smaller: harder twins)"
    )
    synth_domains: tuple[str, ...] = Field(
        ("visible", "thermal", "low_quality", "harsh_light", "occluded"),
        min_length=1,
        description="synthfaces domains exported",
    )
    # -- hardware
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_workers: int | None = Field(None, ge=0)

    def synthfaces(self) -> synthfaces.SynthFacesSpec:
        return synthfaces.SynthFacesSpec(
            resolution=self.image_size,
            seed=self.data_seed,
            train_identities=self.synth_train_identities,
            train_images=self.synth_train_images,
            eval_identities=self.synth_eval_identities,
            eval_images=self.synth_eval_images,
            twin_spread=self.synth_twin_spread,
            domains=self.synth_domains,
        )


def metric_keys_common(cfg: MetricLearningConfig, evaluation: list[str], training: list[str]) -> list[str]:
    """The final report of a metric-learning trial (``common.fit``): the evaluation keys, and
    the epoch's training keys unless ``baseline`` (evaluated once, nothing trained), plus the
    change of each test EER / rank-1 from the evaluation before training (``<key>_gain``)."""
    gains = [f"{k}_gain" for k in evaluation if k.startswith("eval/") and k.endswith(("/eer", "/rank1"))]
    epoch = ["train/epochs"] if cfg.baseline else [*training, "train/epoch_s", "train/epochs"]
    return [*epoch, *evaluation, *gains]


def iterations(cfg: MetricLearningConfig) -> int:
    """Reports of a whole trial: one per epoch, or one evaluation for the baseline."""
    return 1 if cfg.baseline else int(cfg.epochs)
