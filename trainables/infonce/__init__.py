"""``infonce``: InfoNCE / SupCon fine-tuning on P x K batches, validated by gallery-probe
identification with optionally degraded probes (the EdgeFace post-mortem).

The Ray-specific part is ``train_infonce``; everything it calls lives in ``loop.py`` and
runs without Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainables._registry import register_trainable
from trainables.infonce.config import InfoNCEConfig

__all__ = ["InfoNCEConfig", "prepare", "train_infonce"]


def prepare(cfg: InfoNCEConfig, out_dir: Path) -> dict[str, str]:
    from trainables.infonce.loop import prepare as _prepare

    return _prepare(cfg, out_dir)


@register_trainable("infonce", config_cls=InfoNCEConfig, prepare=prepare,
                    description="InfoNCE / SupCon on P x K batches, temperature; gallery-probe identification "
                                "(rank-1, rank-5, mAP), degraded probes")
def train_infonce(config: dict[str, Any]) -> None:
    from trainables.infonce.loop import run
    from trainables.ray_glue import run_in_tune

    run_in_tune(run, InfoNCEConfig.model_validate(config))
