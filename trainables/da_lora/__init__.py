"""``da_lora``: DA-LoRA adaptation of a backbone (or standard LoRA, frozen, full) with a CosFace head.

Preparation, training and evaluation live in ``loop.py`` and run without Ray; registering
here imports none of it (see ``register_module``).
"""

from trainables._registry import register_module
from trainables.da_lora.config import DaLoraConfig, metric_keys
from trainables.metrics import (
    IDENTIFICATION,
    IDENTIFICATION_NAMES,
    RECORD,
    RECORD_NAMES,
    TRAINING,
    TRAINING_NAMES,
    VERIFICATION,
    VERIFICATION_NAMES,
)

__all__ = ["DaLoraConfig", "train_da_lora"]

train_da_lora = register_module(
    "da_lora",
    config_cls=DaLoraConfig,
    module="trainables.da_lora.loop",
    metric_keys=metric_keys,
    directions=VERIFICATION + IDENTIFICATION + TRAINING + RECORD,
    names=VERIFICATION_NAMES + IDENTIFICATION_NAMES + TRAINING_NAMES + RECORD_NAMES,
    smoke=dict(
        synth_train_identities=24,
        synth_train_images=2,
        flip_test=False,
        batch_size=32,
        epochs=2,
        domain_lora=True,
        lambda_domain=0.01,
        lambda_contrastive=0.1,
        maml_inner_steps=1,
        maml_meta_steps=2,
    ),
    description="DA-LoRA: (domain-aware) LoRA, MAML init, CosFace + contrastive + domain losses; "
    "synthfaces or real data, verification benchmarks",
)
