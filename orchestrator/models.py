"""The fine-tuned model out of a run (``export``) and a folder embedded with it (``embed``).

Each trial's checkpoint holds, besides the state it resumes from, the model of its best epoch
by the study's validation metric (``trainables.checkpointing.BestEpoch``): ``export`` writes
that model (or, with ``last``, the last epoch's) in the backbone's own format through the
trainable's ``trained_backbone`` (``trainables.models.export``).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import UserError
from reports.rundir.names import CONFIGS_FILE

STATE = "state.pt"
#: Where ``export --adapter`` writes the LoRA alone, inside the exported folder.
ADAPTER_DIR = "peft-adapter"


def trial_checkpoint(run_dir: Path, study: str, trial: str) -> Path:
    """The trial's latest checkpoint (Tune keeps one per trial), in any experiment of the run."""
    from reports.rundir.names import trial_checkpoints

    found = [p for p in trial_checkpoints(run_dir, study, trial) if (p / STATE).is_file()]
    if not found:
        raise UserError(
            f"trial {trial!r} of {run_dir} has no checkpoint (it ended before its first epoch, or its "
            f"files were not kept); nothing to export"
        )
    return found[-1]


def trial_config(run_dir: Path, trial: str) -> dict[str, Any]:
    from reports.rundir.files import read_checked

    if not (run_dir / CONFIGS_FILE).is_file():
        raise UserError(f"{run_dir} is not a run directory of this tool (no {CONFIGS_FILE})")
    configs = json.loads(read_checked(run_dir, CONFIGS_FILE))
    if trial not in configs:
        names = ", ".join(sorted(configs)[:5])
        raise UserError(
            f"--trial {trial}: no such trial in {run_dir} (its trials: {names}{', ...' * (len(configs) > 5)})"
        )
    return dict(configs[trial])


def export_trial(
    run_dir: Path,
    trial: str,
    out: Path,
    *,
    adapter: bool = False,
    last: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Write trial ``trial``'s fine-tuned backbone to ``out`` (a new or empty folder), LoRA
    merged; with ``adapter``, its LoRA alone as a peft adapter of the pretrained backbone in
    ``out/peft-adapter``. Returns what was written (``EMBEDDING_FILE``'s content)."""
    from orchestrator.api import load_run
    from orchestrator.run_dirs import prepare_run_dir
    from trainables import get_trainable
    from trainables._registry import trainable_module
    from trainables.checkpointing import BEST_DIR, BEST_META, load_state
    from trainables.errors import TrainableInputError
    from trainables.models.backbone import load_backbone, quiet_transformers, resolve
    from trainables.models.export import EMBEDDING_FILE, export

    run_dir = Path(run_dir)
    config = trial_config(run_dir, trial)
    info = load_run(run_dir).info
    entry = get_trainable(info.trainable)
    module = trainable_module(entry.fn.__module__ + ".loop") if entry.keeps_best else None
    if module is None or not hasattr(module, "trained_backbone"):
        raise UserError(f"trainable {entry.name!r} trains no backbone (a frozen encoder's probe): nothing to export")
    checkpoint = trial_checkpoint(run_dir, info.study, trial)
    chosen = checkpoint / BEST_DIR
    if last or not (chosen / STATE).is_file():
        meta = {"epoch": int(load_state(checkpoint)["epoch"]), "by": None, "why": "the last epoch"}
        if not last:
            meta["why"] = "the last epoch: the run kept no best epoch (a run of an earlier version)"
        state = load_state(checkpoint)["model"]
    else:
        meta = json.loads((chosen / BEST_META).read_text())
        state = load_state(chosen)["model"]
    cfg = entry.config_cls.model_validate(config)
    new = prepare_run_dir(out, what=f"--out {out}", claim=EMBEDDING_FILE)
    try:
        trained = module.trained_backbone(cfg, state)
        pristine = load_backbone(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed)
        source = resolve(cfg.backbone, resolution=cfg.image_size, data_seed=cfg.data_seed).path
        written = {
            "run": str(run_dir.resolve()),
            "trial": trial,
            "epoch": meta["epoch"],
            "chosen_by": meta.get("by"),
            "value": meta.get("value"),
            "why": meta["why"],
            "backbone": cfg.backbone,
            "image_size": cfg.image_size,
            "flip_test": bool(getattr(cfg, "flip_test", True)),
        }
        with quiet_transformers(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecation notes while saving
            fmt = export(
                trained,
                pristine,
                Path(source) if source else None,
                new.path,
                embedding=written,
                adapter=new.path / ADAPTER_DIR if adapter else None,
                rank=getattr(cfg, "lora_rank", 8),
                alpha=getattr(cfg, "lora_alpha", 16.0),
            )
    except TrainableInputError as err:
        new.discard()
        raise UserError(str(err)) from None
    except BaseException:
        new.discard()
        raise
    log(
        f"exported trial {trial} (epoch {meta['epoch']}: {meta['why']}"
        + (f", {meta['by']} = {meta['value']:.4f}" if meta.get("by") and meta.get("value") is not None else "")
        + f") to {new.path} ({fmt} format, LoRA merged)"
        + (f"; its LoRA alone, as a peft adapter, in {new.path / ADAPTER_DIR}" if adapter else "")
    )
    return {**written, "format": fmt}


def embed(model_dir: Path, images: Path, out: Path, *, log: Callable[[str], None] = print) -> int:
    """Embed every image under ``images`` with the model in ``model_dir`` into ``out`` (.npz)."""
    import numpy as np

    from trainables.errors import TrainableInputError
    from trainables.models.export import embed_folder

    if not Path(model_dir).is_dir():
        raise UserError(f"{model_dir} is not a directory (an exported model: python -m orchestrator export)")
    if not Path(images).is_dir():
        raise UserError(f"{images} is not a directory of images")
    if out.suffix != ".npz":
        raise UserError(f"--out {out}: expected a .npz file name")
    if out.exists():
        raise UserError(f"--out {out} exists; nothing was overwritten: choose another name")
    try:
        found = embed_folder(Path(model_dir), Path(images), log=log)
    except TrainableInputError as err:
        raise UserError(str(err)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **found)
    os.replace(tmp, out)
    n, d = found["embeddings"].shape
    log(f"{n} images embedded ({d} dimensions, L2-normalised) into {out}")
    return n
