"""``probe``: heads on frozen-encoder embeddings (the quick-experiments track): linear and
SupCon + linear probes, ensembles of encoders, CLIP / SigLIP zero-shot prompts, on an
embedding cache that every trial shares.

Preparation, training and evaluation live in ``loop.py`` and run without Ray.
"""

from trainables._registry import register_module
from trainables.metrics import (
    PREDICTIONS,
    PREDICTIONS_NAMES,
    RECORD,
    RECORD_NAMES,
    TRAINING,
    TRAINING_NAMES,
    VERIFICATION,
    VERIFICATION_NAMES,
)
from trainables.probe.config import ProbeConfig, iterations, metric_keys

__all__ = ["ProbeConfig", "train_probe"]

train_probe = register_module(
    "probe",
    config_cls=ProbeConfig,
    module="trainables.probe.loop",
    metric_keys=metric_keys,
    directions=VERIFICATION + PREDICTIONS + TRAINING + RECORD,
    names=VERIFICATION_NAMES + PREDICTIONS_NAMES + TRAINING_NAMES + RECORD_NAMES,
    iterations=iterations,
    smoke=dict(synth_classes=12, synth_domains=("visible", "low_quality"), epochs=5),
    description="frozen encoders (stand-in, timm, DINOv2, CLIP, SigLIP, ONNX) + linear / SupCon / zero-shot heads, "
    "ensembles; accuracy, macro-F1, prediction CV; shared embedding cache",
)
