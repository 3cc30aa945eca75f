"""``triplet``: fine-tuning with triplets whose hard negatives are twins (the AdaFace plan).

Preparation, training and evaluation live in ``loop.py`` and run without Ray.
"""

from trainables._registry import register_module
from trainables.metric.config import iterations
from trainables.metrics import RECORD, RECORD_NAMES, TRAINING, TRAINING_NAMES, VERIFICATION, VERIFICATION_NAMES
from trainables.triplet.config import TripletConfig, metric_keys

__all__ = ["TripletConfig", "train_triplet"]

train_triplet = register_module(
    "triplet",
    config_cls=TripletConfig,
    module="trainables.triplet.loop",
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
        batch_mining="semihard",
    ),
    description="triplet fine-tuning, twin hard negatives, mining level; twin verification "
    "(EER, TAR@FAR, accuracy at the validation threshold)",
)
