"""Frozen encoders for probes, resolved from local files only (never downloaded).

References:

* ``standin``: the synthfaces stand-in (``trainables.models.standin``), built once per cache;
* ``standin:untrained``: the same architecture with random weights (seed 0): the random-
  features control a probing table needs, so that "the encoder helps" is measured;
* ``timm:<dir>`` or a directory with a timm ``config.json``: ``timm.create_model``;
* ``hf:<dir>``, a transformers directory, or ``hf:<repo id>`` found in the Hugging Face
  cache (``local_files_only``: a missing model is an error, not a download). Full CLIP and
  SigLIP checkpoints give their image features in the joint image-text space (what
  zero-shot prompts are compared with); any other model (DINOv2, DINOv3, a CLIP / SigLIP
  vision tower) gives its ``pooler_output`` (DINOv2: the normalised class token);
* ``onnx:<file.onnx>``: a face-embedding model run by onnxruntime, the ArcFace route (e.g.
  insightface's ``w600k_r50.onnx``): RGB input of the model's own size (112 when the graph
  leaves it open), normalised as ArcFace is, ``(x - 127.5) / 127.5``.

``identity(reference)`` says what a cached embedding depends on without loading weights:
the resolved files' names, sizes and modification times (weights) and contents (configs).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from trainables.models.backbone import Backbone, BackboneError, HFEncoder, InputSpec

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "open_clip_model.safetensors")
JOINT_SPACE = ("clip", "siglip", "siglip2")  # full image-text checkpoints: image features in the joint space
UNTRAINED = "standin:untrained"


def _standin_spec(resolution: int, seed: int):
    from trainables.data.synthfaces import SynthFacesSpec
    from trainables.models.standin import StandinSpec

    return StandinSpec(data=SynthFacesSpec(resolution=resolution, seed=seed))


def resolve(reference: str, *, resolution: int = 32, data_seed: int = 0) -> tuple[str, Path | None]:
    """(kind, path): kind is standin, untrained, timm, hf or onnx; path is the file or directory
    (None for the untrained control). Refuses a path without weights in one line."""
    if reference == "standin":
        from trainables.models.standin import ensure_standin

        return "timm", ensure_standin(_standin_spec(resolution, data_seed))
    if reference == UNTRAINED:
        return "untrained", None
    if reference.startswith("onnx:"):
        path = Path(reference.removeprefix("onnx:")).expanduser()
        if not path.is_file():
            raise BackboneError(f"encoder {reference}: no such ONNX file {path}")
        return "onnx", path
    if reference.startswith("hf:"):
        name = reference.removeprefix("hf:")
        path = Path(name).expanduser()
        if not path.is_dir():
            path = _hf_cache_dir(name, reference)
        kind = "hf"
    else:
        path = Path(reference.removeprefix("timm:")).expanduser()
        if not path.is_dir():
            raise BackboneError(f"encoder {reference!r}: no such directory {path}")
        kind = "timm" if reference.startswith("timm:") or not _model_type(path) else "hf"
    if not (path / "config.json").is_file():
        raise BackboneError(f"encoder {reference}: {path} has no config.json")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise BackboneError(f"encoder {reference}: {path} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    return kind, path


def _hf_cache_dir(repo_id: str, reference: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as err:  # noqa: BLE001  huggingface_hub raises several types for "not cached"
        raise BackboneError(
            f"encoder {reference}: not a directory and not in the Hugging Face cache (nothing is "
            f"downloaded at run time; fetch it first, e.g. `hf download {repo_id}`): "
            f"{type(err).__name__}"
        ) from None


def _model_type(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def identity(reference: str, *, resolution: int = 32, data_seed: int = 0) -> dict[str, Any]:
    """What embeddings of this encoder depend on, cheaply: files' sizes and modification
    times (weights, which can be gigabytes) and contents (configs); no weights are read."""
    kind, path = resolve(reference, resolution=resolution, data_seed=data_seed)
    if kind == "untrained":
        return {"kind": kind, "standin": _standin_spec(resolution, data_seed).key(), "init_seed": 0}
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
    """The encoder as ``uint8 images (B, 3, H, W) -> features (B, D)``, in eval mode."""
    kind, path = resolve(reference, resolution=resolution, data_seed=data_seed)
    if kind == "untrained":
        import timm

        spec = _standin_spec(resolution, data_seed)
        torch.manual_seed(0)
        model = timm.create_model(spec.architecture, pretrained=False, **spec.model_args())
        backbone = Backbone(model, InputSpec(resolution, (0.5,) * 3, (0.5,) * 3), spec.embed_dim)
    elif kind == "onnx":
        backbone = _load_onnx(path, reference, device)
    elif kind == "hf":
        backbone = _load_hf(path, reference)
    else:
        from trainables.models.backbone import load_timm_dir

        backbone = load_timm_dir(path)  # damaged weights: a BackboneError naming the directory
    return backbone.to(device).eval()


class _JointImage(nn.Module):
    """A full CLIP / SigLIP model's image features (projected into the joint space)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=x)
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns an output object


