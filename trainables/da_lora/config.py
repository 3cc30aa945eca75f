"""Configuration of the ``da_lora`` trainable: one frozen, validated object per trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from trainables.data.synthfaces import SynthFacesSpec


class DaLoraConfig(BaseModel):
    """Every key a ``da_lora`` study may set; unknown keys and out-of-range values are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = Field(0, ge=0, description="seed of initialisation, data order and dropout")
    backbone: str = Field("standin", description="'standin' or a timm checkpoint directory")
    adaptation: Literal["none", "lora", "full"] = Field(
        "lora", description="none: frozen backbone, head only; lora: peft LoRA; full: every weight trains")
    lora_rank: int = Field(8, gt=0, le=1024)
    lora_alpha: float = Field(16.0, gt=0)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_targets: tuple[str, ...] = Field(("qkv",), min_length=1, description="suffixes of linear layer names")
    cosface_scale: float = Field(30.0, gt=0, description="CosFace s")
    cosface_margin: float = Field(0.25, ge=0, lt=1, description="CosFace m (cosine margin)")
    lr: float = Field(1e-3, gt=0, le=1)
    weight_decay: float = Field(0.05, ge=0)
    warmup_epochs: float = Field(0.5, ge=0, description="linear warm-up length, then cosine decay")
    epochs: int = Field(3, gt=0, le=10_000)
    batch_size: int = Field(64, gt=1)
    image_size: int = Field(32, ge=16, le=256, multiple_of=8, description="synthfaces resolution")
    data_seed: int = Field(0, ge=0, description="synthfaces seed (identities and images)")

    def synthfaces(self) -> "SynthFacesSpec":
        from trainables.data.synthfaces import SynthFacesSpec

        return SynthFacesSpec(resolution=self.image_size, seed=self.data_seed)
