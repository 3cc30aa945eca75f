"""``da_lora``: DA-LoRA adaptation of a backbone (or standard LoRA, frozen, full) with a CosFace head.

The Ray-specific part is this module's ``train_da_lora``; everything it calls lives in
``loop.py`` and runs without Ray. Heavy imports (torch, peft, timm) happen inside the
functions, so that listing, validating and unpickling the trainable stay fast: a Ray
worker pays for them once, when its first trial starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables._registry import register_trainable
from trainables.da_lora.config import DaLoraConfig

__all__ = ["DaLoraConfig", "prepare", "train_da_lora"]


def prepare(cfg: DaLoraConfig, out_dir: Path) -> dict[str, str]:
    from trainables.da_lora.loop import prepare as _prepare

    return _prepare(cfg, out_dir)


@register_trainable("da_lora", config_cls=DaLoraConfig, prepare=prepare,
                    description="DA-LoRA: (domain-aware) LoRA, MAML init, CosFace + contrastive + domain losses; "
                                "synthfaces or real data, verification benchmarks")
def train_da_lora(config: dict[str, Any]) -> None:
    from trainables.da_lora.loop import run
    from trainables.ray_glue import run_in_tune

    run_in_tune(run, DaLoraConfig.model_validate(config))
