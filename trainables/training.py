"""Ray-free training helpers shared by the trainables and the stand-in backbone, among them
the one epoch / checkpoint / resume loop every trainable that trains by epochs runs (``fit``)."""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from reports.rundir.evaluation import EVAL_FILE, write_evaluation
from trainables.checkpointing import load_state, restore_rng, rng_state, save_state, scratch_dir
from trainables.errors import TrialDiverged
from trainables.evaluation.artifacts import recording
from trainables.protocol import Reporter


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
    """Each image mirrored (left-right) with probability 1/2, drawn from ``generator``; a new tensor."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    if images.device.type == "cpu" and not images.requires_grad:
        # numpy's copy through a negative stride is about 4x faster than torch's flip of a CPU
        # tensor (uint8 images: 3 ms against 11 ms for 64 at 224 px); the same values
        out = images.numpy().copy()
        rows = flip.numpy()
        out[rows] = out[rows][..., ::-1]
        return torch.from_numpy(out)
    flip = flip.to(images.device)
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


@dataclass(frozen=True)
class EpochLoss:
    """What one epoch of steps leaves: the mean loss, the mean of each loss term, the samples seen."""

    mean: float
    parts: dict[str, float]
    seen: int


def train_epoch(
    losses: Iterable[tuple[int, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    *,
    parts: Callable[[], Mapping[str, torch.Tensor | float]] | None = None,
    max_grad_norm: float = 5.0,
) -> EpochLoss:
    """One epoch of optimisation steps, the one step loop of every trainable: each
    ``(batch size, loss)`` that ``losses`` yields (computed lazily, one batch at a time) is
    back-propagated, its gradients clipped, optimizer and schedule stepped; the means are
    weighted by batch size, ``parts()`` naming the loss terms of the step just taken.
    Raises TrialDiverged on a NaN/inf loss (the trial then ends as DIVERGED)."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total, count, sums = 0.0, 0, dict[str, float]()
    for n, loss in losses:
        step(loss, optimizer, scheduler, params, max_grad_norm)
        total += loss.item() * n
        count += n
        for k, v in (parts() if parts is not None else {}).items():
            sums[k] = sums.get(k, 0.0) + float(v) * n
    return EpochLoss(total / max(count, 1), {k: v / max(count, 1) for k, v in sums.items()}, count)


def image_losses(
    *,
    embed: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] = random_flip,
) -> Iterator[tuple[int, torch.Tensor]]:
    """The losses of one shuffled pass over in-memory ``images`` (or any per-sample inputs
    ``augment`` understands), for ``train_epoch``; the model in training mode."""
    embed.train()
    for idx in batches(len(labels), batch_size, generator):
        x = augment(images[idx], generator)
        yield len(idx), loss_fn(embed(x), labels[idx])


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
        batch: list[int] = []
        skipped: list[int] = []
        seen: set = set()
        while queue and len(batch) < per_batch:
            g = queue.popleft()
            (skipped if owner[g] in seen else batch).append(g)
            seen.add(owner[g])
        queue.extendleft(reversed(skipped))
        out.append(np.concatenate([groups[g] for g in batch]))
    full = [b for b in out if len(b) >= batch_size // 2]
    return full or out[:1]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The entries of ``model.state_dict()`` that train (LoRA, a head...): what a checkpoint
    keeps of a model whose frozen backbone is loaded again from its reference."""
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v for k, v in model.state_dict().items() if k in names}


def fit(
    *,
    model: nn.Module,
    params: list[torch.Tensor],
    lr: float,
    weight_decay: float,
    warmup_epochs: float,
    epochs: int,
    eval_every: int,
    steps_per_epoch: int,
    epoch: Callable[[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.Generator], dict[str, float]],
    evaluate: Callable[[], dict[str, float]],
    generator: torch.Generator,
    report: Reporter,
    restore_from: Path | None,
    modules: Mapping[str, nn.Module] | None = None,
    before_training: Callable[[], None] | None = None,
    save_embeddings: bool = False,
) -> None:
    """The epoch loop of every trainable that trains by epochs.

    AdamW over ``params`` with a linear warm-up and cosine decay per step; ``before_training()``
    once, on a fresh start only (e.g. a MAML initialisation: a resumed trial has it in its
    checkpoint); then ``epoch(optimizer, scheduler, generator)`` per epoch, ``evaluate()``
    every ``eval_every`` epochs and after the last, and one ``report(metrics, checkpoint)``
    per epoch. A checkpoint holds the model's trainable state, every module in ``modules``
    (e.g. a loss with weights of its own), the optimizer, the schedule, the data-order
    generator and the epoch, so that a trial resumed from any of them (``restore_from``)
    goes on exactly as the uninterrupted one would have. Each report carries
    ``train/epoch_s`` and ``train/epochs`` besides what ``epoch`` returns. What an evaluation
    computed (pair scores, probe ranks; the embeddings with ``save_embeddings``) goes into the
    checkpoint of its epoch as ``evaluation.npz`` (``reports.rundir.evaluation``).
    """
    modules = dict(modules or {})
    if restore_from is None and before_training is not None:
        before_training()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = warmup_cosine(
        optimizer, warmup_steps=math.floor(warmup_epochs * steps_per_epoch), total_steps=epochs * steps_per_epoch
    )
    start = 0
    if restore_from is not None:
        state = load_state(restore_from)
        model.load_state_dict(state["model"], strict=False)
        for name, module in modules.items():
            module.load_state_dict(state[name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        start = int(state["epoch"])
    for e in range(start, epochs):
        t0 = time.perf_counter()
        metrics = epoch(optimizer, scheduler, generator)
        metrics["train/epoch_s"] = time.perf_counter() - t0
        metrics["train/epochs"] = float(e + 1)
        evaluation = None
        if (e + 1) % eval_every == 0 or e + 1 == epochs:
            with recording(e + 1, embeddings=save_embeddings) as evaluation:
                metrics.update(evaluate())
        state = {
            "model": trainable_state(model),
            **{name: module.state_dict() for name, module in modules.items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(generator),
            "epoch": e + 1,
        }
        with scratch_dir("checkpoint") as d:
            save_state(d, state)
            if evaluation:
                write_evaluation(Path(d) / EVAL_FILE, evaluation)
            report(metrics, Path(d))


__all__ = [
    "batches",
    "dense_labels",
    "EpochLoss",
    "embed_all",
    "fit",
    "identity_batches",
    "image_losses",
    "random_flip",
    "random_view",
    "seed_everything",
    "step",
    "steps_per_epoch",
    "train_epoch",
    "trainable_state",
    "warmup_cosine",
]
