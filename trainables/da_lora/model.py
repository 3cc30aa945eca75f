"""The DA-LoRA model: an adapted backbone plus the domain classifier that routes its adapters."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from trainables.models.backbone import Backbone


class DaLoraModel(nn.Module):
    """``images -> embeddings``, with per-sample adapter mixing when the backbone has domain-aware LoRA.

    The domain classifier is a linear layer over backbone features. It routes from the
    features of the *pretrained* backbone (a no-gradient pass with the adapters off), so the
    domain a sample is routed to never depends on the adapters being trained; the main loss
    trains it through the mixture weights. ``domain_logits(z)`` applies it to the adapted
    embedding ``z``: that is where the domain-classifier loss acts, and the only way that
    loss reaches the LoRA weights when there is a single shared adapter.
    """

    def __init__(self, backbone: Backbone, *, num_domains: int, with_classifier: bool) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_domains = num_domains
        self.embed_dim = backbone.embed_dim
        self.classifier = nn.Linear(backbone.embed_dim, num_domains) if with_classifier else None
        self._kept: list[torch.Tensor] | None = None

    @property
    def mixture(self):
        return getattr(self.backbone, "mixture", None)

    @property
    def routes(self) -> bool:
        return self.mixture is not None and self.mixture.num_domains > 1

    def mixture_weights(self, images: torch.Tensor) -> torch.Tensor:
        """(B, K) softmax of the domain classifier on the pretrained backbone's features."""
        with torch.no_grad(), self.mixture.disabled():
            features = self.backbone(images)
        return torch.softmax(self.classifier(features.float()), dim=-1)

    @contextlib.contextmanager
    def keeping_routes(self) -> Iterator[list[torch.Tensor]]:
        """Inside the block, every forward appends the mixture weights it routed its images by
        ((B, K), float32, on the CPU) to the list it yields: what the report draws as routing."""
        kept: list[torch.Tensor] = []
        self._kept = kept
        try:
            yield kept
        finally:
            self._kept = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.routes:
            return self.backbone(images)
        weights = self.mixture_weights(images)
        if self._kept is not None:
            self._kept.append(weights.detach().float().cpu())
        with self.mixture.using(weights):
            return self.backbone(images)

    def domain_logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.classifier(embeddings.float())
