"""What every study kind's start and resume share: the run's options and their checks, a
Ray session for the trials, the trainable's shared preparation, ``run.json``."""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from orchestrator.errors import UserError
from orchestrator.plan import TrialPlan, best_epoch_by, resolve_trainable
from orchestrator.provenance import run_provenance
from orchestrator.spec import StudySpec
from reports.rundir.info import Driver, Resumed, RunInfo
from reports.rundir.info import write_run_info as write_info
from reports.rundir.names import TUNE_DIR, run_label
from trainables.errors import TrainableInputError


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
    track: list[str] | None = None
    """The experiment trackers to write to (default: the spec's ``tracking.backends``)."""


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


#: The default of ``--max-concurrent`` on a machine that several runs share (a CI box, a test
#: session running studies side by side): like the flag, it takes the place of the spec's.
MAX_CONCURRENT_ENV = "ORCHESTRATOR_MAX_CONCURRENT"


def max_concurrent(opts: RunOptions, spec: StudySpec) -> int | None:
    """How many trials of the run may run at once: ``--max-concurrent``, else
    ``ORCHESTRATOR_MAX_CONCURRENT``, else the spec's ``max_concurrent`` (None: as many as
    the cluster's resources allow). Refused in one line when the variable is not a count."""
    if opts.max_concurrent is not None:
        return opts.max_concurrent
    text = os.environ.get(MAX_CONCURRENT_ENV, "").strip()
    if text:
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"{MAX_CONCURRENT_ENV}={text!r}: expected a whole number >= 1 (or unset it)")
        return int(text)
    return spec.max_concurrent


