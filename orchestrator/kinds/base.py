"""What a study kind is: one object that says how its spec compiles into trials, which
column groups its trials, what ``run.json`` records of it, how its trials start and how a
stopped run of it resumes. ``run``, ``start`` and ``resume`` are written once, here; a kind
fills in the steps that differ (``compile`` ... ``progress``)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

from orchestrator.errors import UserError
from orchestrator.launch import (
    RunOptions,
    check_options,
    note_resume,
    prepare_shared,
    ray_trials,
    tune_state,
    write_run_info,
)
from orchestrator.plan import TrialPlan, resolve_trainable
from orchestrator.spec import StudyBase
from reports.rundir.info import RunInfo
from reports.rundir.lock import run_lock
from reports.rundir.names import SPEC_FILE, TUNE_DIR


@dataclass(frozen=True)
class Experiment:
    """The Tune experiment that runs the trials: the run's own (``tune/``, every trial), or
    its latest extension's (``extend``: a folder of its own, the trials it added)."""

    dir: str = TUNE_DIR
    trials: tuple[str, ...] | None = None
    """The names of its trials, for a grid (None: every trial of the run, or a search's)."""
    samples: int | None = None
    """A search's extension: the samples it adds."""
    continues: str | None = None
    """A search's extension: the folder of the experiment whose sampler it continues."""
    first: int = 0
    """A search's extension: the number of its first trial."""


def experiment_of(meta: RunInfo) -> Experiment:
    last = meta.latest_extension
    if last is None:
        return Experiment()
    return Experiment(
        last.tune_dir, tuple(last.trials) if last.trials is not None else None, last.samples, last.continues, last.first
    )


@dataclass(frozen=True)
class Launch:
    """What starting or resuming trials needs besides the kind and its compiled study."""

    run_dir: Path
    spec: StudyBase
    entry: Any
    """The trainable's registry entry (``trainables.TrainableEntry``)."""
    opts: RunOptions
    cpus: float
    gpus: float
    log: Callable[[str], None]
    experiment: Experiment = Experiment()


@dataclass(frozen=True)
class Progress:
    """Where a stopped run stands: ``table`` to go on with (None: none), how many trials
    ended out of how many the study has, and whether any trial ever started."""

    table: Any
    ended: int
    total: int
    started: bool


