"""A fine-tuned backbone taken out of a trial, in its own format, and a folder of images
embedded with it exactly as the evaluation embeds (``embed_folder``).

The trained model is rebuilt from its config and the checkpoint's trainable tensors (the
trainable's ``trained_backbone``); what is written is the *pretrained* model loaded again from
its reference, with the LoRA deltas ``scaling * B @ A`` added to the weights they adapt
(``merge``): a transformers folder (``save_pretrained``) or a timm one (``save_for_hf``), which
load with transformers or timm alone. ``save_adapter`` writes the same LoRA as a peft adapter
of that pretrained model (``PeftModel.from_pretrained(model, adapter_dir)``).

Domain-aware LoRA with several domains mixes its adapters per image, by a domain classifier:
no single weight reproduces it, so it has no merged form and is refused; with one domain it is
exactly LoRA (``domain_lora.py``) and is exported as such.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from trainables.errors import TrainableInputError
from trainables.models.backbone import Backbone, HFEncoder, JointImage, load_backbone
from trainables.models.domain_lora import DomainLoraLinear

#: What ``embed`` reads from an exported folder: the trial's input size and flip test, and
#: where the model came from (trial, epoch, chosen by what).
EMBEDDING_FILE = "orchestrator-embedding.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ExportError(TrainableInputError):
    """A model that cannot be written in the form asked for."""


@dataclass(frozen=True)
class Lora:
    """One adapted linear layer: ``W + scaling * B @ A``."""

    A: torch.Tensor  # (r, in)
    B: torch.Tensor  # (out, r)
    scaling: float


def raw_model(backbone: Backbone) -> nn.Module:
    """The transformers or timm model inside a backbone (LoRA layers, if any, in place)."""
    import peft

    enc = backbone.encoder
    if isinstance(enc, peft.PeftModel):
        enc = enc.base_model.model
    return enc.model if isinstance(enc, (HFEncoder, JointImage)) else enc


def lora_layers(model: nn.Module) -> dict[str, Lora]:
    """Every LoRA-adapted linear layer of ``model`` by its name in the plain model."""
    from peft.tuners.lora import LoraLayer

    out = {}
    for name, m in model.named_modules():
        if isinstance(m, DomainLoraLinear):
            if m.num_domains > 1:
                raise ExportError(
                    f"domain-aware LoRA with {m.num_domains} domains mixes its adapters per image by the domain "
                    "classifier: no merged backbone or single adapter reproduces it (export a trial with "
                    "domain_lora: false, or one domain)"
                )
            out[name] = Lora(m.lora_A[0].detach(), m.lora_B[0].detach(), float(m.scaling))
        elif isinstance(m, LoraLayer):
            out[name] = Lora(
                m.lora_A["default"].weight.detach(), m.lora_B["default"].weight.detach(), float(m.scaling["default"])
            )
    return out


def _plain_name(name: str) -> str:
    """A peft-wrapped layer's name in the plain model (peft nests the original as ``base_layer``)."""
    return name.removesuffix(".base_layer")


def merge(trained: Backbone, pristine: Backbone) -> nn.Module:
    """The plain model of ``pristine`` with the trained weights: LoRA merged into the layers
    it adapts, or, for a fully fine-tuned backbone, every trained tensor copied."""
    plain = raw_model(pristine)
    layers = lora_layers(raw_model(trained))
    if not layers:  # full fine-tuning (or none): the trained model's own tensors
        plain.load_state_dict(raw_model(trained).state_dict())
        return plain
    with torch.no_grad():
        for name, lora in layers.items():
            linear = plain.get_submodule(_plain_name(name))
            linear.weight += lora.scaling * (lora.B.float() @ lora.A.float()).to(linear.weight.dtype)
    return plain


