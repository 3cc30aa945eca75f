"""What every trainable provides, written down once (``register_module`` checks it).

A trainable is a package whose Ray-free module (``trainables/<name>/loop.py``) has the two
functions below; ``trainables.ray_glue`` runs them in a Tune trial and
``orchestrator.run.prepare_shared`` calls ``prepare`` once per distinct config, in the driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

Reporter = Callable[[dict[str, float], Path], None]
"""``report(metrics, checkpoint_dir)``: called once per epoch (per evaluation for a trainable
that evaluates once) with namespaced metrics (``train/``, ``val/``, ``eval/``) and a directory
holding the checkpoint to resume from; the directory is gone after the call."""


@runtime_checkable
class TrainableModule(Protocol):
    """The module a trainable registers (``register_module(..., module="trainables.x.loop")``)."""

    def prepare(self, cfg: Any, out_dir: Path) -> dict[str, str]:
        """Build what every trial shares (data checks, caches, a backbone) once, leave files
        for the report in ``out_dir`` (the run directory), return provenance columns."""
        ...

    def run(self, cfg: Any, report: Reporter, *, restore_from: Path | None = None, out_dir: Path | None = None) -> None:
        """Train and evaluate one trial, calling ``report`` once per epoch; resume from the
        checkpoint directory ``restore_from`` when given; files written to ``out_dir`` are
        kept in the trial's directory of the run."""
        ...
