"""Training and evaluation of ``da_lora``, free of Ray: usable from tests and scripts."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from pytorch_metric_learning.losses import CosFaceLoss

from trainables.checkpointing import load_state, restore_rng, rng_state, save_state
from trainables.da_lora.config import DaLoraConfig
from trainables.data import synthfaces
from trainables.evaluation.synthfaces_eval import SynthfacesVerification
from trainables.models.adapt import adapt, trainable_parameters
from trainables.models.backbone import load_backbone
from trainables.models.standin import StandinSpec, ensure_standin
from trainables.training import (
    dense_labels, embed_all, random_flip, random_view, seed_everything, steps_per_epoch, train_epoch, warmup_cosine,
)

#: ``report(metrics, checkpoint_dir)``: called once per epoch; the directory is gone after the call.
Reporter = Callable[[dict[str, float], Path], None]


def backbone_reference(cfg: DaLoraConfig) -> str:
    """The backbone directory for ``cfg`` (the stand-in is built for the config's data)."""
    if cfg.backbone == "standin":
        return str(ensure_standin(StandinSpec(data=cfg.synthfaces())))
    return cfg.backbone


def prepare(cfg: DaLoraConfig, out_dir: Path) -> dict[str, str]:
    """Build the data and the backbone every trial shares, save a grid of sample images
    into ``out_dir``, and return the data's provenance."""
    faces = synthfaces.load(cfg.synthfaces())
    synthfaces.save_sample_grid(faces, Path(out_dir) / synthfaces.SAMPLES_FILE)
    build_model(cfg)  # a backbone or LoRA targets that cannot work fail here, before any trial
    return {"data_fingerprint": faces.fingerprint}


def build_model(cfg: DaLoraConfig) -> torch.nn.Module:
    return adapt(load_backbone(backbone_reference(cfg)), mode=cfg.adaptation, lora_rank=cfg.lora_rank,
                 lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, lora_targets=cfg.lora_targets)


@torch.no_grad()
def imprint(head: CosFaceLoss, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Start each class weight at its class's mean embedding ("weight imprinting").

    A random margin head drags a pretrained backbone off its features during the first
    steps; imprinted weights make the first gradients already about the new data.
    """
    emb = embed_all(model, images)
    means = torch.zeros(head.W.shape[1], emb.shape[1]).index_add_(0, labels, emb)
    head.W.copy_(torch.nn.functional.normalize(means, dim=1).T)


@torch.no_grad()
def frozen_views(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, 2, D) features of every image and of its mirror image, in eval mode."""
    model.eval()
    views = [torch.stack([model(x), model(x.flip(-1))], dim=1) for x in images.split(batch_size)]
    return torch.cat(views)


def _once(fn):
    cache: dict[str, dict[str, float]] = {}

    def wrapper(model):
        if "value" not in cache:
            cache["value"] = fn(model)
        return cache["value"]

    return wrapper


def run(cfg: DaLoraConfig, report: Reporter, *, restore_from: Path | None = None) -> None:
    """Train for ``cfg.epochs`` epochs, evaluating and reporting after each."""
    generator = seed_everything(cfg.seed)
    faces = synthfaces.load(cfg.synthfaces())
    train = faces.group("train")
    images = torch.as_tensor(train.images)
    labels = dense_labels(train.identity)
    model = build_model(cfg)
    head = CosFaceLoss(num_classes=int(labels.max()) + 1, embedding_size=model.embed_dim,
                       margin=cfg.cosface_margin, scale=cfg.cosface_scale)
    imprint(head, model, images, labels)
    params = list(trainable_parameters(model).values()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_epoch = steps_per_epoch(len(labels), cfg.batch_size)
    scheduler = warmup_cosine(optimizer, warmup_steps=int(cfg.warmup_epochs * per_epoch),
                              total_steps=cfg.epochs * per_epoch)
    evaluate = SynthfacesVerification(faces)
    inputs, embed, augment = images, model, random_flip
    if not trainable_parameters(model):
        # Frozen backbone: its features never change, so compute them (and those of the
        # flipped images) once and train the head on them; evaluation is computed once too.
        inputs, embed, augment = frozen_views(model, images), torch.nn.Identity(), random_view
        evaluate = _once(evaluate)
    start = 0
    if restore_from is not None:
        state = load_state(restore_from)
        model.load_state_dict(state["model"], strict=False)
        head.load_state_dict(state["head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        start = int(state["epoch"])
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        loss = train_epoch(embed=embed, loss_fn=head, images=inputs, labels=labels, optimizer=optimizer,
                           scheduler=scheduler, batch_size=cfg.batch_size, generator=generator, augment=augment)
        train_s = time.perf_counter() - t0
        metrics = {"train/loss": loss, "train/epoch_s": train_s, **evaluate(model)}
        trainable = trainable_parameters(model)
        state = {
            "model": {k: v for k, v in model.state_dict().items() if k in trainable},
            "head": head.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng_state(generator), "epoch": epoch + 1,
        }
        with tempfile.TemporaryDirectory(prefix="da_lora-ckpt-") as d:
            save_state(d, state)
            report(metrics, Path(d))
