"""Heads on frozen embeddings: a multinomial logistic regression, a SupCon projection
followed by one, late fusion of several encoders' logits (averaged, or weighted by weights
fitted on validation images), and zero-shot logits from text prompts. Free of Ray.

Features enter a head L2-normalised per encoder, then standardised with the training
images' mean and standard deviation (so one learning rate suits encoders whose
embeddings differ in scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainables.probe.config import ProbeConfig


@dataclass
class Scaler:
    """L2 normalisation, then standardisation with the training rows' statistics."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> "Scaler":
        z = nn.functional.normalize(x, dim=1)
        return cls(z.mean(0), z.std(0).clamp_min(1e-6))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (nn.functional.normalize(x, dim=1) - self.mean) / self.std


def _sampler(labels: torch.Tensor, n_classes: int, cfg: ProbeConfig, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch of index batches: a permutation, or (balanced_sampler) as many draws with
    replacement, each class equally likely."""
    n = len(labels)
    if cfg.class_balance == "balanced_sampler":
        counts = torch.bincount(labels, minlength=n_classes).float()
        weights = (1.0 / counts.clamp_min(1))[labels]
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, generator=gen)
    return list(order.split(cfg.batch_size))


def class_weights(labels: torch.Tensor, n_classes: int, cfg: ProbeConfig) -> torch.Tensor | None:
    """Inverse class frequency, mean 1 over the classes present (weighted_loss), else None."""
    if cfg.class_balance != "weighted_loss":
        return None
    counts = torch.bincount(labels, minlength=n_classes).float()
    w = torch.where(counts > 0, 1.0 / counts.clamp_min(1), torch.zeros_like(counts))
    return w * (counts > 0).sum() / w.sum()


def train_linear(x: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: ProbeConfig, gen: torch.Generator) -> nn.Linear:
    """Multinomial logistic regression: AdamW on cross-entropy, ``cfg.epochs`` passes."""
    head = nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        nn.init.normal_(head.weight, std=0.01, generator=gen)
        head.bias.zero_()
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(y, n_classes, cfg))
    for _ in range(cfg.epochs):
        for idx in _sampler(y, n_classes, cfg, gen):
            loss = loss_fn(head(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return head.eval()


def train_supcon(x: torch.Tensor, y: torch.Tensor, cfg: ProbeConfig, gen: torch.Generator) -> nn.Module:
    """A projection (Linear-ReLU-Linear, output L2-normalised) trained with
    pytorch-metric-learning's SupConLoss on P x K batches of the training embeddings."""
    from pytorch_metric_learning.losses import SupConLoss

    from trainables.training import identity_batches

    proj = nn.Sequential(
        nn.Linear(x.shape[1], cfg.supcon_hidden), nn.ReLU(), nn.Linear(cfg.supcon_hidden, cfg.supcon_dim)
    )
    with torch.no_grad():
        for m in proj:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=5**0.5, generator=gen)
                m.bias.zero_()
    opt = torch.optim.AdamW(proj.parameters(), lr=cfg.supcon_lr, weight_decay=cfg.weight_decay)
    loss_fn = SupConLoss(temperature=cfg.supcon_temperature)
    labels = y.numpy()
    per = int(min(4, max(2, np.bincount(labels).max())))
    batch = max(per * 2, cfg.batch_size // per * per)
    for _ in range(cfg.supcon_epochs):
        for idx in identity_batches(labels, batch_size=batch, per_identity=per, generator=gen):
            idx = torch.as_tensor(idx)
            loss = loss_fn(nn.functional.normalize(proj(x[idx]), dim=1), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return _Normalised(proj.eval())


class _Normalised(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.inner(x), dim=1)


@dataclass
class Probe:
    """One trained head on one feature space: ``logits(x)`` for raw embeddings ``x``."""

    scaler: Scaler
    head: nn.Linear
    projection: nn.Module | None = None
    proj_scaler: Scaler | None = None

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        z = self.scaler(x)
        if self.projection is not None:
            z = self.proj_scaler(self.projection(z))
        return self.head(z)

    def state(self) -> dict[str, torch.Tensor]:
        out = {
            "scaler.mean": self.scaler.mean,
            "scaler.std": self.scaler.std,
            **{f"head.{k}": v for k, v in self.head.state_dict().items()},
        }
        if self.projection is not None:
            out.update({f"projection.{k}": v for k, v in self.projection.state_dict().items()})
        return out


def fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: ProbeConfig, gen: torch.Generator) -> Probe:
    """A linear probe, or (head: supcon) a SupCon projection and a linear probe on it."""
    scaler = Scaler.fit(x)
    z = scaler(x)
    if cfg.head == "supcon":
        projection = train_supcon(z, y, cfg, gen)
        with torch.no_grad():
            p = projection(z)
        proj_scaler = Scaler.fit(p)
        return Probe(scaler, train_linear(proj_scaler(p), y, n_classes, cfg, gen), projection, proj_scaler)
    return Probe(scaler, train_linear(z, y, n_classes, cfg, gen))


def fusion_weights(val_logits: list[torch.Tensor], y_val: torch.Tensor, *, steps: int = 300) -> torch.Tensor:
    """Convex weights (softmax of free parameters, starting equal) of several heads' logits
    that minimise cross-entropy on the validation images: the note's learned weighting,
    fitted where the heads did not train, so that an overfitted head does not win."""
    a = torch.zeros(len(val_logits), requires_grad=True)
    stack = torch.stack(val_logits)  # (E, N, C)
    opt = torch.optim.Adam([a], lr=0.05)
    for _ in range(steps):
        w = torch.softmax(a, 0)
        loss = nn.functional.cross_entropy((w[:, None, None] * stack).sum(0), y_val)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return torch.softmax(a.detach(), 0)


def zero_shot_logits(image_features: np.ndarray, class_features: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image with each class's prompt-averaged text embedding."""
    img = image_features / np.linalg.norm(image_features, axis=1, keepdims=True).clip(1e-12)
    return img @ class_features.T


__all__ = [
    "Probe",
    "Scaler",
    "class_weights",
    "fit_probe",
    "fusion_weights",
    "train_linear",
    "train_supcon",
    "zero_shot_logits",
]