#: Normalisation when a checkpoint has no preprocessor_config.json: (mean, std, size or None).
_DEFAULTS = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), None),
    "siglip": ((0.5,) * 3, (0.5,) * 3, None),
}
_IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)


def _input_spec(path: Path, config) -> InputSpec:
    family = config.model_type.split("_")[0].rstrip("2")
    mean, std, size = _DEFAULTS.get(family, _IMAGENET)
    vision = getattr(config, "vision_config", config)
    size = size or int(getattr(vision, "image_size", 224))
    proc = path / "preprocessor_config.json"
    if proc.is_file():
        try:
            p = json.loads(proc.read_text())
            mean, std = tuple(p.get("image_mean", mean)), tuple(p.get("image_std", std))
            crop = p.get("crop_size") if p.get("do_center_crop", True) and p.get("crop_size") else p.get("size")
            if isinstance(crop, dict):
                size = int(crop.get("height", crop.get("shortest_edge", size)))
            elif crop:
                size = int(crop)
        except (OSError, ValueError, TypeError):
            pass  # an unreadable preprocessor config: the family's defaults
    return InputSpec(size, tuple(mean), tuple(std))


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' warnings off while loading (a full checkpoint lists every weight it skips)."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)


def _load_hf(path: Path, reference: str) -> Backbone:
    import transformers

    with _quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, KeyError) as err:
            raise BackboneError(f"encoder {reference}: cannot load {path}: {str(err).splitlines()[0]}") from None
    encoder = _JointImage(model) if config.model_type in JOINT_SPACE else HFEncoder(model)
    spec = _input_spec(path, config)
    with torch.no_grad():
        dim = int(encoder.eval()(torch.zeros(1, 3, spec.size, spec.size)).shape[-1])
    return Backbone(encoder, spec, dim)


class _Onnx(nn.Module):
    """An onnxruntime session as a module (inference only)."""

    def __init__(self, session, batch: int | None) -> None:
        super().__init__()
        self.session, self.batch = session, batch
        self.input = session.get_inputs()[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().float().cpu().numpy()
        step = self.batch or len(a)
        out = [self.session.run(None, {self.input: a[i : i + step]})[0] for i in range(0, len(a), step)]
        return torch.from_numpy(np.concatenate(out)).to(x.device)


def _load_onnx(path: Path, reference: str, device) -> Backbone:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = torch.get_num_threads()
    providers = ["CPUExecutionProvider"]
    if str(device).startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as err:  # noqa: BLE001  onnxruntime raises its own exception classes
        raise BackboneError(
            f"encoder {reference}: onnxruntime cannot load {path}: {str(err).splitlines()[0][:200]}"
        ) from None
    shape = session.get_inputs()[0].shape
    if len(shape) != 4:
        raise BackboneError(f"encoder {reference}: expected an image input (N, 3, H, W), the model takes {shape}")
    size = shape[-1] if isinstance(shape[-1], int) else 112
    batch = shape[0] if isinstance(shape[0], int) else None
    module = _Onnx(session, batch)
    dim = int(module(torch.zeros(1, 3, size, size)).shape[-1])
    return Backbone(module, InputSpec(size, (0.5,) * 3, (0.5,) * 3), dim)


def text_features(
    reference: str, classes: tuple[str, ...], prompts: tuple[str, ...], *, device: torch.device | str = "cpu"
) -> np.ndarray:
    """(C, D) zero-shot class embeddings of a full CLIP / SigLIP checkpoint: each template
    filled with each class name, encoded by the text tower, L2-normalised, averaged over the
    templates and normalised again (the note's prompt ensemble)."""
    import transformers

    kind, path = resolve(reference)
    mt = _model_type(path) if kind == "hf" else None
    if mt not in JOINT_SPACE:
        raise BackboneError(
            f"encoder {reference}: zero_shot needs a full CLIP or SigLIP checkpoint (with its text "
            f"tower), got {mt or kind}"
        )
    with _quiet_transformers():
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


__all__ = ["UNTRAINED", "encode", "identity", "load", "resolve", "text_features"]
