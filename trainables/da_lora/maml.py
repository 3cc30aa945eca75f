"""MAML initialisation of the LoRA weights (Finn et al., 2017), one task per domain.

learn2learn does not build on Python 3.11, and higher is unmaintained; ``torch.func``'s
``functional_call`` gives what MAML needs (a forward pass with substituted parameters),
so the loop is written here. Only LoRA parameters are meta-learned: the backbone, the
margin head and the domain classifier keep their values.

One meta step: draw a task (the next domain in turn; a support and a query batch of that
domain's training images), take ``inner_steps`` SGD steps on the support loss from the
current LoRA weights, evaluate the query loss with the adapted weights, and update the
LoRA weights with its gradient (second order unless ``first_order``). With domain-aware
LoRA the task's samples are routed to their domain's adapter (one-hot mixture), so each
domain's adapter is meta-learned on its own domain.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable

import numpy as np
import torch
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from trainables.da_lora.model import DaLoraModel
from trainables.errors import TrialDiverged
from trainables.models.adapt import lora_parameter_names


def maml_initialise(
    model: DaLoraModel,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    fetch: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
    *,
    domain: np.ndarray,
    groups: np.ndarray,
    inner_steps: int,
    inner_lr: float,
    meta_steps: int,
    outer_lr: float,
    batch_size: int,
    first_order: bool,
    generator: torch.Generator,
) -> list[float]:
    """Meta-learn the LoRA weights of ``model.backbone`` in place; returns the query losses.

    ``fetch(indices) -> (images, labels)`` reads training samples; ``domain`` and ``groups``
    give each sample's data domain and its adapter group. Does nothing for ``inner_steps=0``.
    """
    if inner_steps == 0:
        return []
    backbone = model.backbone
    params = dict(backbone.named_parameters())
    meta = {n: params[n] for n in lora_parameter_names(backbone)}
    optimizer = torch.optim.Adam(meta.values(), lr=outer_lr)
    held = [p for p in getattr(loss_fn, "parameters", lambda: [])() if p.requires_grad]
    domains = np.unique(domain)
    losses: list[float] = []

    def task_loss(weights: dict[str, torch.Tensor], idx: np.ndarray, route: torch.Tensor | None) -> torch.Tensor:
        x, y = fetch(idx)
        if route is None:
            return loss_fn(functional_call(backbone, weights, (x,), strict=False), y)
        with model.mixture.using(route.to(x.device).expand(len(x), -1)):
            return loss_fn(functional_call(backbone, weights, (x,), strict=False), y)

    # The fused attention kernels have no double backward; second-order MAML needs the math one.
    kernel = nullcontext() if first_order else sdpa_kernel(SDPBackend.MATH)
    for p in held:  # the margin head keeps its weights during meta-learning
        p.requires_grad_(False)
    try:
        with kernel:
            backbone.train()
            for step in range(meta_steps):
                rows = np.flatnonzero(domain == domains[step % len(domains)])
                pick = torch.randperm(len(rows), generator=generator)[: 2 * batch_size].numpy()
                support, query = rows[pick[: len(pick) // 2]], rows[pick[len(pick) // 2 :]]
                route = None
                if model.routes:  # the task's samples go to their domain's adapter
                    route = torch.nn.functional.one_hot(torch.as_tensor(groups[rows[0]]), model.num_domains).float()
                fast = dict(meta)
                for _ in range(inner_steps):
                    grads = torch.autograd.grad(
                        task_loss(fast, support, route), list(fast.values()), create_graph=not first_order
                    )
                    fast = {
                        n: w - inner_lr * (g.detach() if first_order else g) for (n, w), g in zip(fast.items(), grads)
                    }
                query_loss = task_loss(fast, query, route)
                if not torch.isfinite(query_loss):
                    raise TrialDiverged(f"MAML query loss is {query_loss.item()}")
                optimizer.zero_grad(set_to_none=True)
                query_loss.backward()
                optimizer.step()
                losses.append(query_loss.item())
    finally:
        for p in held:
            p.requires_grad_(True)
        for p in meta.values():
            p.grad = None
    return losses
