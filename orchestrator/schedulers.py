"""The schedulers a search can use, selected by the spec's ``scheduler.type``.

Each entry builds the Tune scheduler for a compiled search and says at which iterations it
compares trials (its rungs, recorded in run.json for the figures; none for FIFO). Adding
one: a builder here, its ``type`` in ``orchestrator.kinds.search.SchedulerSpec``, and whatever
fields it needs there (Syne Tune keeps its rung systems behind one interface the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from reports.rundir.names import rung_milestones


@dataclass(frozen=True)
class Scheduler:
    """A way to schedule a search's trials."""

    build: Callable[..., Any]
    """``build(run_dir, search, metric=, mode=, max_concurrent=, replay=)`` -> a Tune scheduler
    (``replay``: it starts from what the run's trials reported so far, an extension's case)."""
    rungs: Callable[[Any], list[int]]
    """``rungs(search)``: the iterations at which trials are compared and may be stopped."""
    stops_early: bool
    describe: Callable[[Any], str]


def _asha(run_dir: Path, search, *, metric: str, mode: str, max_concurrent: int | None, replay: bool = False):
    from orchestrator.asha import PromotionASHA

    return PromotionASHA(
        run_dir,
        metric=metric,
        mode=mode,
        max_t=search.max_t,
        grace_period=search.grace_period,
        reduction_factor=search.reduction_factor,
        max_concurrent=max_concurrent,
        replay=replay,
    )


def _fifo(run_dir: Path, search, *, metric: str, mode: str, max_concurrent: int | None, replay: bool = False):
    from ray.tune.schedulers import FIFOScheduler

    return FIFOScheduler()


SCHEDULERS: dict[str, Scheduler] = {
    "asha": Scheduler(
        _asha,
        lambda s: rung_milestones(grace_period=s.grace_period, reduction_factor=s.reduction_factor, max_t=s.max_t),
        True,
        lambda s: f"ASHA max_t={s.max_t}, grace={s.grace_period}, reduction={s.reduction_factor:g}",
    ),
    "fifo": Scheduler(_fifo, lambda s: [], False, lambda s: f"FIFO: every trial runs {s.max_t} iterations"),
}


def scheduler_of(search) -> Scheduler:
    return SCHEDULERS[search.scheduler]
