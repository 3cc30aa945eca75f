"""Ray-free training helpers shared by the trainables and the stand-in backbone."""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterator

import numpy as np
import torch
from torch import nn

from trainables.errors import TrialDiverged


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy for this process; returns a generator for data order."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    return torch.Generator().manual_seed(seed)


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up to the base learning rate, then cosine decay to zero (per step)."""
    warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps - warmup_steps, 1))
    if warmup_steps == 0:
        return cosine
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup_steps + 1), total_iters=warmup_steps)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, cosine], milestones=[warmup_steps])


def batches(n: int, batch_size: int, generator: torch.Generator, *, drop_last: bool = True) -> Iterator[torch.Tensor]:
    """Shuffled index batches over ``range(n)``."""
    order = torch.randperm(n, generator=generator)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(n // batch_size, 1) if n >= batch_size else 1


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def random_view(views: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(B, 2, D) precomputed features of (image, flipped image) -> (B, D), one view each,
    drawn exactly as ``random_flip`` draws its flips."""
    flip = (torch.rand(views.shape[0], generator=generator) < 0.5).to(views.device)
    return views[torch.arange(views.shape[0], device=views.device), flip.long()]


def step(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    params: list[torch.Tensor],
    max_grad_norm: float = 5.0,
) -> None:
    """One optimisation step on ``loss``: raises TrialDiverged when it is NaN or infinite,
    else back-propagates, clips the gradient norm of ``params``, steps optimizer and schedule."""
    if not torch.isfinite(loss):
        raise TrialDiverged(f"loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    scheduler.step()


def train_epoch(
    *,
    embed: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch_size: int,
    generator: torch.Generator,
    max_grad_norm: float = 5.0,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] = random_flip,
) -> float:
    """One pass over ``images`` (or any per-sample inputs ``augment`` understands); returns
    the mean loss. Raises TrialDiverged on NaN/inf."""
    embed.train()
    total, count = 0.0, 0
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for idx in batches(len(labels), batch_size, generator):
        x = augment(images[idx], generator)
        loss = loss_fn(embed(x), labels[idx])
        step(loss, optimizer, scheduler, params, max_grad_norm)
        total += loss.item() * len(idx)
        count += len(idx)
    return total / max(count, 1)


@torch.no_grad()
def embed_all(
    embed: nn.Module,
    images: torch.Tensor,
    *,
    batch_size: int = 256,
    flip: bool = False,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """L2-normalised embeddings of all images, in order, in eval mode, on the CPU.

    ``flip``: the flip test of the standard protocol (insightface, ArcFace): each image's
    embedding is the sum of those of the image and of its mirror image, then normalised.
    """
    was_training = embed.training
    embed.eval()
    device = torch.device(device) if device is not None else next(embed.parameters(), torch.empty(0)).device
    out = []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            e = embed(x).float()
            if flip:
                e = e + embed(x.flip(-1)).float()
        out.append(nn.functional.normalize(e, dim=1).cpu())
    embed.train(was_training)
    return torch.cat(out)


def dense_labels(identity: np.ndarray) -> torch.Tensor:
    """Identity ids mapped to 0..C-1 (the class indices a margin head needs)."""
    _, dense = np.unique(identity, return_inverse=True)
    return torch.as_tensor(dense, dtype=torch.long)


def identity_batches(
    labels: np.ndarray, *, batch_size: int, per_identity: int, generator: torch.Generator
) -> list[np.ndarray]:
    """One epoch of batches, each of ``batch_size / per_identity`` identities x ``per_identity`` images.

    Every image is used once per epoch (an identity's images are dealt into groups of
    ``per_identity``, a smaller last group kept only when it is the identity's only one),
    so the contrastive loss always has positives, across domains, in every batch. Written
    here because pytorch-metric-learning's ``MPerClassSampler`` draws from numpy's global
    state and samples with replacement; a trial's data order must follow its own generator.
    """
    groups, owner = [], []
    for ident in np.unique(labels):
        rows = np.flatnonzero(labels == ident)
        rows = rows[torch.randperm(len(rows), generator=generator).numpy()]
        chunks = [rows[i : i + per_identity] for i in range(0, len(rows), per_identity)]
        if len(chunks) > 1 and len(chunks[-1]) < per_identity:
            chunks = chunks[:-1]
        groups.extend(chunks)
        owner.extend([ident] * len(chunks))
    queue = deque(torch.randperm(len(groups), generator=generator).tolist())
    per_batch = batch_size // per_identity
    out = []
    while queue:  # fill each batch with groups of distinct identities, deferring repeats to the next
        batch, seen, skipped = [], set(), []
        while queue and len(batch) < per_batch:
            g = queue.popleft()
            (skipped if owner[g] in seen else batch).append(g)
            seen.add(owner[g])
        queue.extendleft(reversed(skipped))
        out.append(np.concatenate([groups[g] for g in batch]))
    full = [b for b in out if len(b) >= batch_size // 2]
    return full or out[:1]


__all__ = [
    "batches",
    "dense_labels",
    "embed_all",
    "identity_batches",
    "random_flip",
    "random_view",
    "seed_everything",
    "step",
    "steps_per_epoch",
    "train_epoch",
    "warmup_cosine",
]
