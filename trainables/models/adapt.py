"""How a backbone is adapted: frozen, standard LoRA through peft, or fully fine-tuned."""

from __future__ import annotations

from typing import Literal

import peft
from torch import nn

from trainables.errors import TrainableInputError
from trainables.models.backbone import Backbone

Adaptation = Literal["none", "lora", "full"]


class AdaptationError(TrainableInputError):
    """Adapter settings that do not fit the backbone (e.g. targets matching no module)."""


def linear_module_names(module: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` in a module: where LoRA targets can point."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]


def matching_targets(module: nn.Module, targets: tuple[str, ...]) -> dict[str, list[str]]:
    """For each target suffix, the linear layers it names (peft's suffix matching)."""
    names = linear_module_names(module)
    return {t: [n for n in names if n == t or n.endswith("." + t)] for t in targets}


def adapt(backbone: Backbone, *, mode: Adaptation, lora_rank: int = 8, lora_alpha: float = 16.0,
          lora_dropout: float = 0.0, lora_targets: tuple[str, ...] = ("qkv",)) -> Backbone:
    """Set which parameters train, wrapping the encoder with peft LoRA when ``mode='lora'``."""
    if mode == "none":
        backbone.requires_grad_(False)
        return backbone
    if mode == "full":
        backbone.requires_grad_(True)
        return backbone
    unmatched = [t for t, hits in matching_targets(backbone.encoder, lora_targets).items() if not hits]
    if unmatched:
        raise AdaptationError(
            f"lora_targets {unmatched} match no linear layer; this backbone has e.g. "
            f"{sorted({n.rsplit('.', 1)[-1] for n in linear_module_names(backbone.encoder)})}")
    config = peft.LoraConfig(r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                             target_modules=list(lora_targets), bias="none")
    backbone.encoder = peft.get_peft_model(backbone.encoder, config)
    return backbone


def trainable_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}
