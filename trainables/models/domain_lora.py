"""Domain-aware LoRA: K low-rank adapters per linear layer, mixed per sample.

    y = W0 x + sum_k w_k(x) * (alpha / r) * B_k A_k x

where ``w(x)`` is the softmax output of a domain classifier (see ``DaLoraModel`` in
``trainables/da_lora/model.py``). peft has LoRA and switches between named adapters, but
it has no per-sample soft mixture of adapters, so this layer is written here; standard
LoRA (one shared adapter) stays on peft. With K = 1 this layer computes exactly what a
peft ``LoraLayer`` computes for the same ``A``, ``B``, ``alpha`` and ``r`` (a test checks).

The K adapters are evaluated as one rank-(K r) adapter: ``A`` stacked to (K r, in),
``B`` to (out, K r), and the mixture weights scale the K r intermediate features, so a
forward pass costs two matrix products whatever K is.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn


class Mixture:
    """Per-sample mixture weights shared by every domain-aware layer of one model.

    ``weights`` is (B, K) or None (None: every adapter weighs 1, the K = 1 case);
    ``enabled`` False turns all adapters off (the pretrained model).
    """

    def __init__(self, num_domains: int) -> None:
        self.num_domains = num_domains
        self.weights: torch.Tensor | None = None
        self.enabled = True

    @contextmanager
    def disabled(self) -> Iterator[None]:
        before, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = before

    @contextmanager
    def using(self, weights: torch.Tensor | None) -> Iterator[None]:
        if weights is not None and weights.shape[-1] != self.num_domains:
            raise ValueError(f"mixture weights have {weights.shape[-1]} columns for {self.num_domains} domains")
        before, self.weights = self.weights, weights
        try:
            yield
        finally:
            self.weights = before


class DomainLoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus K LoRA adapters mixed by ``mixture.weights``."""

    def __init__(self, base: nn.Linear, *, mixture: Mixture, rank: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        k = mixture.num_domains
        self.mixture = mixture
        self.rank = rank
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        dev, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(k, rank, base.in_features, device=dev, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(k, base.out_features, rank, device=dev, dtype=dtype))
        for a in self.lora_A:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # as peft and loralib initialise A; B starts at 0

    @property
    def num_domains(self) -> int:
        return self.lora_A.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if not self.mixture.enabled:
            return y
        k, r = self.num_domains, self.rank
        a = self.lora_A.reshape(k * r, -1)
        b = self.lora_B.permute(1, 0, 2).reshape(self.base.out_features, k * r)
        h = self.dropout(x).to(a.dtype) @ a.T  # (..., K r)
        w = self.mixture.weights
        if w is not None:
            # (B, K) -> (B, 1, ..., 1, K r): one weight per sample and adapter, shared by its r features.
            w = w.to(h.dtype).repeat_interleave(r, dim=-1)
            h = h * w.view(w.shape[0], *([1] * (h.dim() - 2)), k * r)
        return y + (h @ b.T).to(y.dtype) * self.scaling

    def extra_repr(self) -> str:
        return f"domains={self.num_domains}, rank={self.rank}, scaling={self.scaling:g}"


def wrap_linear_layers(
    module: nn.Module, names: list[str], *, mixture: Mixture, rank: int, alpha: float, dropout: float
) -> dict[str, DomainLoraLinear]:
    """Replace each named ``nn.Linear`` of ``module`` by a ``DomainLoraLinear`` around it."""
    wrapped = {}
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        base = getattr(parent, child)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"{name} is a {type(base).__name__}, not nn.Linear")
        layer = DomainLoraLinear(base, mixture=mixture, rank=rank, alpha=alpha, dropout=dropout)
        setattr(parent, child, layer)
        wrapped[name] = layer
    return wrapped
