"""``resume DIR``: continue a run whose driver stopped, from Tune's experiment state."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import UserError
from orchestrator.plan import TrialPlan, compile_plan, parse_overrides, resolve_trainable
from orchestrator.run import RunOptions, check_options, prepare_shared, ray_trials, start_grid, start_search
from orchestrator.spec import StudySpec
from orchestrator.studies import load_study
from reports.rundir.files import read_results, read_run_info, write_checked
from reports.rundir.names import RESULTS_FILE, RUN_FILE, SPEC_FILE, TUNE_DIR, UNFINISHED, group_column


def _resumed_options(run_dir: Path, meta: dict[str, Any], address: str | None, dashboard_host: str) -> RunOptions:
    """The options the run was started with (run.json), joined to this call's cluster address."""
    res = meta.get("resources", {})
    return RunOptions(
        study=str(run_dir / SPEC_FILE),
        out=run_dir,
        quick=bool(meta.get("quick")),
        set=list(meta.get("overrides", [])),
        address=address,
        dashboard_host=dashboard_host,
        cpus_per_trial=res.get("cpus_per_trial"),
        gpus_per_trial=res.get("gpus_per_trial"),
        max_concurrent=meta.get("max_concurrent"),
    )


def _note_resume(run_dir: Path, meta: dict[str, Any], trials_left: int) -> None:
    meta.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "trials_left": trials_left})
    meta["driver"] = {"pid": os.getpid(), "host": socket.gethostname()}
    write_checked(run_dir, RUN_FILE, json.dumps(meta, indent=2))


def _tune_state(run_dir: Path) -> bool:
    from ray import tune

    return tune.Tuner.can_restore(str((run_dir / TUNE_DIR).resolve()))


def resume_run(
    run_dir: Path, *, address: str | None = None, dashboard_host: str = "127.0.0.1", log: Callable[[str], None] = print
) -> Path:
    """``resume DIR``: continue a run whose driver stopped (killed, Ctrl-C, a lost machine,
    a full disk). Finished trials stay as they are; unfinished ones go on from their last
    checkpoint and pending ones start, through Tune's experiment state; the report is built
    at the end. A run stopped before any trial ran (while preparing, or as Ray started)
    starts its trials now; a finished run only gets its report rebuilt."""
    from orchestrator.results import ResultsTable

    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir}: not a run directory (run.json and spec.yaml are needed)")
    meta = read_run_info(run_dir)  # refused in one line when damaged, like results.csv below
    has_table = (run_dir / RESULTS_FILE).is_file()
    if has_table:
        read_results(run_dir, meta)
    if not (run_dir / SPEC_FILE).is_file():
        raise UserError(
            f"{run_dir}: {SPEC_FILE} is missing; it says what the run is, and nothing can resume without it"
        )
    spec, _ = load_study(str(run_dir / SPEC_FILE))
    opts = _resumed_options(run_dir, meta, address, dashboard_host)
    if spec.kind == "search":
        return _resume_search(run_dir, spec, meta, opts, has_table=has_table, log=log)
    plans = compile_plan(spec, quick=opts.quick, overrides=parse_overrides(opts.set), warn=lambda _: None)
    cpus, gpus = check_options(opts, spec)
    table = None
    if has_table:
        try:
            table = ResultsTable.load(run_dir, spec.name, plans, group_column=group_column(spec.kind))
        except ValueError as err:
            raise UserError(f"{run_dir}: {err}; spec.yaml and run.json no longer describe this run") from None
    if table is None or (all(r["status"] == "PENDING" for r in table.rows.values()) and not _tune_state(run_dir)):
        # stopped while preparing or before Tune began: nothing ran, so the trials start now
        _note_resume(run_dir, meta, len(plans))
        log(f"Resuming {spec.name!r} in {run_dir}: it stopped before any trial ran; starting its {len(plans)} trials")
        entry = resolve_trainable(spec)
        provenance = prepare_shared(
            entry, plans, run_dir, what="variant" if spec.kind == "ablation" else "point", log=log
        )
        return start_grid(run_dir, spec, entry, plans, provenance, opts, cpus, gpus, log)
    left = [r for r in table.rows.values() if r["status"] in UNFINISHED]
    from reports import build_report

    if left:
        from orchestrator.execute import execute

        if not _tune_state(run_dir):
            raise UserError(f"{run_dir}: Tune's experiment state ({TUNE_DIR}/) is missing; nothing to resume from")
        _note_resume(run_dir, meta, len(left))
        log(
            f"Resuming {spec.name!r} in {run_dir}: {len(plans) - len(left)} of {len(plans)} trials finished, "
            f"{len(left)} to go"
        )
        entry = resolve_trainable(spec)
        with ray_trials(opts, cpus, gpus, run_dir, log):
            execute(
                study=spec.name,
                trainable=entry.fn,
                plans=plans,
                table=table,
                run_dir=run_dir,
                metric=spec.metric,
                cpus_per_trial=cpus,
                gpus_per_trial=gpus,
                max_concurrent=opts.max_concurrent,
                max_failures=spec.max_failures,
                log=log,
                restore=True,
            )
    else:
        log(f"{run_dir}: every trial has finished; rebuilding the report")
    index = build_report(run_dir)
    log(f"Report: {index}")
    return run_dir


