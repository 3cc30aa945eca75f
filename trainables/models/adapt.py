"""How a backbone is adapted: frozen, standard LoRA (peft), domain-aware LoRA, or fully fine-tuned."""

from __future__ import annotations

from typing import Literal

import peft
from torch import nn

from trainables.errors import TrainableInputError
from trainables.models.backbone import Backbone
from trainables.models.domain_lora import Mixture, wrap_linear_layers

Adaptation = Literal["none", "lora", "full"]

#: ``lora_targets: [auto]`` picks the attention projections a backbone has, in this order of
#: preference: separate query and value projections (LoRA's original W_q, W_v; DINOv2 and CLIP
#: in transformers 5 name them ``q_proj`` / ``v_proj``), older ``query`` / ``value``, or a fused
#: ``qkv`` (timm ViTs).
AUTO_TARGETS: tuple[tuple[str, ...], ...] = (("q_proj", "v_proj"), ("query", "value"), ("qkv",))


class AdaptationError(TrainableInputError):
    """Adapter settings that do not fit the backbone (e.g. targets matching no module)."""


def linear_module_names(module: nn.Module) -> list[str]:
    """Names of every ``nn.Linear`` in a module: where LoRA targets can point."""
    return [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]


def matching_targets(module: nn.Module, targets: tuple[str, ...]) -> dict[str, list[str]]:
    """For each target suffix, the linear layers it names (peft's suffix matching)."""
    names = linear_module_names(module)
    return {t: [n for n in names if n == t or n.endswith("." + t)] for t in targets}


def resolve_targets(module: nn.Module, targets: tuple[str, ...]) -> tuple[str, ...]:
    """The target suffixes for ``module``: ``("auto",)`` resolved from its modules, others checked."""
    if tuple(targets) == ("auto",):
        for candidate in AUTO_TARGETS:
            if all(matching_targets(module, candidate).values()):
                return candidate
        raise AdaptationError(
            f"lora_targets: auto found no attention projection ({AUTO_TARGETS}); "
            f"name the layers, e.g. from {_suffixes(module)}"
        )
    unmatched = [t for t, hits in matching_targets(module, tuple(targets)).items() if not hits]
    if unmatched:
        raise AdaptationError(
            f"lora_targets {unmatched} match no linear layer; this backbone has e.g. {_suffixes(module)}"
        )
    return tuple(targets)


def _suffixes(module: nn.Module) -> list[str]:
    return sorted({n.rsplit(".", 1)[-1] for n in linear_module_names(module)})


def adapt(
    backbone: Backbone,
    *,
    mode: Adaptation,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    lora_dropout: float = 0.0,
    lora_targets: tuple[str, ...] = ("auto",),
    domain_lora: bool = False,
    num_domains: int = 1,
) -> Backbone:
    """Set which parameters train.

    ``mode='lora'`` wraps the encoder with peft LoRA, or, with ``domain_lora``, replaces each
    targeted linear layer by a ``DomainLoraLinear`` with ``num_domains`` adapters whose
    mixture weights live in ``backbone.mixture``.
    """
    backbone.mixture = None
    if mode == "none":
        backbone.requires_grad_(False)
        return backbone
    if mode == "full":
        backbone.requires_grad_(True)
        return backbone
    targets = resolve_targets(backbone.encoder, tuple(lora_targets))
    if domain_lora:
        backbone.requires_grad_(False)
        names = sorted({n for hits in matching_targets(backbone.encoder, targets).values() for n in hits})
        backbone.mixture = Mixture(num_domains)
        wrap_linear_layers(
            backbone.encoder, names, mixture=backbone.mixture, rank=lora_rank, alpha=lora_alpha, dropout=lora_dropout
        )
        return backbone
    config = peft.LoraConfig(
        r=lora_rank, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=list(targets), bias="none"
    )
    backbone.encoder = peft.get_peft_model(backbone.encoder, config)
    return backbone


def trainable_parameters(module: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in module.named_parameters() if p.requires_grad}


def lora_parameter_names(module: nn.Module) -> list[str]:
    """Names of the LoRA parameters (peft's ``lora_A``/``lora_B`` or the domain-aware ones)."""
    return [n for n, _ in module.named_parameters() if "lora_A" in n or "lora_B" in n]
