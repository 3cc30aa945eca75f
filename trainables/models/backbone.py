"""Backbones: load an image encoder from a reference and wrap it as ``images -> embeddings``.

References understood here:

* ``standin``: the synthfaces stand-in ViT, built on first use and cached (see ``standin.py``);
* ``timm:<dir>`` or a plain directory holding a timm ``config.json`` and weights (as written
  by ``timm.models.save_for_hf`` or downloaded from the Hugging Face hub), loaded with
  ``timm.create_model("local-dir:<dir>", pretrained=True)``;
* ``hf:<dir or repo id>`` or a directory holding a transformers ``config.json`` (with a
  ``model_type``): DINOv2 (``Dinov2Model``) or CLIP (``CLIPVisionModel``; a full CLIP
  checkpoint gives its vision tower). A repo id (``facebook/dinov2-small``) is looked up in
  the Hugging Face cache first; it is downloaded only when the cache lacks it and
  ``HF_HUB_OFFLINE`` is not set. The embedding is the model's ``pooler_output`` (the
  normalised class token); input size and normalisation come from the checkpoint's
  ``preprocessor_config.json`` when there is one.

The stand-in goes through exactly the timm path once it is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    import timm  # here, not at the top: a probe that reads cached embeddings never needs it

    try:
        encoder = timm.create_model(f"local-dir:{directory}", pretrained=True, num_classes=0)
    except Exception as err:  # noqa: BLE001  damaged weights: safetensors, torch and timm each raise their own
        raise BackboneError(f"backbone directory {directory}: cannot load its weights: {_first_line(err)}") from None
    cfg = encoder.pretrained_cfg
    spec = InputSpec(size=int(cfg["input_size"][-1]), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))
    return Backbone(encoder, spec, int(encoder.num_features))


#: Normalisation per model family when a checkpoint has no preprocessor_config.json.
HF_DEFAULT_NORMALISATION = {
    "dinov2": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224),  # ImageNet; DINOv2 crops 224
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), None),  # CLIP's own
}
HF_FAMILIES = {"dinov2": "dinov2", "clip": "clip", "clip_vision_model": "clip"}


class HFEncoder(nn.Module):
    """A transformers vision model as ``pixel_values -> pooler_output``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).pooler_output


def load_hf(reference: str) -> Backbone:
    """A DINOv2 or CLIP vision backbone from a directory or the Hugging Face cache."""
    import json
    import os

    import transformers

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    source = str(Path(reference).expanduser()) if Path(reference).expanduser().is_dir() else reference
    local_dir = Path(source).is_dir()
    if local_dir and not any(
        (Path(source) / f).is_file() for f in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
    ):
        raise BackboneError(f"backbone {reference}: no weights (model.safetensors or pytorch_model.bin)")

    def fetch(fn, **kw):
        try:
            return fn(source, local_files_only=True, **kw)
        except OSError as err:
            if local_dir or offline:
                raise BackboneError(
                    f"backbone {reference}: not in the local directory or Hugging Face cache "
                    f"({'HF_HUB_OFFLINE is set' if offline else 'not a directory'}): "
                    f"{str(err).splitlines()[0]}"
                ) from None
        try:
            return fn(source, **kw)
        except OSError as err:
            raise BackboneError(f"backbone {reference}: cannot load or download: {str(err).splitlines()[0]}") from None

    config = fetch(transformers.AutoConfig.from_pretrained)
    family = HF_FAMILIES.get(config.model_type)
    if family is None:
        raise BackboneError(
            f"backbone {reference}: model_type {config.model_type!r} is not supported "
            f"(supported: {sorted(HF_FAMILIES)})"
        )
    cls = transformers.Dinov2Model if family == "dinov2" else transformers.CLIPVisionModel
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a full CLIP checkpoint lists every text weight it skips
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # one bar per trial would drown the run's log
    try:
        model = fetch(cls.from_pretrained)
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()
    vision = model.config
    mean, std, size = HF_DEFAULT_NORMALISATION[family]
    size = min(size or vision.image_size, int(vision.image_size))
    try:
        proc = json.loads(
            Path(transformers.utils.cached_file(source, "preprocessor_config.json", local_files_only=True)).read_text()
        )
        mean, std = tuple(proc.get("image_mean", mean)), tuple(proc.get("image_std", std))
        crop = proc.get("crop_size", proc.get("size"))
        size = int(crop.get("height", crop.get("shortest_edge", size)) if isinstance(crop, dict) else (crop or size))
    except (OSError, TypeError, ValueError, AttributeError):
        pass  # no preprocessor config: the family's defaults
    return Backbone(HFEncoder(model), InputSpec(size=size, mean=mean, std=std), int(vision.hidden_size))


def resolve(reference: str) -> Path:
    """The local directory a backbone reference names (building the stand-in if needed)."""
    if reference == "standin":
        from trainables.models.standin import StandinSpec, ensure_standin

        return ensure_standin(StandinSpec())
    path = Path(reference.removeprefix("timm:")).expanduser()
    if not path.is_dir():
        raise BackboneError(f"backbone {reference!r}: no such directory {path}")
    return path


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


def load_backbone(reference: str) -> Backbone:
    """Load the backbone a reference names (see the module docstring); a checkpoint that
    cannot be loaded (empty or damaged weights, a config that does not fit them) is a
    ``BackboneError`` naming it, which the run reports in one line before any trial."""
    if reference.startswith("hf:"):
        return _checked(load_hf, reference.removeprefix("hf:"), reference)
    path = resolve(reference)
    if not reference.startswith("timm:") and _is_transformers_dir(path):
        return _checked(load_hf, str(path), reference)
    return load_timm_dir(path)


def _checked(load, source: str, reference: str) -> Backbone:
    try:
        return load(source)
    except BackboneError:
        raise
    except Exception as err:  # noqa: BLE001  damaged weights: safetensors, torch and transformers raise their own
        raise BackboneError(f"backbone {reference}: cannot load its weights: {_first_line(err)}") from None


def _is_transformers_dir(path: Path) -> bool:
    import json

    try:
        return "model_type" in json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
