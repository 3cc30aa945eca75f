"""Saving and restoring a trial's whole training state in a checkpoint directory, and the
best epoch's model kept alongside it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from reports.rundir.evaluation import BEST_DIR, EVAL_FILE

STATE_FILE = "state.pt"


def save_state(directory: Path | str, state: dict[str, Any]) -> Path:
    path = Path(directory) / STATE_FILE
    torch.save(state, path)
    return path


def load_state(directory: Path | str) -> dict[str, Any]:
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no {STATE_FILE}")
    # weights_only: a checkpoint is data; loading one must not run code.
    return torch.load(path, map_location="cpu", weights_only=True)


def rng_state(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state(), "data": generator.get_state()}


def restore_rng(state: dict[str, torch.Tensor], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["data"])


#: The folder inside every checkpoint that holds the best epoch's model so far (and its
#: evaluation: ``reports.rundir.evaluation``, where the name is defined).
BEST_META = "best.json"


def parse_best_by(spec: str | None) -> tuple[str, str] | None:
    """``"val/heldout/acc:max"`` -> (metric, mode); None or "" -> None (no validation metric)."""
    if not spec:
        return None
    metric, _, mode = spec.rpartition(":")
    if not metric.startswith("val/") or mode not in ("max", "min"):
        raise ValueError(f"best epoch by {spec!r}: expected val/<metric>:max or :min (a validation metric)")
    return metric, mode


class BestEpoch:
    """A reporter that keeps, in every checkpoint it passes on, the model of the best epoch so
    far by a validation metric (``best/state.pt``: the trainable tensors and the epoch;
    ``best/best.json``: which epoch, by what, its value). Tune keeps only a trial's latest
    checkpoint, so the best epoch's model travels inside it: a trial stopped early (ASHA), or
    resumed (``restore_from``), still has it. Without a validation metric (``by`` None) the
    best is the last epoch, and ``best.json`` says so. Each report gains ``train/best_epoch``.

    The evaluation files travel the same way (``evaluation.npz``, ``reports.rundir.evaluation``):
    a checkpoint of an epoch that did not evaluate gets the latest evaluation's, and ``best/``
    the best epoch's, so that the trial's last checkpoint holds both whenever it stopped.

    Written here, not with Tune's ``CheckpointConfig(checkpoint_score_attribute=...)``: that
    keeps whole checkpoints (optimizer state included), needs the metric in every report
    (a trial that evaluates every few epochs has not), and works only inside Ray.
    """

    def __init__(self, report, by: tuple[str, str] | None, restore_from: Path | None = None) -> None:
        self.report, self.by = report, by
        self.state: dict[str, Any] | None = None
        self.meta: dict[str, Any] = {}
        self.reports = 0
        self.last_eval: bytes | None = None  # the latest evaluation.npz, and the best epoch's
        self.best_eval: bytes | None = None
        if restore_from is not None and (Path(restore_from) / BEST_DIR / STATE_FILE).is_file():
            self.state = load_state(Path(restore_from) / BEST_DIR)
            self.meta = json.loads((Path(restore_from) / BEST_DIR / BEST_META).read_text())
            self.reports = int(self.meta.get("reports", 0))
        if restore_from is not None:
            for attr, path in (("last_eval", Path(restore_from)), ("best_eval", Path(restore_from) / BEST_DIR)):
                if (path / EVAL_FILE).is_file():
                    setattr(self, attr, (path / EVAL_FILE).read_bytes())

    def _better(self, value: float) -> bool:
        if self.state is None or not math.isfinite(self.meta.get("value", math.nan)):
            return True
        return value > self.meta["value"] if self.by[1] == "max" else value < self.meta["value"]  # type: ignore[index]

    def __call__(self, metrics: dict[str, float], checkpoint_dir: Path) -> None:
        self.reports += 1
        epoch = int(metrics.get("train/epochs", self.reports))
        evaluated = Path(checkpoint_dir) / EVAL_FILE
        if evaluated.is_file():
            self.last_eval = evaluated.read_bytes()
        elif self.last_eval is not None:  # an epoch that did not evaluate: the latest evaluation
            evaluated.write_bytes(self.last_eval)
        if self.by is None:
            take, value = True, None
        else:
            metric, _ = self.by
            value = metrics.get(metric)
            take = value is not None and math.isfinite(value) and self._better(float(value))
        if take and (Path(checkpoint_dir) / STATE_FILE).is_file():  # a probe's checkpoint holds a head only
            state = load_state(checkpoint_dir)
            self.state = {"model": {k: v.clone() for k, v in state["model"].items()}, "epoch": epoch}
            self.best_eval = self.last_eval
            self.meta = {
                "epoch": epoch,
                "by": self.by[0] if self.by else None,
                "mode": self.by[1] if self.by else None,
                "value": float(value) if value is not None else None,
                "why": "the best epoch by the validation metric"
                if self.by
                else "the last epoch: the study has no validation metric to choose by",
            }
        if self.state is not None:
            best = Path(checkpoint_dir) / BEST_DIR
            best.mkdir(exist_ok=True)
            save_state(best, self.state)
            (best / BEST_META).write_text(json.dumps({**self.meta, "reports": self.reports}, indent=1))
            if self.best_eval is not None:
                (best / EVAL_FILE).write_bytes(self.best_eval)
            metrics = {**metrics, "train/best_epoch": float(self.meta["epoch"])}
        self.report(metrics, checkpoint_dir)


#: Temporary folders of trials: ``orchestrator-<purpose>-<pid>-<random>`` in the system's
#: temporary folder (``scratch_dir``).
SCRATCH = "orchestrator-"


def scratch_dir(purpose: str) -> tempfile.TemporaryDirectory:
    """A temporary folder of this process, named by ``purpose`` (letters) and the process id.
    A Tune trial that its scheduler stops (ASHA), or that a run leaves paused, ends with its
    worker process, before its ``with`` blocks can remove their folders: ``sweep_scratch``
    removes those of processes that are gone."""
    assert purpose.isalpha(), purpose
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH}{purpose}-{os.getpid()}-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the process is only looked up
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True


def sweep_scratch(root: Path | None = None) -> int:
    """Remove this user's trial folders (``scratch_dir``) whose process has ended; returns
    how many. Called when a trial starts and when a run's Ray session has closed."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    for d in root.glob(f"{SCRATCH}*-*-*"):
        m = re.fullmatch(rf"{re.escape(SCRATCH)}[A-Za-z]+-(\d+)-.+", d.name)
        try:
            mine = d.is_dir() and not d.is_symlink() and d.stat().st_uid == os.getuid()
        except OSError:
            continue
        if m is None or not mine or _alive(int(m.group(1))):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed
