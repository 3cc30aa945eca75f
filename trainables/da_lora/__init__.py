"""``da_lora``: DA-LoRA adaptation of a backbone (or standard LoRA, frozen, full) with a CosFace head.

Preparation, training and evaluation live in ``loop.py`` and run without Ray; registering
here imports none of it (see ``register_module``).
"""

from trainables._registry import register_module
from trainables.da_lora.config import DaLoraConfig, metric_keys

__all__ = ["DaLoraConfig", "train_da_lora"]

train_da_lora = register_module(
    "da_lora",
    config_cls=DaLoraConfig,
    module="trainables.da_lora.loop",
    metric_keys=metric_keys,
    description="DA-LoRA: (domain-aware) LoRA, MAML init, CosFace + contrastive + domain losses; "
    "synthfaces or real data, verification benchmarks",
)
