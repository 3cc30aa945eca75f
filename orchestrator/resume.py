"""``resume DIR``: continue a run whose driver stopped, from Tune's experiment state (how,
is the study kind's: ``orchestrator.kinds.base.StudyKind.resume``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator.errors import UserError
from orchestrator.launch import RunOptions, check_connection
from orchestrator.studies import load_study
from reports.rundir.files import read_results, read_run_info
from reports.rundir.info import RunInfo
from reports.rundir.lock import run_lock
from reports.rundir.names import RESULTS_FILE, RUN_FILE, spec_file


def _resumed_options(run_dir: Path, meta: RunInfo, address: str | None, dashboard_host: str) -> RunOptions:
    """The options the run was started with (run.json), joined to this call's cluster address."""
    return RunOptions(
        study=str(run_dir / spec_file(meta)),
        out=run_dir,
        quick=meta.quick,
        set=list(meta.overrides),
        address=address,
        dashboard_host=dashboard_host,
        cpus_per_trial=meta.resources.cpus_per_trial,
        gpus_per_trial=meta.resources.gpus_per_trial,
        max_concurrent=meta.max_concurrent,
        # an extended run's seeds are no longer (all) its spec's
        seeds=list(meta.seeds or []) if meta.extensions else None,
    )


def resume_run(
    run_dir: Path, *, address: str | None = None, dashboard_host: str = "127.0.0.1", log: Callable[[str], None] = print
) -> Path:
    """``resume DIR``: continue a run whose driver stopped (killed, Ctrl-C, a lost machine,
    a full disk). Finished trials stay as they are; unfinished ones go on from their last
    checkpoint and pending ones start, through Tune's experiment state; the report is built
    at the end. A run stopped before any trial ran (while preparing, or as Ray started)
    starts its trials now; a finished run only gets its report rebuilt."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (run.json and spec.yaml are needed)")
    read_run_info(run_dir)  # refused in one line when damaged, like results.csv below
    check_connection(address, dashboard_host)  # before the lock: a refused command leaves no file
    with run_lock(run_dir):  # a driver still at work (or any other writer) holds it: refused
        return _resume_locked(run_dir, address, dashboard_host, log)


def _resume_locked(run_dir: Path, address: str | None, dashboard_host: str, log: Callable[[str], None]) -> Path:
    from orchestrator.kinds import kind_of

    meta = read_run_info(run_dir)
    has_table = (run_dir / RESULTS_FILE).is_file()
    if has_table:
        read_results(run_dir, meta)
    if not (run_dir / spec_file(meta)).is_file():
        raise UserError(
            f"{run_dir}: {spec_file(meta)} is missing; it says what the run is, and nothing can resume without it"
        )
    spec, _ = load_study(str(run_dir / spec_file(meta)))
    opts = _resumed_options(run_dir, meta, address, dashboard_host)
    return kind_of(spec.kind).resume(run_dir, spec, meta, opts, has_table=has_table, log=log)
