"""Configuration of the ``probe`` trainable."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from trainables.config_base import TrainableConfig
from trainables.data import synthfaces

#: The quick-experiments note's CLIP prompt templates (averaged, as the note does).
NOTE_PROMPTS = (
    "a photo of a person named {}",
    "a face photo of someone called {}",
    "{}, a common first name",
    "this person's name is {}",
    "a portrait of {}",
)


class ProbeConfig(TrainableConfig):
    """A head trained on frozen-encoder embeddings (the quick-experiments track); unknown keys
    refused. Embeddings come from the shared on-disk cache (``trainables.probe.cache``): every
    trial of every study that asks for the same encoder, preprocessing and images reads the
    same file, encoded once."""

    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("encoders", "data", "test_data")

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="seed of the head's initialisation and batch order")
    # -- encoders
    encoders: tuple[str, ...] = Field(
        ("standin",),
        min_length=1,
        description=(
            "frozen encoders: 'standin', 'standin:untrained' (the same architecture, random weights: the "
            "random-features control), a timm or Hugging Face directory ('timm:<dir>', 'hf:<dir or cached repo id>'; "
            "DINOv2, CLIP, SigLIP), or 'onnx:<file.onnx>' (an ArcFace-style face-embedding model)"
        ),
    )
    fusion: Literal["concat", "late_fusion", "learned_weights"] = Field(
        "concat",
        description=(
            "several encoders: one head on the concatenated embeddings, one head per encoder with logits "
            "averaged, or one head per encoder with weights learned on the validation images"
        ),
    )
    head: Literal["linear", "supcon", "zero_shot"] = Field(
        "linear",
        description=(
            "linear: multinomial logistic regression; supcon: a projection trained with SupCon, then a linear "
            "probe on it; zero_shot: CLIP / SigLIP text prompts, no training"
        ),
    )
    prompts: tuple[str, ...] = Field(
        NOTE_PROMPTS, min_length=1, description="zero_shot: templates with {} for the class name, averaged"
    )
    embedding_cache: bool = Field(
        True,
        description="read embeddings from the shared cache (false: encode the "
        "images again in the trial, as a baseline)",
    )
    flip_test: bool = Field(False, description="embed each image and its mirror image, summed")
    # -- the head
    class_balance: Literal["none", "weighted_loss", "balanced_sampler"] = Field(
        "none",
        description=(
            "against a dominant class (the note's 'William dominance'): none, cross-entropy weighted by inverse "
            "class frequency, or batches drawn uniformly over classes"
        ),
    )
    epochs: int = Field(30, gt=0, le=10_000, description="passes over the training embeddings")
    batch_size: int = Field(128, gt=0)
    lr: float = Field(1e-2, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0)
    supcon_dim: int = Field(128, gt=0, description="supcon: projection output size")
    supcon_hidden: int = Field(512, gt=0, description="supcon: projection hidden size")
    supcon_temperature: float = Field(0.1, gt=0, le=10)
    supcon_epochs: int = Field(30, gt=0, le=10_000)
    supcon_lr: float = Field(1e-3, gt=0, le=10)
    # -- data: classes of images; the split is stratified per class by data_seed
    data: str = Field(
        "synthfaces",
        description="'synthfaces', an image folder (<class>/<image>) or a person file (.json: class -> image paths)",
    )
    test_data: str | None = Field(
        None, description="test images (same formats, same class names); default: test_fraction of each class of data"
    )
    test_fraction: float = Field(0.3, gt=0, lt=1)
    val_fraction: float = Field(
        0.15,
        ge=0,
        lt=1,
        description="of each class's training images: the split that searches rank on and learned fusion weights fit",
    )
    data_seed: int = Field(0, ge=0, description="seed of synthfaces and of the split")
    resplit: bool = Field(
        True,
        description=(
            "each trial seed draws its own stratified split (from data_seed and seed), the same for every variant "
            "at that seed: seeds then measure how results vary with the choice of training and test images, and "
            "paired tests pair trials that share a split; false: one split (data_seed) for every seed, which "
            "leaves a linear probe, a convex problem, almost nothing for seeds to vary"
        ),
    )
    image_size: int = Field(32, ge=16, le=256, multiple_of=8, description="synthfaces resolution")
    synth_classes: int = Field(40, ge=2, description="synthfaces: identities (classes), never seen by the stand-in")
    synth_images: int = Field(4, ge=2, description="synthfaces: images per class and domain")
    synth_domains: tuple[str, ...] = Field(("visible", "low_quality", "harsh_light"), min_length=1)
    # -- hardware
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    num_workers: int | None = Field(None, ge=0)
    encode_batch: int = Field(64, gt=0, description="images per encoder forward pass")

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            if t.count("{}") != 1:
                raise ValueError(f"prompt template {t!r} must contain {{}} exactly once (where the class name goes)")
            try:
                t.format("x")
            except (IndexError, KeyError, ValueError):
                raise ValueError(f"prompt template {t!r} has braces other than one {{}}") from None
        return v

    @model_validator(mode="after")
    def _heads(self) -> "ProbeConfig":
        if len(set(self.encoders)) != len(self.encoders):
            raise ValueError(f"encoders repeats an encoder: {list(self.encoders)}")
        if self.head == "zero_shot" and len(self.encoders) != 1:
            raise ValueError("head: zero_shot takes exactly one CLIP or SigLIP encoder")
        if self.fusion == "learned_weights" and self.val_fraction == 0:
            raise ValueError("fusion: learned_weights fits its weights on validation images: val_fraction must be > 0")
        if self.data == "synthfaces" and self.test_data is not None:
            raise ValueError("data: synthfaces brings its own test split; test_data cannot be set with it")
        return self

    def synthfaces(self) -> synthfaces.SynthFacesSpec:
        """synthfaces whose ``eval`` group (never seen by the stand-in) gives the classes."""
        return synthfaces.SynthFacesSpec(
            resolution=self.image_size,
            seed=self.data_seed,
            eval_identities=self.synth_classes,
            eval_images=self.synth_images,
            domains=self.synth_domains,
        )


def metric_keys(cfg: ProbeConfig) -> list[str]:
    """Keys of a probe's one report (``loop.run``)."""
    keys = [f"eval/probe/{k}" for k in ("acc", "macro_f1", "pred_cv", "classes", "test_images")]
    keys += ["train/acc", "train/embed_s", "train/head_s", "train/encoded"]
    if cfg.val_fraction > 0:
        keys += [f"val/probe/{k}" for k in ("acc", "macro_f1", "pred_cv")]
    if len(cfg.encoders) > 1 and cfg.fusion != "concat" and cfg.head != "zero_shot":
        keys += [f"train/fusion_weight/{i}" for i in range(len(cfg.encoders))]
    return keys


def iterations(cfg: ProbeConfig) -> int:
    """A probe reports once, whatever its ``epochs`` (passes of its head over the embeddings)."""
    return 1
