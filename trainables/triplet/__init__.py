"""``triplet``: fine-tuning with triplets whose hard negatives are twins (the AdaFace plan).

The Ray-specific part is ``train_triplet``; everything it calls lives in ``loop.py`` and
runs without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables._registry import register_trainable
from trainables.triplet.config import TripletConfig

__all__ = ["TripletConfig", "prepare", "train_triplet"]


def prepare(cfg: TripletConfig, out_dir: Path) -> dict[str, str]:
    from trainables.triplet.loop import prepare as _prepare

    return _prepare(cfg, out_dir)


@register_trainable("triplet", config_cls=TripletConfig, prepare=prepare,
                    description="triplet fine-tuning, twin hard negatives, mining level; twin verification "
                                "(EER, TAR@FAR, accuracy at the validation threshold)")
def train_triplet(config: dict[str, Any]) -> None:
    from trainables.triplet.loop import run
    from trainables.ray_glue import run_in_tune

    run_in_tune(run, TripletConfig.model_validate(config))