def check_connection(address: str | None, dashboard_host: str) -> None:
    """``--address`` (a cluster that answers) and ``--dashboard-host`` (an IP address): what
    ``resume`` and ``extend`` can check before they take the run's lock."""
    check_address(address)
    if dashboard_host != "localhost":
        try:
            ipaddress.ip_address(dashboard_host)
        except ValueError:
            raise UserError(
                f"--dashboard-host {dashboard_host!r}: expected an IP address such as 127.0.0.1 (the default) or 0.0.0.0"
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
    max_concurrent(opts, spec)  # the environment's default, refused here when it is not a count
    check_trackers(tracking_of(spec, opts))
    check_connection(opts.address, opts.dashboard_host)
    if gpus > 0 and not (opts.address or os.environ.get("RAY_ADDRESS")):
        import torch

        available = torch.cuda.device_count()
        if available == 0 or gpus > available:
            raise UserError(
                f"--gpus-per-trial {gpus:g} asks for a GPU, but this machine has "
                f"{available} (use --gpus-per-trial 0 or --address a cluster with GPUs)"
            )
    return cpus, gpus


@contextmanager
def ray_trials(opts: RunOptions, cpus: float, gpus: float, run_dir: Path, log: Callable[[str], None]) -> Iterator[None]:
    """A Ray session with room for one trial's resources, whose nodes all see the run
    directory and the data cache; logs how long the trials took."""
    from orchestrator.ray_runtime import check_shared_paths, ray_session
    from trainables.data.synthfaces import default_cache_dir

    try:
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
    finally:
        from trainables.checkpointing import sweep_scratch

        sweep_scratch()  # the folders of trials stopped on this machine (their processes have ended)


def prepare_shared(
    entry, plans: list[TrialPlan], run_dir: Path, *, what: str = "variant", log: Callable[[str], None] = print
) -> dict[int, dict[str, str]]:
    """Call the trainable's ``prepare`` once per distinct config (seeds aside), in this process."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    by_hash: dict[str, dict[str, str]] = {}
    out: dict[int, dict[str, str]] = {}
    common = run_provenance()
    refused: dict[str, str] = {}  # every group that cannot run, not only the first: a study mixing them says which
    for p in plans:
        if p.variant in refused:
            continue
        if p.config_hash not in by_hash:
            try:
                by_hash[p.config_hash] = entry.prepare(entry.config_cls.model_validate(p.config), run_dir)
            except TrainableInputError as err:
                refused[p.variant] = str(err)
                continue
            skipped = int(by_hash[p.config_hash].get("skipped_images") or 0)
            if skipped:
                log(
                    f"{what} {p.variant!r}: skipped {skipped} unreadable training images "
                    f"(listed in {Path(run_dir) / 'skipped_images.csv'})"
                )
        out[p.index] = {**common, **by_hash[p.config_hash]}
    if refused:
        (first, why), others = next(iter(refused.items())), list(refused)[1:]
        also = f" (refused too: {what}s {', '.join(map(repr, others))})" if others else ""
        raise UserError(f"{what} {first!r}: {why}{also}")
    return out


def spec_facts(spec: StudySpec, plans: list[TrialPlan]) -> dict[str, Any]:
    """What ``run.json`` records of the spec and its trials (``extend`` records them again
    for the extended spec)."""
    entry = resolve_trainable(spec)
    return {
        "title": spec.title,
        "description": spec.description,
        "metric": spec.metric,
        "mode": spec.mode,
        "report_metrics": spec.report_metrics(),
        "test": spec.report.test,
        "family": spec.report.family,
        "main_metrics": list(spec.report.main_metrics or []),
        "alpha": spec.report.alpha,
        "min_effect": spec.report.min_effect,
        "interval": spec.report.interval,
        "label": spec.report.label,
        "names": dict(spec.report.names),
        "variants": list(dict.fromkeys(p.variant for p in plans)),
        "seeds": sorted({p.seed for p in plans}),
        # facts the report states, recorded rather than guessed from the files present
        "synthetic": all(getattr(entry.config_cls.model_validate(p.config), "synthetic_data", False) for p in plans),
        # the selection rule (README, "The selection rule"): what this study chooses by, if anything
        "recommend": spec.report.recommend,
        "selects": bool(spec.chooses()),
        # which epoch's model each trial keeps ("" the last: no validation metric; None: none kept)
        "best_epoch_by": best_epoch_by(spec, entry, plans[0].config) if plans else None,
        # which way each reported metric is better, as the trainable declares it (trainables.metrics)
        "metric_directions": {
            k: way for p in plans for k in entry.reported_keys(p.config) if (way := entry.direction(k)) is not None
        },
        # and what the report calls each (trainables.metrics.display_name)
        "metric_names": {
            k: name for p in plans for k in entry.reported_keys(p.config) if (name := entry.display_name(k)) is not None
        },
    }


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
    """``run.json``: what the report needs to know about the study, without importing it;
    ``extra`` holds what the study kind records of itself (``StudyKind.facts``)."""
    info: dict[str, Any] = {
        "study": spec.name,
        "kind": spec.kind,
        "trainable": spec.trainable,
        **spec_facts(spec, plans),
        "quick": opts.quick,
        "overrides": list(opts.set),
        "resources": {"cpus_per_trial": cpus, "gpus_per_trial": gpus},
        "command": sys.argv,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "driver": this_driver().model_dump(),  # for `status`: is the run still going?
        "max_concurrent": max_concurrent(opts, spec),
        "tracking": tracking_of(spec, opts),
    }
    info.update(extra or {})
    info["label"] = spec.report.label or run_label(Path(run_dir).name)  # kept when the run is copied or renamed
    write_info(run_dir, RunInfo.model_validate(info))


def check_trackers(tracking: dict[str, Any]) -> None:
    """Each tracker asked for has its library installed (the ``track`` extra), refused in one
    line before anything runs."""
    import importlib.util

    from orchestrator.tracking import LIBRARIES

    for backend in tracking.get("backends", []):
        if importlib.util.find_spec(LIBRARIES[backend]) is None:
            raise UserError(
                f"tracker {backend}: the {LIBRARIES[backend]} package is not installed "
                "(pip install 'orchestrator[track]', or leave the tracker out)"
            )


def tracking_of(spec: StudySpec, opts: RunOptions) -> dict[str, Any]:
    """The trackers of the run: the spec's ``tracking``, ``--track`` in place of its backends
    (run.json records it; ``execute`` writes to them)."""
    tracking = spec.tracking.model_dump(exclude_none=True)
    if opts.track is not None:
        tracking["backends"] = list(opts.track)
    return tracking if tracking["backends"] else {}


def this_driver() -> Driver:
    """This process, as run.json records the driver (``status`` asks whether it still lives)."""
    return Driver(pid=os.getpid(), host=socket.gethostname())


def note_resume(run_dir: Path, meta: RunInfo, trials_left: int) -> None:
    meta.resumed = [*meta.resumed, Resumed(at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), trials_left=trials_left)]
    meta.driver = this_driver()
    write_info(run_dir, meta)


def tune_state(run_dir: Path, name: str = TUNE_DIR) -> bool:
    """Whether Tune saved the state of the run's experiment ``name`` (a folder of the run)."""
    from ray import tune

    return tune.Tuner.can_restore(str((run_dir / name).resolve()))
