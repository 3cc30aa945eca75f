"""Tiny encoders the probe tests save themselves (no download): a DINOv2, CLIP and SigLIP
checkpoint with a word-level tokenizer, an ONNX face-embedding model, image folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

PROMPT_WORDS = "a photo of person named face someone called common first name this person's is portrait".split()


def tiny_tokenizer(words: list[str], directory: Path) -> int:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[EOS]": 2, "[BOS]": 3}
    for w in sorted(set(words)):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 3), ("[EOS]", 2)]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="[EOS]",
        bos_token="[BOS]",
        model_max_length=16,
    ).save_pretrained(directory)
    return len(vocab)


def tiny_joint(directory: Path, classes: list[str], kind: str = "clip") -> Path:
    """A random-weight CLIP or SigLIP checkpoint (both towers) with a tokenizer knowing ``classes``."""
    import transformers

    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    vocab = tiny_tokenizer(PROMPT_WORDS + list(classes), directory)
    text = dict(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=16,
        eos_token_id=2,
        bos_token_id=3,
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8
    )
    if kind == "clip":
        model = transformers.CLIPModel(
            transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        )
    else:
        model = transformers.SiglipModel(transformers.SiglipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(directory)
    return directory


def tiny_dinov2(directory: Path) -> Path:
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )
    transformers.Dinov2Model(cfg).save_pretrained(directory)
    (directory / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_mean": [0.485, 0.456, 0.406],
                "image_std": [0.229, 0.224, 0.225],
                "crop_size": {"height": 32, "width": 32},
                "do_center_crop": True,
                "size": {"shortest_edge": 32},
            }
        )
    )
    return directory


def tiny_onnx(path: Path, *, size: int = 16, dim: int = 8, seed: int = 0) -> tuple[Path, np.ndarray, np.ndarray]:
    """An ONNX 'face-embedding' model: flatten (N, 3, size, size), then a dense layer to ``dim``.
    Returns the file and its weights (W, b)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3 * size * size, dim)).astype(np.float32)
    b = rng.normal(size=(dim,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input.1"], ["flat"], axis=1),
            helper.make_node("Gemm", ["flat", "W", "b"], ["683"]),
        ],
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["None", 3, size, size])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["None", dim])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path, w, b


def image_folder(root: Path, classes: dict[str, int], *, size: int = 32, seed: int = 0) -> Path:
    """``root/<class>/<k>.png``: each class a colour, with noise (classes: name -> image count)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c, (name, n) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        for k in range(n):
            img = np.clip(base + rng.normal(0, 30, size=(size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / name / f"{k}.png")
    return root
