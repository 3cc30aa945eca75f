"""``run STUDY``: validate, prepare shared assets, run the trials on Ray, write the report."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from orchestrator.errors import UserError
from orchestrator.plan import TrialPlan, compile_plan, parse_overrides, resolve_trainable, selects
from orchestrator.provenance import run_provenance
from orchestrator.results import ResultsTable
from orchestrator.run_dirs import default_run_dir, prepare_run_dir
from orchestrator.schedulers import scheduler_of
from orchestrator.spec import BASE_POINT, StudySpec
from orchestrator.studies import load_study
from reports.rundir.files import read_run_info, write_checked
from reports.rundir.names import RUN_FILE, SPEC_FILE, group_column
from trainables.errors import TrainableInputError

CONFIRM = "confirm"


@dataclass(frozen=True)
class RunOptions:
    """Command-line options of ``run`` (see ``cli.py`` for their help)."""

    study: str
    out: Path | None = None
    quick: bool = False
    set: list[str] = field(default_factory=list)
    address: str | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float | None = None
    max_concurrent: int | None = None
    dashboard_host: str = "127.0.0.1"
    from_dir: Path | None = None
    """``run confirm`` only: the finished search to confirm."""
    top_k: int | None = None
    """``run confirm`` only: rerun this many of the search's best configs (default: the spec's)."""
    seeds: list[int] | None = None
    """``run confirm`` only: the seeds of the reruns (default: the spec's)."""


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """Refuse, in one line and within ``timeout`` seconds, a cluster address where nothing
    listens: a plain TCP connect to exactly the host and port given, before Ray is handed the
    address (Ray retries for minutes, and may rewrite a loopback address to this machine's
    external one and connect there instead)."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"--address {address!r}: expected HOST:PORT (e.g. 127.0.0.2:6379, the head's GCS port)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as err:
        why = "timed out" if isinstance(err, TimeoutError) else (err.strerror or str(err))
        raise UserError(
            f"--address {address}: nothing answers at {host}:{port} ({why}); start the cluster's head "
            "there (ray start --head) or give its address"
        ) from None


def check_options(opts: RunOptions, spec: StudySpec) -> tuple[float, float]:
    cpus = spec.resources.cpus_per_trial if opts.cpus_per_trial is None else opts.cpus_per_trial
    gpus = spec.resources.gpus_per_trial if opts.gpus_per_trial is None else opts.gpus_per_trial
    if cpus <= 0:
        raise UserError(f"--cpus-per-trial must be > 0, got {cpus:g}")
    if gpus < 0 or (gpus > 1 and gpus != int(gpus)):
        raise UserError(f"--gpus-per-trial must be a fraction in [0, 1] or a whole number, got {gpus:g}")
    if opts.max_concurrent is not None and opts.max_concurrent < 1:
        raise UserError(f"--max-concurrent must be >= 1, got {opts.max_concurrent}")
    check_address(opts.address)
    if opts.dashboard_host != "localhost":
        try:
            ipaddress.ip_address(opts.dashboard_host)
        except ValueError:
            raise UserError(
                f"--dashboard-host {opts.dashboard_host!r}: expected an IP address "
                f"such as 127.0.0.1 (the default) or 0.0.0.0"
            ) from None
    if gpus > 0 and not (opts.address or os.environ.get("RAY_ADDRESS")):
        import torch

        available = torch.cuda.device_count()
        if available == 0 or gpus > available:
            raise UserError(
                f"--gpus-per-trial {gpus:g} asks for a GPU, but this machine has "
                f"{available} (use --gpus-per-trial 0 or --address a cluster with GPUs)"
            )
    return cpus, gpus


def run_study(opts: RunOptions, log: Callable[[str], None] = print) -> Path:
    """Everything ``python -m orchestrator run`` does; returns the run directory."""
    if opts.study == CONFIRM:
        from orchestrator.confirm import confirm_study

        spec, text, extra = confirm_study(opts, log)
        return run_grid(spec, text, opts, log, info=extra)
    if opts.from_dir is not None:
        raise UserError(f"--from belongs to `run {CONFIRM}` (got study {opts.study!r})")
    spec, text = load_study(opts.study)
    if spec.kind == "search":
        return run_search(spec, text, resolve_trainable(spec), opts, log)
    return run_grid(spec, text, opts, log)


def run_grid(
    spec: StudySpec, text: str, opts: RunOptions, log: Callable[[str], None], info: dict[str, Any] | None = None
) -> Path:
    """An ablation or sensitivity study (or a confirm run, an ablation made from a search):
    every group x every seed, to completion. ``info`` adds to (and overrides) ``run.json``."""
    entry = resolve_trainable(spec)
    plans = compile_plan(spec, quick=opts.quick, overrides=parse_overrides(opts.set), warn=log)
    cpus, gpus = check_options(opts, spec)
    new = prepare_run_dir(
        Path(opts.out) if opts.out else default_run_dir(spec.name, opts.quick), default=opts.out is None
    )
    run_dir = new.path
    try:
        (run_dir / SPEC_FILE).write_text(text)
        write_run_info(run_dir, spec, plans, opts, cpus=cpus, gpus=gpus, extra=info)
        what = "variants" if spec.kind == "ablation" else "points"
        log(
            f"Study {spec.name!r}{' (quick)' if opts.quick else ''}: {len(plans)} trials "
            f"({len({p.variant for p in plans})} {what} x {len({p.seed for p in plans})} seeds); "
            f"run directory {run_dir}"
        )
        provenance = prepare_shared(entry, plans, run_dir, what=what[:-1], log=log)
    except UserError:
        new.discard()  # nothing was computed yet: leave no half-made run directory behind
        raise
    return start_grid(run_dir, spec, entry, plans, provenance, opts, cpus, gpus, log)


def start_grid(
    run_dir: Path,
    spec: StudySpec,
    entry,
    plans: list[TrialPlan],
    provenance: dict[int, dict[str, str]],
    opts: RunOptions,
    cpus: float,
    gpus: float,
    log: Callable[[str], None],
) -> Path:
    """Plan the table (every trial PENDING), run every trial from its start, build the report."""
    table = ResultsTable(run_dir, spec.name, plans, provenance, group_column=group_column(spec.kind))
    table.write()

    from orchestrator.execute import execute

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
            max_concurrent=opts.max_concurrent or spec.max_concurrent,
            max_failures=spec.max_failures,
            log=log,
        )

    from reports import build_report

    index = build_report(run_dir)
    log(f"Report: {index}")
    return run_dir


@contextmanager
def ray_trials(opts: RunOptions, cpus: float, gpus: float, run_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """A Ray session with room for one trial's resources, whose nodes all see the run
    directory and the data cache; logs how long the trials took."""
    from orchestrator.ray_runtime import check_shared_paths, ray_session
    from trainables.data.synthfaces import default_cache_dir

    with ray_session(address=opts.address, dashboard_host=opts.dashboard_host, log=log) as ray_info:
        nodes = check_shared_paths({"run directory": Path(run_dir), "data cache": default_cache_dir()})
        if nodes > 1:
            log(f"Ray cluster of {nodes} nodes: each sees the run directory and the data cache")
        if cpus > ray_info.cpus:
            raise UserError(f"--cpus-per-trial {cpus:g} exceeds the {ray_info.cpus:g} CPUs of the Ray cluster")
        if gpus > ray_info.gpus:
            raise UserError(f"--gpus-per-trial {gpus:g} exceeds the {ray_info.gpus:g} GPUs of the Ray cluster")
        started = time.perf_counter()
        yield
        log(f"trials done in {time.perf_counter() - started:.0f} s")


def run_search(spec, text: str, entry, opts: RunOptions, log: Callable[[str], None]) -> Path:
    """``run`` for a search study: rows are added as the sampler proposes trials."""
    from orchestrator.plan import compile_search

    search = compile_search(spec, quick=opts.quick, overrides=parse_overrides(opts.set))
    cpus, gpus = check_options(opts, spec)
    new = prepare_run_dir(
        Path(opts.out) if opts.out else default_run_dir(spec.name, opts.quick), default=opts.out is None
    )
    run_dir = new.path
    base_plan = TrialPlan(0, "trial000", search.seed, search.base_config)
    try:
        (run_dir / SPEC_FILE).write_text(text)
        write_run_info(run_dir, spec, [base_plan], opts, cpus=cpus, gpus=gpus)
        info = read_run_info(run_dir)
        info.update(
            space=dict(spec.space),
            num_samples=search.num_samples,
            top_k=spec.top_k,
            scheduler={
                "type": search.scheduler,
                "max_t": search.max_t,
                "grace_period": search.grace_period,
                "reduction_factor": search.reduction_factor,
                "rungs": scheduler_of(search).rungs(search),
            },
        )
        write_checked(run_dir, RUN_FILE, json.dumps(info, indent=2))
        log(
            f"Study {spec.name!r}{' (quick)' if opts.quick else ''}: search, {search.num_samples} trials "
            f"(Optuna TPE, the base config first; {scheduler_of(search).describe(search)}); run directory {run_dir}"
        )
        provenance = prepare_shared(entry, [base_plan], run_dir, what="base", log=log)[0]
    except UserError:
        new.discard()
        raise
    return start_search(run_dir, spec, entry, search, provenance, opts, cpus, gpus, log)


def start_search(
    run_dir: Path,
    spec: StudySpec,
    entry,
    search,
    provenance: dict[str, str],
    opts: RunOptions,
    cpus: float,
    gpus: float,
    log: Callable[[str], None],
) -> Path:
    """An empty table (rows come as the sampler proposes trials), the search, the report."""
    table = ResultsTable(run_dir, spec.name, [], {}, group_column=group_column(spec.kind))
    table.write()

    from orchestrator.execute import execute_search

    with ray_trials(opts, cpus, gpus, run_dir, log):
        execute_search(
            study=spec.name,
            entry=entry,
            search=search,
            run_dir=run_dir,
            metric=spec.metric,
            mode=spec.mode,
            provenance=provenance,
            cpus_per_trial=cpus,
            gpus_per_trial=gpus,
            max_concurrent=opts.max_concurrent or spec.max_concurrent,
            max_failures=spec.max_failures,
            log=log,
        )

    from reports import build_report

    index = build_report(run_dir)
    log(f"Report: {index}")
    return run_dir


def prepare_shared(
    entry, plans: list[TrialPlan], run_dir: Path, *, what: str = "variant", log: Callable[[str], None] = print
) -> dict[int, dict[str, str]]:
    """Call the trainable's ``prepare`` once per distinct config (seeds aside), in this process."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    by_hash: dict[str, dict[str, str]] = {}
    out: dict[int, dict[str, str]] = {}
    common = run_provenance()
    for p in plans:
        if p.config_hash not in by_hash:
            try:
                by_hash[p.config_hash] = entry.prepare(entry.config_cls.model_validate(p.config), run_dir)
            except TrainableInputError as err:
                raise UserError(f"{what} {p.variant!r}: {err}") from None
            skipped = int(by_hash[p.config_hash].get("skipped_images") or 0)
            if skipped:
                log(
                    f"{what} {p.variant!r}: skipped {skipped} unreadable training images "
                    f"(listed in {Path(run_dir) / 'skipped_images.csv'})"
                )
        out[p.index] = {**common, **by_hash[p.config_hash]}
    return out


def write_run_info(
    run_dir: Path,
    spec: StudySpec,
    plans: list[TrialPlan],
    opts: RunOptions,
    *,
    cpus: float,
    gpus: float,
    extra: dict[str, Any] | None = None,
) -> None:
    """``run.json``: what the report needs to know about the study, without importing it."""
    entry = resolve_trainable(spec)
    info: dict[str, Any] = {
        "study": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "trainable": spec.trainable,
        "metric": spec.metric,
        "mode": spec.mode,
        "report_metrics": spec.report_metrics(),
        "test": spec.report.test,
        "variants": list(dict.fromkeys(p.variant for p in plans)),
        "seeds": sorted({p.seed for p in plans}),
        "quick": opts.quick,
        "overrides": list(opts.set),
        "resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus},
        "command": sys.argv,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "driver": {"pid": os.getpid(), "host": socket.gethostname()},  # for `status`: is the run still going?
        "max_concurrent": opts.max_concurrent or spec.max_concurrent,
        # facts the report states, recorded rather than guessed from the files present
        "group_column": group_column(spec.kind),
        "synthetic": all(entry.config_cls.model_validate(p.config).synthetic_data for p in plans),
        # the selection rule (DESIGN.md): what this study chooses by, if anything
        "recommend": spec.report.recommend,
        "selects": selects(spec),
    }
    if spec.kind == "ablation":
        info["reference"] = spec.reference
    elif spec.kind == "sensitivity":
        base = {**spec.base, **(spec.quick.base if opts.quick else {}), **parse_overrides(opts.set)}
        axes: dict[str, list] = {}
        for point in spec.points(quick=opts.quick, base=base):
            axes.setdefault(point.axis, []).append(
                {"label": point.label, "values": point.values, "point": point.group, "base": point.is_base}
            )
        info["axes"] = axes
        info["reference"] = BASE_POINT
    info.update(extra or {})
    write_checked(run_dir, RUN_FILE, json.dumps(info, indent=2))
