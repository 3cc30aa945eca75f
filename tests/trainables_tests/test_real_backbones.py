"""Real backbones (transformers DINOv2 and CLIP, timm) from tiny checkpoints the tests save
themselves: loading, their input spec, LoRA and one training step, and no download."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

from trainables.da_lora.config import DaLoraConfig
from trainables.da_lora.loop import Objective
from trainables.da_lora.model import DaLoraModel
from trainables.models.adapt import adapt, trainable_parameters
from trainables.models.backbone import BackboneError, load_backbone

TINY = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=28, patch_size=14
)


def _save_dinov2(d: Path) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(**TINY)).save_pretrained(d)
    return d


def _save_clip(d: Path) -> Path:
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(
            vision_config=TINY,
            text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
            projection_dim=16,
        )
    ).save_pretrained(d)
    return d


def _save_timm(d: Path) -> Path:
    torch.manual_seed(0)
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, num_classes=0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, **args)
    timm.models.save_for_hf(
        model,
        str(d),
        model_args=args,
        safe_serialization=True,
        data_config={"mean": (0.5,) * 3, "std": (0.5,) * 3, "input_size": (3, 32, 32)},
    )
    return d


@pytest.mark.parametrize(
    "family, save, targets",
    [
        ("dinov2", _save_dinov2, ("q_proj", "v_proj")),
        ("clip", _save_clip, ("q_proj", "v_proj")),
        ("timm", _save_timm, ("qkv",)),
    ],
)
def test_checkpoint_round_trip_and_one_training_step(family, save, targets, tmp_path):
    directory = save(tmp_path / family)
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    backbone = load_backbone(str(directory))
    ref = "hf:" if family != "timm" else "timm:"
    again = load_backbone(ref + str(directory))
    torch.testing.assert_close(backbone.eval()(x), again.eval()(x))  # the saved weights, both ways
    assert backbone(x).shape == (8, 32)
    model = adapt(backbone, mode="lora", lora_rank=2, lora_targets=("auto",), domain_lora=True, num_domains=2)
    lora = [n for n in trainable_parameters(model)]
    assert lora and all(any(f".{t}." in n for t in targets) for n in lora)  # auto found the projections
    dalora = DaLoraModel(model, num_domains=2, with_classifier=True)
    cfg = DaLoraConfig(domain_lora=True, lambda_domain=0.1, lambda_contrastive=0.1)
    objective = Objective(cfg, dalora, num_classes=4)
    params = list(trainable_parameters(dalora).values()) + list(objective.parameters())
    before = {n: p.detach().clone() for n, p in trainable_parameters(dalora).items()}
    opt = torch.optim.AdamW(params, lr=1e-2)
    loss = objective(dalora, dalora(x), torch.arange(4).repeat(2), torch.tensor([0, 1] * 4))
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[n], p) for n, p in trainable_parameters(dalora).items() if "lora_B" in n)


def test_hf_input_spec_from_preprocessor_config(tmp_path):
    import json

    directory = _save_dinov2(tmp_path / "dino")
    assert load_backbone(str(directory)).input_spec.mean == (0.485, 0.456, 0.406)  # DINOv2's defaults
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "crop_size": {"height": 14, "width": 14}}
        )
    )
    spec = load_backbone(str(directory)).input_spec
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.25, 0.25, 0.25) and spec.size == 14


def test_backbone_without_weights_is_refused(tmp_path):
    directory = _save_dinov2(tmp_path / "dino")
    (directory / "model.safetensors").unlink()
    with pytest.raises(BackboneError, match="no weights"):
        load_backbone(str(directory))


def test_nothing_is_downloaded_unless_asked(tmp_path, monkeypatch):
    """One rule for every trainable: a repo id is read from the Hugging Face cache only,
    and fetched only when the user set ORCHESTRATOR_DOWNLOAD=1."""
    import huggingface_hub

    from trainables.probe import encoders

    calls = []

    def snapshot(repo_id, *, local_files_only=False, **kw):
        calls.append(local_files_only)
        if local_files_only:
            raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")
        return str(_save_dinov2(tmp_path / "downloaded"))

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot)
    monkeypatch.delenv("ORCHESTRATOR_DOWNLOAD", raising=False)
    for load in (load_backbone, encoders.load):  # fine-tuning and the probes: one loader
        with pytest.raises(BackboneError, match=r"not in the Hugging Face cache; nothing is downloaded.*hf download"):
            load("hf:facebook/dinov2-small")
    assert calls == [True, True]
    monkeypatch.setenv("ORCHESTRATOR_DOWNLOAD", "1")
    assert load_backbone("hf:facebook/dinov2-small").embed_dim == 32
    assert calls[-1] is False