class StudyKind:
    """One study kind. Subclasses set the class attributes and fill in the steps."""

    name: ClassVar[str]
    """The spec's ``kind``."""
    spec_model: ClassVar[type[StudyBase]]
    """The pydantic model of its spec (``StudyBase`` plus the kind's own fields)."""
    group_column: ClassVar[str] = "variant"
    """The column of ``results.csv`` that groups its trials (recorded in ``run.json``)."""

    # ---------------------------------------------------------------- the steps a kind fills in
    def compile(self, spec: StudyBase, opts: RunOptions, log: Callable[[str], None]) -> Any:
        """The study compiled (validated trial configs, or a search plan); UserError if bad."""
        raise NotImplementedError

    def prepared(self, compiled: Any) -> list[TrialPlan]:
        """The trials whose configs the trainable prepares for before any trial runs."""
        raise NotImplementedError

    def facts(self, spec: StudyBase, compiled: Any, opts: RunOptions) -> dict[str, Any]:
        """What ``run.json`` records of this kind, besides what every run records."""
        return {"group_column": self.group_column}

    def announce(self, spec: StudyBase, compiled: Any, opts: RunOptions) -> str:
        """The line that opens the run's log (what runs, how many trials)."""
        raise NotImplementedError

    def new_table(self, launch: Launch, compiled: Any, provenance: Any) -> Any:
        """A fresh ``results.csv`` for the trials about to start (written at once)."""
        raise NotImplementedError

    def provenance(self, shared: dict[int, dict[str, str]]) -> Any:
        """What ``prepare_shared`` returned, as ``new_table`` and ``execute`` take it."""
        return shared

    def execute(self, launch: Launch, compiled: Any, table: Any, provenance: Any, *, restore: bool) -> None:
        """Run the trials on Tune (``restore``: go on from Tune's experiment state)."""
        raise NotImplementedError

    def progress(self, launch: Launch, compiled: Any, meta: RunInfo, has_table: bool) -> Progress:
        """Where a stopped run of this kind stands (its ``results.csv`` read back)."""
        raise NotImplementedError

    def in_run_order(self, compiled: Any, meta: RunInfo) -> Any:
        """The compiled study as the run holds it (an extended run: its first trials, then
        each extension's, in the order Tune was given them)."""
        return compiled

    def extend(self, run_dir: Path, spec: StudyBase, meta: RunInfo, opts: RunOptions, **how: Any) -> Path:
        """``extend``: add trials to a finished run (see ``orchestrator.extend``)."""
        raise UserError(f"{run_dir}: a {self.name} run cannot be extended")

    def restart_extension(self, launch: Launch, compiled: Any, table: Any, provenance: Any) -> None:
        """The rows of an extension whose driver stopped before Tune began it, with their
        provenance (prepared again), before its trials start."""
        raise NotImplementedError

    # ---------------------------------------------------------------- written once for every kind
    def run(
        self, spec: StudyBase, text: str, opts: RunOptions, log: Callable[[str], None], info: dict | None = None
    ) -> Path:
        """``run``: compile and check everything, make the run directory, record the study,
        prepare what the trials share, start them; ``info`` adds to (and overrides) run.json."""
        from orchestrator.run_dirs import default_run_dir, prepare_run_dir

        entry = resolve_trainable(spec)
        compiled = self.compile(spec, opts, log)
        if not opts.quick:  # the quick form gets the full study's checks now, not at its first use
            try:
                self.compile(spec, replace(opts, quick=True), lambda _: None)
            except UserError as err:
                raise UserError(f"quick: {err}") from None
        cpus, gpus = check_options(opts, spec)
        new = prepare_run_dir(
            Path(opts.out) if opts.out else default_run_dir(spec.name, opts.quick), default=opts.out is None
        )
        launch = Launch(new.path, spec, entry, opts, cpus, gpus, log)
        with run_lock(new.path):  # held until the report is made: a second writer is refused
            return self._run_locked(launch, new, spec, text, compiled, info)

    def _run_locked(self, launch: Launch, new: Any, spec: StudyBase, text: str, compiled: Any, info) -> Path:
        opts, log = launch.opts, launch.log
        try:
            (new.path / SPEC_FILE).write_text(text)
            facts = {**self.facts(spec, compiled, opts), **(info or {})}
            write_run_info(
                new.path, spec, self.prepared(compiled), opts, cpus=launch.cpus, gpus=launch.gpus, extra=facts
            )
            log(self.announce(spec, compiled, opts) + f"; run directory {new.path}")
            shared = prepare_shared(launch.entry, self.prepared(compiled), new.path, what=spec.unit, log=log)
        except UserError:
            new.discard()  # nothing was computed yet: leave no half-made run directory behind
            raise
        return self.start(launch, compiled, self.provenance(shared))

    def start(self, launch: Launch, compiled: Any, provenance: Any) -> Path:
        """A fresh table, every trial from its start, then the report."""
        table = self.new_table(launch, compiled, provenance)
        with ray_trials(launch.opts, launch.cpus, launch.gpus, launch.run_dir, launch.log):
            self.execute(launch, compiled, table, provenance, restore=False)
        return _report(launch)

    def resume(self, run_dir: Path, spec: StudyBase, meta: RunInfo, opts: RunOptions, *, has_table: bool, log):
        """``resume``: a run stopped before any trial ran starts its trials; one stopped
        midway goes on from Tune's experiment state (finished trials stay as they are,
        unfinished ones continue from their last checkpoint); a finished one gets its
        report rebuilt."""
        compiled = self.in_run_order(self.compile(spec, opts, lambda _: None), meta)
        cpus, gpus = check_options(opts, spec)
        launch = Launch(run_dir, spec, resolve_trainable(spec), opts, cpus, gpus, log, experiment_of(meta))
        where = f"{spec.name!r} in {run_dir}"
        state = self.progress(launch, compiled, meta, has_table)
        if launch.experiment.dir != TUNE_DIR and state.ended < state.total:
            return self._resume_extension(launch, compiled, state, meta)
        if not state.started and (state.table is None or not tune_state(run_dir)):
            # stopped while preparing or before Tune began: nothing ran, so the trials start now
            note_resume(run_dir, meta, state.total)
            log(f"Resuming {where}: it stopped before any trial ran; starting its {state.total} trials")
            shared = prepare_shared(launch.entry, self.prepared(compiled), run_dir, what=spec.unit, log=log)
            return self.start(launch, compiled, self.provenance(shared))
        if state.ended < state.total:
            if not tune_state(run_dir):
                raise UserError(f"{run_dir}: Tune's experiment state ({TUNE_DIR}/) is missing; nothing to resume from")
            note_resume(run_dir, meta, state.total - state.ended)
            log(f"Resuming {where}: {state.ended} of {state.total} trials ended, {state.total - state.ended} to go")
            with ray_trials(opts, cpus, gpus, run_dir, log):
                self.execute(launch, compiled, state.table, {}, restore=True)
        else:
            log(f"{run_dir}: every trial has ended; rebuilding the report")
        return _report(launch)

    def _resume_extension(self, launch: Launch, compiled: Any, state: Progress, meta: RunInfo) -> Path:
        """An extension stopped midway: its experiment goes on from Tune's state; one stopped
        before Tune began it (no state yet, so no trial of it ran) starts its trials now.
        The run's earlier trials stay as they are either way."""
        exp, run_dir = launch.experiment, launch.run_dir
        left = state.total - state.ended
        note_resume(run_dir, meta, left)
        fresh = not tune_state(run_dir, exp.dir)
        launch.log(
            f"Resuming {launch.spec.name!r} in {run_dir}: {state.ended} of {state.total} trials ended, {left} to go "
            f"(added by its extension, {exp.dir}/{', which had not started' if fresh else ''})"
        )
        provenance: Any = {}
        if fresh:
            added = [p for p in self.prepared(compiled) if exp.trials is None or p.name in exp.trials]
            provenance = self.provenance(
                prepare_shared(launch.entry, added, run_dir, what=launch.spec.unit, log=launch.log)
            )
            self.restart_extension(launch, compiled, state.table, provenance)
        with ray_trials(launch.opts, launch.cpus, launch.gpus, run_dir, launch.log):
            self.execute(launch, compiled, state.table, provenance, restore=not fresh)
        return _report(launch)


#: Every registered study kind by name (each module of ``orchestrator.kinds`` registers its own).
KINDS: dict[str, StudyKind] = {}


def register_kind(kind: StudyKind) -> StudyKind:
    if kind.name in KINDS:
        raise ValueError(f"study kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def _report(launch: Launch) -> Path:
    from reports import build_report

    index = build_report(launch.run_dir, warn=launch.log)
    launch.log(f"Report: {index}")
    return launch.run_dir
