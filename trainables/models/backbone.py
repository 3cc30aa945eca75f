"""Backbones: load an image encoder from a reference and wrap it as ``images -> embeddings``.

References understood here:

* ``standin``: the synthfaces stand-in ViT, built on first use and cached (see ``standin.py``);
* ``timm:<dir>`` or a plain directory holding a timm ``config.json`` and weights (as written
  by ``timm.models.save_for_hf`` or downloaded from the Hugging Face hub), loaded with
  ``timm.create_model("local-dir:<dir>", pretrained=True)``.

The stand-in goes through exactly the second path once it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn

from trainables.errors import TrainableInputError


class BackboneError(TrainableInputError):
    """A backbone reference that cannot be loaded (missing directory, weights, config)."""


@dataclass(frozen=True)
class InputSpec:
    """What a backbone expects: image side and per-channel normalisation."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Backbone(nn.Module):
    """An encoder with its input specification; ``forward`` maps uint8 images to features."""

    def __init__(self, encoder: nn.Module, input_spec: InputSpec, embed_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_spec = input_spec
        self.embed_dim = embed_dim
        self.register_buffer("_mean", torch.tensor(input_spec.mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("_std", torch.tensor(input_spec.std).view(1, 3, 1, 1) * 255.0, persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) to the encoder's float input, resized when sizes differ."""
        x = (images.float() - self._mean) / self._std
        if x.shape[-1] != self.input_spec.size:
            x = nn.functional.interpolate(x, size=self.input_spec.size, mode="bilinear", align_corners=False)
        return x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.normalise(images))


def load_timm_dir(directory: Path) -> Backbone:
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise BackboneError(f"backbone directory {directory} has no config.json")
    if not any((directory / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise BackboneError(f"backbone directory {directory} has no weights (model.safetensors or pytorch_model.bin)")
    encoder = timm.create_model(f"local-dir:{directory}", pretrained=True, num_classes=0)
    cfg = encoder.pretrained_cfg
    spec = InputSpec(size=int(cfg["input_size"][-1]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    return Backbone(encoder, spec, int(encoder.num_features))


def resolve(reference: str) -> Path:
    """The local directory a backbone reference names (building the stand-in if needed)."""
    if reference == "standin":
        from trainables.models.standin import StandinSpec, ensure_standin

        return ensure_standin(StandinSpec())
    path = Path(reference.removeprefix("timm:")).expanduser()
    if not path.is_dir():
        raise BackboneError(f"backbone {reference!r}: no such directory {path}")
    return path


def load_backbone(reference: str) -> Backbone:
    """Load the backbone a reference names (see the module docstring)."""
    return load_timm_dir(resolve(reference))
