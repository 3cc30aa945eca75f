"""``infonce``: InfoNCE / SupCon fine-tuning on P x K batches, validated by gallery-probe
identification with optionally degraded probes (the EdgeFace post-mortem).

Preparation, training and evaluation live in ``loop.py`` and run without Ray.
"""

from trainables._registry import register_module
from trainables.infonce.config import InfoNCEConfig, metric_keys
from trainables.metric.config import iterations
from trainables.metrics import IDENTIFICATION, IDENTIFICATION_NAMES, RECORD, RECORD_NAMES, TRAINING, TRAINING_NAMES

__all__ = ["InfoNCEConfig", "train_infonce"]

train_infonce = register_module(
    "infonce",
    config_cls=InfoNCEConfig,
    module="trainables.infonce.loop",
    metric_keys=metric_keys,
    directions=IDENTIFICATION + TRAINING + RECORD,
    names=IDENTIFICATION_NAMES + TRAINING_NAMES + RECORD_NAMES,
    iterations=iterations,
    smoke=dict(
        synth_train_identities=24,
        synth_train_images=3,
        synth_eval_identities=20,
        synth_eval_images=3,
        synth_domains=("visible",),
        epochs=2,
        gallery_per_identity=2,
        probe_downscale=2,
    ),
    description="InfoNCE / SupCon on P x K batches, temperature; gallery-probe identification "
    "(rank-1, rank-5, mAP), degraded probes",
)
