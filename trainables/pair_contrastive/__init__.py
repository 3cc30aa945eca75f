"""``pair_contrastive``: contrastive fine-tuning from same/different feedback pairs (the
MagFace note), split so that nothing is tested on what it was trained on.

Preparation, training and evaluation live in ``loop.py`` and run without Ray.
"""

from trainables._registry import register_module
from trainables.metric.config import iterations
from trainables.metrics import RECORD, RECORD_NAMES, TRAINING, TRAINING_NAMES, VERIFICATION, VERIFICATION_NAMES
from trainables.pair_contrastive.config import PairContrastiveConfig, metric_keys

__all__ = ["PairContrastiveConfig", "train_pair_contrastive"]

train_pair_contrastive = register_module(
    "pair_contrastive",
    config_cls=PairContrastiveConfig,
    module="trainables.pair_contrastive.loop",
    metric_keys=metric_keys,
    directions=VERIFICATION + TRAINING + RECORD,
    names=VERIFICATION_NAMES + TRAINING_NAMES + RECORD_NAMES,
    iterations=iterations,
    smoke=dict(
        synth_train_identities=24,
        synth_train_images=3,
        synth_eval_identities=20,
        synth_eval_images=3,
        synth_domains=("visible",),
        epochs=2,
    ),
    description="contrastive loss on same/different feedback pairs; accuracy, precision, recall, "
    "F1 at the validation threshold, ROC AUC",
)
