"""``da_lora``: LoRA (or frozen / full) adaptation of a backbone with a CosFace head.

The Ray-specific part is this module's ``train_da_lora``; everything it calls lives in
``loop.py`` and runs without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables._registry import register_trainable
from trainables.da_lora.config import DaLoraConfig
from trainables.da_lora.loop import prepare, run
from trainables.ray_glue import ray_reporter, restore_dir, set_threads_from_ray

__all__ = ["DaLoraConfig", "run", "train_da_lora"]


@register_trainable("da_lora", config_cls=DaLoraConfig, prepare=prepare,
                    description="LoRA / frozen / full adaptation of a ViT with a CosFace head; synthfaces verification")
def train_da_lora(config: dict[str, Any]) -> None:
    cfg = DaLoraConfig.model_validate(config)
    set_threads_from_ray()
    with restore_dir() as previous:
        run(cfg, ray_reporter, restore_from=Path(previous) if previous else None)
