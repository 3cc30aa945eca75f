"""Frozen encoders for probes: what a cached embedding depends on, zero-shot text features,
and encoding. Loading goes through the one loader, ``trainables.models.backbone`` (its
references and its download rule: nothing is downloaded unless asked); a full CLIP or
SigLIP checkpoint gives its image features in the joint image-text space here (what
zero-shot prompts are compared with), any other model its ``pooler_output``.

``identity(reference)`` says what a cached embedding depends on without loading weights:
the resolved files' names, sizes and modification times (weights) and contents (configs).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.models.backbone import (
    JOINT_SPACE,
    UNTRAINED,
    Backbone,
    BackboneError,
    load_backbone,
    model_type_of,
    quiet_transformers,
    resolve,
    standin_spec,
)


def identity(reference: str, *, resolution: int = 32, data_seed: int = 0) -> dict[str, Any]:
    """What embeddings of this encoder depend on, cheaply: files' sizes and modification
    times (weights, which can be gigabytes) and contents (configs); no weights are read."""
    found = resolve(reference, resolution=resolution, data_seed=data_seed)
    kind, path = found.kind, found.path
    if kind == "untrained":
        return {"kind": kind, "standin": standin_spec(resolution, data_seed).key(), "init_seed": 0}
    assert path is not None
    files = (
        [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    )
    out = []
    for f in files:
        st = f.stat()
        if f.suffix in (".json", ".txt", ".model") and st.st_size < 10_000_000:
            out.append([f.name, hashlib.sha256(f.read_bytes()).hexdigest()[:16]])
        else:
            out.append([f.name, st.st_size, st.st_mtime_ns])
    return {"kind": kind, "path": str(path.resolve()), "files": out}


def load(reference: str, *, resolution: int = 32, data_seed: int = 0, device: torch.device | str = "cpu") -> Backbone:
    """The encoder as ``uint8 images (B, 3, H, W) -> features (B, D)``, on ``device``, in eval mode."""
    backbone = load_backbone(reference, resolution=resolution, data_seed=data_seed, joint_space=True, device=device)
    return backbone.to(device).eval()


def text_features(
    reference: str, classes: tuple[str, ...], prompts: tuple[str, ...], *, device: torch.device | str = "cpu"
) -> np.ndarray:
    """(C, D) zero-shot class embeddings of a full CLIP / SigLIP checkpoint: each template
    filled with each class name, encoded by the text tower, L2-normalised, averaged over the
    templates and normalised again (the note's prompt ensemble)."""
    import transformers

    found = resolve(reference)
    kind, path = found.kind, found.path
    mt = model_type_of(path) if kind == "hf" and path is not None else None
    if mt not in JOINT_SPACE:
        raise BackboneError(
            f"encoder {reference}: zero_shot needs a full CLIP or SigLIP checkpoint (with its text "
            f"tower), got {mt or kind}"
        )
    with quiet_transformers():
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError) as err:
            raise BackboneError(
                f"encoder {reference}: no usable tokenizer in {path}: {str(err).splitlines()[0]}"
            ) from None
        model = transformers.AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
    # SigLIP was trained on text padded to its full length; CLIP pools at the end token
    pad = (
        {"padding": "max_length", "max_length": model.config.text_config.max_position_embeddings}
        if mt.startswith("siglip")
        else {"padding": True}
    )
    per_template = []
    with torch.no_grad():
        for t in prompts:
            tokens = tokenizer([t.format(c) for c in classes], truncation=True, return_tensors="pt", **pad).to(device)
            out = model.get_text_features(**{k: v for k, v in tokens.items() if k in ("input_ids", "attention_mask")})
            f = out if isinstance(out, torch.Tensor) else out.pooler_output
            per_template.append(nn.functional.normalize(f.float(), dim=-1))
    mean = torch.stack(per_template).mean(0)
    return nn.functional.normalize(mean, dim=-1).cpu().numpy()


def encode(backbone: Backbone, fetch, n: int, hw, *, flip: bool, batch_size: int) -> np.ndarray:
    """(n, D) float32 features of images 0..n-1 of ``fetch``, in order (no normalisation)."""
    out = []
    rows = np.arange(n)
    with torch.no_grad():
        for _, x in fetch.batches([rows[i : i + batch_size] for i in range(0, n, batch_size)]):
            with hw.autocast():
                e = backbone(x).float()
                if flip:
                    e = e + backbone(x.flip(-1)).float()
            out.append(e.cpu())
    return torch.cat(out).numpy().astype(np.float32)


__all__ = ["UNTRAINED", "encode", "identity", "load", "text_features"]
