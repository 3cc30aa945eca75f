"""The stand-in "pretrained" backbone: a small timm ViT pre-trained on synthfaces.

No pretrained face model can be downloaded on the project's machines, so every study
starts from this one by default. It is trained with a CosFace margin loss on the
``pretrain`` identities in the source domain only, saved with ``timm.models.save_for_hf``
into a directory keyed by its settings, and loaded back through the same path as any
timm checkpoint directory (``backbone.load_timm_dir``). Building takes about a minute on
two CPU cores and happens once per cache directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from filelock import FileLock

from trainables.data import synthfaces
from trainables.training import dense_labels, image_losses, seed_everything, train_epoch, warmup_cosine

#: Bump when the recipe changes so that old builds are not reused.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class StandinSpec:
    """Architecture and pre-training recipe of the stand-in (all part of its cache key)."""

    architecture: str = "vit_tiny_patch16_224"
    """timm entry point; the fields below override its width, depth and patch size."""
    embed_dim: int = 128
    depth: int = 4
    num_heads: int = 4
    patch_size: int = 8
    epochs: int = 16
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    cosface_scale: float = 30.0
    cosface_margin: float = 0.25
    seed: int = 0
    data: synthfaces.SynthFacesSpec = field(default_factory=synthfaces.SynthFacesSpec)

    def key(self) -> str:
        payload = json.dumps({"v": RECIPE_VERSION, **dataclasses.asdict(self)}, sort_keys=True, default=list)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def model_args(self) -> dict:
        return {
            "img_size": self.data.resolution,
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "num_classes": 0,
        }


def standin_dir(spec: StandinSpec, cache_dir: Path | None = None) -> Path:
    return Path(cache_dir or synthfaces.default_cache_dir()) / "backbones" / f"standin-{spec.key()}"


def ensure_standin(spec: StandinSpec, cache_dir: Path | None = None, *, log=print) -> Path:
    """The directory of the built stand-in, building it first when absent (file-locked)."""
    target = standin_dir(spec, cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
            return target
        log(f"building the stand-in backbone (once per cache, ~1 min on 2 CPUs) into {target}")
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model = pretrain(spec)
        import timm  # timm and pytorch-metric-learning only to build: a cached stand-in needs neither

        timm.models.save_for_hf(
            model,
            str(tmp),
            model_args=spec.model_args(),
            safe_serialization=True,
            data_config={
                "mean": (0.5, 0.5, 0.5),
                "std": (0.5, 0.5, 0.5),
                "input_size": (3, spec.data.resolution, spec.data.resolution),
            },
        )
        (tmp / "standin.json").write_text(json.dumps(dataclasses.asdict(spec), indent=2, default=list))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target


def pretrain(spec: StandinSpec) -> torch.nn.Module:
    """Train the stand-in on the source domain of the ``pretrain`` identities."""
    generator = seed_everything(spec.seed)
    faces = synthfaces.load(spec.data).group("pretrain")
    images = torch.as_tensor(faces.images)
    labels = dense_labels(faces.identity)
    import timm
    from pytorch_metric_learning.losses import CosFaceLoss

    model = timm.create_model(spec.architecture, pretrained=False, **spec.model_args())
    norm = lambda x: (x.float() / 127.5) - 1.0  # noqa: E731  mean = std = 0.5, as saved in its config
    embed = torch.nn.Sequential(_Lambda(norm), model)
    loss = CosFaceLoss(
        num_classes=int(labels.max()) + 1,
        embedding_size=spec.embed_dim,
        margin=spec.cosface_margin,
        scale=spec.cosface_scale,
    )
    params = list(model.parameters()) + list(loss.parameters())
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    steps = spec.epochs * (len(labels) // spec.batch_size)
    scheduler = warmup_cosine(optimizer, warmup_steps=steps // 10, total_steps=steps)
    for _ in range(spec.epochs):
        train_epoch(
            image_losses(
                embed=embed,
                loss_fn=loss,
                images=images,
                labels=labels,
                batch_size=spec.batch_size,
                generator=generator,
            ),
            optimizer,
            scheduler,
        )
    return model.eval()


class _Lambda(torch.nn.Module):
    def __init__(self, fn) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)