def _resume_search(
    run_dir: Path,
    spec: StudySpec,
    meta: dict[str, Any],
    opts: RunOptions,
    *,
    has_table: bool,
    log: Callable[[str], None],
) -> Path:
    """``resume`` of a search: Tune restores the sampler (every trial Optuna has seen, its
    random state, the count of trials generated), unfinished trials continue from their last
    checkpoint, and the remaining samples are drawn; ASHA's rungs are replayed from
    ``curves.csv``, and trials that waited at a rung wait again (``asha.PromotionASHA``).
    A search stopped before its first trial starts again from the base config."""
    from orchestrator.plan import compile_search
    from reports import build_report

    search = compile_search(spec, quick=opts.quick, overrides=parse_overrides(opts.set))
    cpus, gpus = check_options(opts, spec)
    df = read_results(run_dir, meta) if has_table else None
    if df is None or (df.empty and not _tune_state(run_dir)):
        _note_resume(run_dir, meta, search.num_samples)
        log(f"Resuming the search {spec.name!r} in {run_dir}: it stopped before any trial ran; starting it")
        entry = resolve_trainable(spec)
        base_plan = TrialPlan(0, "trial000", search.seed, search.base_config)
        provenance = prepare_shared(entry, [base_plan], run_dir, what="base", log=log)[0]
        return start_search(run_dir, spec, entry, search, provenance, opts, cpus, gpus, log)
    ended = int((~df["status"].isin(UNFINISHED)).sum())
    if ended < search.num_samples:
        from orchestrator.execute import execute_search

        if not _tune_state(run_dir):
            raise UserError(f"{run_dir}: Tune's experiment state ({TUNE_DIR}/) is missing; nothing to resume from")
        _note_resume(run_dir, meta, search.num_samples - ended)
        log(
            f"Resuming the search {spec.name!r} in {run_dir}: {ended} of {search.num_samples} trials ended, "
            f"{search.num_samples - ended} to go"
        )
        entry = resolve_trainable(spec)
        with ray_trials(opts, cpus, gpus, run_dir, log):
            execute_search(
                study=spec.name,
                entry=entry,
                search=search,
                run_dir=run_dir,
                metric=spec.metric,
                mode=spec.mode,
                provenance={},
                cpus_per_trial=cpus,
                gpus_per_trial=gpus,
                max_concurrent=opts.max_concurrent,
                max_failures=spec.max_failures,
                log=log,
                restore=True,
            )
    else:
        log(f"{run_dir}: every trial has ended; rebuilding the report")
    index = build_report(run_dir)
    log(f"Report: {index}")
    return run_dir
