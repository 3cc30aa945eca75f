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
    cfg = TripletConfig.model_validate(config)
    from trainables.ray_glue import diverged_stays_stopped, ray_reporter, restore_dir, set_threads_from_ray
    from trainables.triplet.loop import run

    set_threads_from_ray()
    with diverged_stays_stopped(), restore_dir() as previous:
        run(cfg, ray_reporter, restore_from=Path(previous) if previous else None)
