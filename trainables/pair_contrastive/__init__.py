"""``pair_contrastive``: contrastive fine-tuning from same/different feedback pairs (the
MagFace note), split so that nothing is tested on what it was trained on.

The Ray-specific part is ``train_pair_contrastive``; everything it calls lives in
``loop.py`` and runs without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables._registry import register_trainable
from trainables.pair_contrastive.config import PairContrastiveConfig

__all__ = ["PairContrastiveConfig", "prepare", "train_pair_contrastive"]


def prepare(cfg: PairContrastiveConfig, out_dir: Path) -> dict[str, str]:
    from trainables.pair_contrastive.loop import prepare as _prepare

    return _prepare(cfg, out_dir)


@register_trainable("pair_contrastive", config_cls=PairContrastiveConfig, prepare=prepare,
                    description="contrastive loss on same/different feedback pairs; accuracy, precision, recall, "
                                "F1 at the validation threshold, ROC AUC")
def train_pair_contrastive(config: dict[str, Any]) -> None:
    from trainables.pair_contrastive.loop import run
    from trainables.ray_glue import run_in_tune

    run_in_tune(run, PairContrastiveConfig.model_validate(config))