def save_adapter(trained: Backbone, pristine: Backbone, directory: Path, *, rank: int, alpha: float) -> None:
    """The trained LoRA as a peft adapter of the pretrained plain model."""
    import peft

    layers = lora_layers(raw_model(trained))
    if not layers:
        raise ExportError("--adapter: this trial has no LoRA (adaptation is not lora)")
    if any(abs(lora.scaling - alpha / rank) > 1e-9 for lora in layers.values()):
        raise ExportError("--adapter: the LoRA's scaling is not lora_alpha / lora_rank")
    names = sorted(_plain_name(n) for n in layers)
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=names, bias="none")
    model = peft.get_peft_model(copy.deepcopy(raw_model(pristine)), config)
    with torch.no_grad():
        for name, lora in layers.items():
            layer = model.base_model.model.get_submodule(_plain_name(name))
            layer.lora_A["default"].weight.copy_(lora.A)
            layer.lora_B["default"].weight.copy_(lora.B)
    model.save_pretrained(str(directory))


def save_model(model: nn.Module, source: Path | None, directory: Path) -> str:
    """``model`` written in its own format: "transformers" or "timm"."""
    if hasattr(model, "save_pretrained") and hasattr(model, "config"):
        model.save_pretrained(str(directory))
        if source is not None and (source / "preprocessor_config.json").is_file():
            shutil.copy2(source / "preprocessor_config.json", directory / "preprocessor_config.json")
        return "transformers"
    import timm

    timm.models.save_for_hf(model, str(directory), safe_serialization=True)
    return "timm"


def export(
    trained: Backbone,
    pristine: Backbone,
    source: Path | None,
    directory: Path,
    *,
    embedding: dict[str, Any],
    adapter: Path | None = None,
    rank: int = 8,
    alpha: float = 16.0,
) -> str:
    """Write the merged model (and the adapter alone, when ``adapter``) and ``EMBEDDING_FILE``;
    returns the model's format."""
    if adapter is not None:
        adapter.mkdir(parents=True, exist_ok=True)
        save_adapter(trained, pristine, adapter, rank=rank, alpha=alpha)
    fmt = save_model(merge(trained, pristine), source, directory)
    spec = pristine.input_spec
    info = {
        **embedding,
        "format": fmt,
        "input_size": spec.size,
        "mean": list(spec.mean),
        "std": list(spec.std),
        "embed_dim": trained.embed_dim,
    }
    (directory / EMBEDDING_FILE).write_text(json.dumps(info, indent=1))
    return fmt


# ------------------------------------------------------------------ embedding a folder


def image_list(folder: Path) -> list[Path]:
    """Every image under ``folder``, sorted (nested folders included)."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def embed_folder(
    model_dir: Path,
    folder: Path,
    *,
    batch_size: int = 256,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """L2-normalised embeddings of every image under ``folder`` with the exported model in
    ``model_dir``, preprocessed as the trial's evaluation did: decoded (through the shared
    cache) at the trial's image size, normalised and resized by the backbone, flip test as the
    trial had it. Returns ``embeddings`` (N, D) float32, ``paths`` (relative to ``folder``)
    and ``identity`` (each image's folder name)."""
    from trainables.data.image_cache import image_files
    from trainables.training import embed_all

    info_file = Path(model_dir) / EMBEDDING_FILE
    info = json.loads(info_file.read_text()) if info_file.is_file() else {}
    backbone = load_backbone(str(model_dir))
    size = int(info.get("image_size", backbone.input_spec.size))
    paths = image_list(folder)
    if not paths:
        raise ExportError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) under it")
    cache = image_files([str(p) for p in paths], size, log=log)
    if cache.failed:
        row, why = cache.failed[0]
        raise ExportError(f"{folder}: {len(cache.failed)} images cannot be read, e.g. {paths[row]} ({why})")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    emb = embed_all(backbone.to(dev), cache.tensor(), batch_size=batch_size, flip=bool(info.get("flip_test", True)))
    return {
        "embeddings": emb.numpy().astype(np.float32),
        "paths": np.array([str(p.relative_to(folder)) for p in paths]),
        "identity": np.array([p.parent.name for p in paths]),
    }
