"""Backbones: the one loader of image encoders, from a reference to ``images -> features``.

Every trainable loads through ``load_backbone`` (fine-tuning: ``da_lora`` and the metric
trainables; frozen probes: ``probe``), so a reference means the same thing everywhere:

* ``standin``: the synthfaces stand-in ViT, built on first use and cached (``standin.py``),
  for the config's resolution and data seed;
* ``standin:untrained``: the same architecture with random weights (seed 0), the random-
  features control a probing table needs;
* ``timm:<dir>`` or a plain directory holding a timm ``config.json`` and weights (as written
  by ``timm.models.save_for_hf``), loaded with ``timm.create_model("local-dir:<dir>")``;
* ``hf:<dir or repo id>`` or a directory holding a transformers ``config.json`` (with a
  ``model_type``): DINOv2, CLIP, SigLIP or any vision model with a ``pooler_output``. A
  full CLIP / SigLIP checkpoint gives its vision tower, or with ``joint_space`` (zero-shot
  probes) its image features in the joint image-text space. Input size and normalisation
  come from the checkpoint's ``preprocessor_config.json`` when there is one;
* ``onnx:<file.onnx>``: a face-embedding model run by onnxruntime (inference only), the
  ArcFace route (e.g. insightface's ``w600k_r50.onnx``), normalised as ArcFace is.

The download rule, one for every trainable: nothing is downloaded at run time unless the
user asked, by setting ``ORCHESTRATOR_DOWNLOAD=1``. A repo id is otherwise looked up in the
Hugging Face cache only, and a missing one is refused in one line saying how to fetch it.
The stand-in goes through exactly the timm path once it is built.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from trainables.errors import TrainableInputError

#: Set to 1 to let a run download a Hugging Face repo id missing from the local cache.
DOWNLOAD_ENV = "ORCHESTRATOR_DOWNLOAD"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "open_clip_model.safetensors")
JOINT_SPACE = ("clip", "siglip", "siglip2")  # full image-text checkpoints
#: The vision tower's class of a full image-text checkpoint (what fine-tuning adapts).
VISION_TOWERS = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel", "siglip2": "Siglip2VisionModel"}
UNTRAINED = "standin:untrained"


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


# ------------------------------------------------------------------ references
@dataclass(frozen=True)
class Resolved:
    """What a reference names: ``kind`` (timm, hf, onnx, untrained) and its file or directory
    (None for the untrained control)."""

    kind: str
    path: Path | None


def standin_spec(resolution: int, data_seed: int):
    from trainables.data.synthfaces import SynthFacesSpec
    from trainables.models.standin import StandinSpec

    return StandinSpec(data=SynthFacesSpec(resolution=resolution, seed=data_seed))


def resolve(reference: str, *, resolution: int = 32, data_seed: int = 0) -> Resolved:
    """The local files a reference names (building the stand-in if needed); a path without
    a config or weights, or a repo id that is not cached (see the download rule), is refused
    in one line. The stand-in depends only on the pre-training part of synthfaces (its
    resolution and seed), so every study and trainable shares one build."""
    if reference == "standin":
        from trainables.models.standin import ensure_standin

        return Resolved("timm", ensure_standin(standin_spec(resolution, data_seed)))
    if reference == UNTRAINED:
        return Resolved("untrained", None)
    if reference.startswith("onnx:"):
        path = Path(reference.removeprefix("onnx:")).expanduser()
        if not path.is_file():
            raise BackboneError(f"backbone {reference}: no such ONNX file {path}")
        return Resolved("onnx", path)
    if reference.startswith("hf:"):
        name = reference.removeprefix("hf:")
        path = Path(name).expanduser()
        kind = "hf"
        if not path.is_dir():
            path = hub_snapshot(name, reference)
    else:
        path = Path(reference.removeprefix("timm:")).expanduser()
        if not path.is_dir():
            raise BackboneError(f"backbone {reference!r}: no such directory {path}")
        kind = "timm" if reference.startswith("timm:") or not model_type_of(path) else "hf"
    if not (path / "config.json").is_file():
        raise BackboneError(f"backbone {reference}: {path} has no config.json")
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise BackboneError(f"backbone {reference}: {path} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
    return Resolved(kind, path)


def downloads_allowed() -> bool:
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in ("1", "true", "yes")


def hub_snapshot(repo_id: str, reference: str) -> Path:
    """The local snapshot of a Hugging Face repo id: from the cache, or downloaded when the
    user asked (``ORCHESTRATOR_DOWNLOAD=1``); else a one-line refusal saying how to fetch it."""
    from huggingface_hub import snapshot_download

    asked = downloads_allowed()
    try:
        return Path(snapshot_download(repo_id, local_files_only=not asked))
    except Exception as err:  # noqa: BLE001  huggingface_hub raises several types for "not cached" / offline
        if asked:
            raise BackboneError(
                f"backbone {reference}: cannot download it: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            ) from None
        raise BackboneError(
            f"backbone {reference}: not a directory and not in the Hugging Face cache; nothing is downloaded "
            f"at run time unless asked: fetch it first (`hf download {repo_id}`) or set {DOWNLOAD_ENV}=1"
        ) from None


def model_type_of(path: Path) -> str | None:
    try:
        return json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def _first_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"


# ------------------------------------------------------------------ loading
def load_backbone(
    reference: str,
    *,
    resolution: int = 32,
    data_seed: int = 0,
    joint_space: bool = False,
    device: torch.device | str = "cpu",
) -> Backbone:
    """Load the backbone a reference names (see the module docstring), on the CPU (an ONNX
    model runs where ``device`` says). A checkpoint that cannot be loaded (empty or damaged
    weights, a config that does not fit them) is a ``BackboneError`` naming it, which the run
    reports in one line before any trial."""
    found = resolve(reference, resolution=resolution, data_seed=data_seed)
    if found.kind == "untrained":
        import timm

        spec = standin_spec(resolution, data_seed)
        torch.manual_seed(0)
        model = timm.create_model(spec.architecture, pretrained=False, **spec.model_args())
        return Backbone(model, InputSpec(resolution, (0.5,) * 3, (0.5,) * 3), spec.embed_dim)
    assert found.path is not None
    if found.kind == "onnx":
        return _load_onnx(found.path, reference, device)
    if found.kind == "hf":
        return _load_hf(found.path, reference, joint_space=joint_space)
    return load_timm_dir(found.path)


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


class HFEncoder(nn.Module):
    """A transformers vision model as ``pixel_values -> pooler_output`` (DINOv2: the
    normalised class token; CLIP's vision tower: its post-layernorm class token)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).pooler_output


class JointImage(nn.Module):
    """A full CLIP / SigLIP model's image features (projected into the joint space)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model.get_image_features(pixel_values=x)
        return out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns an output object


#: Normalisation when a checkpoint has no preprocessor_config.json: (mean, std, size or None:
#: the model's own image size).
HF_DEFAULTS = {
    "clip": ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), None),
    "siglip": ((0.5,) * 3, (0.5,) * 3, None),
}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 224)  # DINOv2 and the rest: ImageNet, 224 crops


def hf_input_spec(path: Path, config) -> InputSpec:
    """Size and normalisation: the checkpoint's preprocessor config, else the family's
    defaults (never larger than the model's own image size)."""
    family = config.model_type.split("_")[0].rstrip("2")
    mean, std, size = HF_DEFAULTS.get(family, IMAGENET)
    own = int(getattr(getattr(config, "vision_config", config), "image_size", 224))
    size = min(size or own, own)
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
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings and progress bars off while loading (a full checkpoint lists
    every weight it skips; one bar per trial would drown the run's log)."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _load_hf(path: Path, reference: str, *, joint_space: bool) -> Backbone:
    import transformers

    with quiet_transformers():
        try:
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            mt = config.model_type
            if joint_space and mt in JOINT_SPACE:
                encoder: nn.Module = JointImage(transformers.AutoModel.from_pretrained(path, local_files_only=True))
            else:
                cls = getattr(transformers, VISION_TOWERS[mt]) if mt in VISION_TOWERS else transformers.AutoModel
                encoder = HFEncoder(cls.from_pretrained(path, local_files_only=True))
        except Exception as err:  # noqa: BLE001  damaged weights: safetensors, torch and transformers raise their own
            raise BackboneError(f"backbone {reference}: cannot load its weights: {_first_line(err)}") from None
    spec = hf_input_spec(path, config)
    try:
        with torch.no_grad():
            dim = int(encoder.eval()(torch.zeros(1, 3, spec.size, spec.size)).shape[-1])
    except Exception as err:  # noqa: BLE001  a model without a pooled image output
        raise BackboneError(
            f"backbone {reference}: model_type {config.model_type!r} gives no pooled image embedding "
            f"(pooler_output): {_first_line(err)}"
        ) from None
    return Backbone(encoder, spec, dim)  # as transformers leaves it: eval mode until a trainer says train()


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
            f"backbone {reference}: onnxruntime cannot load {path}: {str(err).splitlines()[0][:200]}"
        ) from None
    shape = session.get_inputs()[0].shape
    if len(shape) != 4:
        raise BackboneError(f"backbone {reference}: expected an image input (N, 3, H, W), the model takes {shape}")
    size = shape[-1] if isinstance(shape[-1], int) else 112
    batch = shape[0] if isinstance(shape[0], int) else None
    module = _Onnx(session, batch)
    dim = int(module(torch.zeros(1, 3, size, size)).shape[-1])
    return Backbone(module, InputSpec(size, (0.5,) * 3, (0.5,) * 3), dim)
