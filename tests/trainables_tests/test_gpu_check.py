"""The GPU check's CPU path (``benchmarks/gpu_check.py --tiny``): every row of its table is
measured, and the FLOPs its utilisation is computed from are at least those of the model's
matrix products (counted from the definition of a ViT's linear layers)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_cpu_path_measures_every_row(tmp_path, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_CACHE", str(tmp_path / "cache"))
    rows = _gpu_check().main(["--tiny", "--json", str(tmp_path / "rows.json")])
    assert json.loads((tmp_path / "rows.json").read_text()) == rows
    whats = [(r["model"], r["what"]) for r in rows]
    for model in ("ViT-tiny/14", "CLIP-tiny"):
        for what in ("DA-LoRA step", "LoRA step", "evaluation (flip test)"):
            assert (model, what) in whats
    assert any("packed trials vs 1" in w for _, w in whats)
    assert sum(w.startswith("data: ") for _, w in whats) == 3
    for r in rows:
        numbers = [v for k, v in r.items() if k not in ("model", "what") and v is not None]
        assert numbers and all(math.isfinite(v) and v > 0 for v in numbers), r
        assert r.get("mfu") is None  # no peak to compare with on a CPU


def test_a_steps_flops_are_at_least_its_matrix_products(tmp_path):
    from trainables.data.real_shaped import save_backbone

    gc = _gpu_check()
    directory = save_backbone(tmp_path, "dinov2-tiny")
    s = gc.Setup(directory, full=False, size=56, batch=8, steps=1, device="cpu")
    config = json.loads((directory / "config.json").read_text())
    crop = json.loads((directory / "preprocessor_config.json").read_text())["crop_size"]["height"]
    d, layers = config["hidden_size"], config["num_hidden_layers"]
    mlp = d * config["mlp_ratio"]  # transformers' Dinov2 MLP width (its config's intermediate_size is unused)
    tokens = (crop // config["patch_size"]) ** 2 + 1  # patches of the model's input crop, and the class token
    # per layer and token: q, k, v and output projections (4 d^2) and the MLP (2 d mlp), 2 FLOPs a multiply-add
    forward = 2 * tokens * layers * (4 * d * d + 2 * d * mlp) * 8  # 8 images
    flops = s.step_flops()
    # a forward, and a backward through the frozen layers to the LoRA inputs (about one more forward)
    assert 2 * forward <= flops <= 4 * forward + 1e6
    assert s.wrapper_epoch(*s.optimizer()[:2]) == s.bare_epoch(*s.optimizer()[:2]) == 8  # the same batches
