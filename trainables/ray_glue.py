"""The few lines that connect a Ray-free training loop to a Ray Tune trial."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import ray
import torch
from ray import tune

from trainables.checkpointing import BestEpoch, parse_best_by, scratch_dir, sweep_scratch
from trainables.errors import TrialDiverged

DIVERGED_MARKER = "DIVERGED"


def ray_reporter(metrics: dict[str, float], checkpoint_dir: Path) -> None:
    """Report to Tune, with the id of the Ray node the trial runs on (``results.csv``
    keeps it: on a cluster, which node ran which trial)."""
    metrics = {**metrics, "node_id": ray.get_runtime_context().get_node_id()}
    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))


@contextlib.contextmanager
def restore_dir() -> Iterator[str | None]:
    """The directory of the trial's last checkpoint, when Tune restores it, else None."""
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        yield None
        return
    with checkpoint.as_directory() as d:
        yield d


def set_threads_from_ray() -> None:
    """Use as many torch threads as CPUs Ray gave this trial (at least one)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(int(cpus), 1))


def run_in_tune(run, cfg, best_by: str | None = None) -> None:
    """Run a trainable's Ray-free ``run`` (``trainables.protocol.TrainableModule``) as a Tune
    trial: torch threads from the trial's CPUs, reports (and checkpoints) to Tune, restored
    from Tune's checkpoint when the trial is resumed, not retried once it diverged. Files
    ``run`` writes to ``out_dir`` are copied into the trial's directory in the run's storage
    (``<run>/tune/<trial>/``) when it returns.
    """
    set_threads_from_ray()
    sweep_scratch()  # what trials stopped on this machine before left behind
    with diverged_stays_stopped(), restore_dir() as previous:
        restore = Path(previous) if previous else None
        with scratch_dir("trial") as out:
            report = BestEpoch(ray_reporter, parse_best_by(best_by), restore)
            run(cfg, report, restore_from=restore, out_dir=Path(out))
            if any(Path(out).iterdir()):
                persist_to_trial_dir(Path(out))


def persist_to_trial_dir(local: Path) -> None:
    """Copy the files of ``local`` into the trial's directory in Tune's storage (a local path,
    a shared file system or cloud storage alike: through Tune's own pyarrow file system).
    Tune's ``get_trial_dir()`` is a staging directory under /tmp/ray, not the run directory."""
    import pyarrow.fs

    storage = tune.get_context().get_storage()
    storage.storage_filesystem.create_dir(storage.trial_fs_path, recursive=True)
    pyarrow.fs.copy_files(str(local), storage.trial_fs_path, destination_filesystem=storage.storage_filesystem)


@contextlib.contextmanager
def diverged_stays_stopped() -> Iterator[None]:
    """A trial that diverged is not retried: Tune's ``max_failures`` restarts any failed
    trial from its last checkpoint, where the same state and RNG would diverge again. The
    first divergence leaves a marker in the trial's directory; a retry finds it and stops."""
    marker = Path(tune.get_context().get_trial_dir()) / DIVERGED_MARKER
    if marker.is_file():
        raise TrialDiverged(f"{marker.read_text()} (not retried: it diverged before)")
    try:
        yield
    except TrialDiverged as err:
        marker.write_text(str(err))
        raise
