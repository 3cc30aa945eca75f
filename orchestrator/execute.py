"""Running a compiled plan on Ray Tune and keeping ``results.csv`` current.

Tune sees one grid axis, the plan index ``_trial``; the trainable receives that plan's
full config. (Tune's preset points cannot carry configs whose lists differ in length,
such as LoRA target lists, so the configs travel with the trainable instead.) Trials
reuse their actors: on small CPU trials, starting a fresh Python process per trial would
otherwise dominate (see ``benchmarks/overhead.py``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from ray import tune

from orchestrator.errors import RunStopped
from orchestrator.plan import TrialPlan
from orchestrator.progress import GridProgress, SearchProgress, SearchTrialName, sampled_trial_config, stopped_cause
from orchestrator.results import ResultsTable
from orchestrator.tracking import Trackers
from reports.rundir.names import (
    INTERRUPTED,
    TUNE_DIR,
)
from trainables import BEST_EPOCH_KEY, DATA_SNAPSHOT, DATA_SNAPSHOT_KEY


def _quiet(record) -> bool:
    """Logging filter: drop Tune's per-trial error tracebacks and its end-of-run summary."""
    return record.levelno < 40  # below logging.ERROR


def _quiet_tune_logs() -> None:
    """Tune logs every trial failure with its full traceback; the traceback stays in the
    trial's error file and the user gets our one line per trial instead."""
    import logging

    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logger = logging.getLogger(name)
        if _quiet not in logger.filters:
            logger.addFilter(_quiet)


def _announced(fn: Callable[[dict[str, Any]], None], study: str) -> Callable[[dict[str, Any]], None]:
    """The trainable as the Ray dashboard shows it: its trial actors carry the study's name,
    and each trial writes its name (study, variant, seed) to the actor's log, which the
    dashboard shows. Ray fixes an actor's display name when the actor starts, and trials
    reuse actors (``reuse_actors``), so the trial names go to the log, not the actor name."""

    @functools.wraps(fn)
    def trainable(config: dict[str, Any]) -> None:
        print(f"[orchestrator] trial {tune.get_context().get_trial_name()} starts", flush=True)
        return fn(config)

    trainable.__name__ = trainable.__qualname__ = study
    return trainable


def _hidden(best_by: str | None, snapshot: str | None) -> dict[str, Any]:
    """What a trial's config carries besides the plan's config, for the trainable's entry
    point: what its best epoch is chosen by, and the data snapshot its preparation left."""
    return {
        **({} if best_by is None else {BEST_EPOCH_KEY: best_by}),
        **({DATA_SNAPSHOT_KEY: snapshot} if snapshot else {}),
    }


def snapshot_of(row: Any) -> str | None:
    """The data snapshot a row of provenance (or of ``results.csv``) names, if any."""
    value = row.get(DATA_SNAPSHOT) if isinstance(row, dict) else None
    return value if isinstance(value, str) and value else None


def trial_snapshots(
    plans: list[TrialPlan], provenance: dict[int, dict[str, str]], rows: dict[int, dict[str, Any]]
) -> list[str | None]:
    """The data snapshot of each trial's preparation: from this run's preparation, or (a
    resumed run, which prepares nothing) as its row of ``results.csv`` recorded it, so that a
    resumed trial reads the data it started with."""
    return [snapshot_of(provenance.get(p.index)) or snapshot_of(rows.get(p.index)) for p in plans]


def _by_plan_index(
    fn: Callable[[dict[str, Any]], None],
    configs: list[dict[str, Any]],
    best_by: list[str | None],
    snapshots: list[str | None],
) -> Callable[[dict[str, Any]], None]:
    """The trainable, called with the full config of the plan entry Tune's ``_trial`` names
    (and, for a trainable that keeps its best epoch, what that epoch is chosen by; for one
    whose preparation left a data snapshot, its name)."""

    @functools.wraps(fn)
    def trainable(config: dict[str, Any]) -> None:
        i = config["_trial"]
        return fn({**configs[i], **_hidden(best_by[i], snapshots[i])})

    return trainable


def trackers_of(run_dir: Path, study: str) -> Trackers | None:
    """The experiment trackers ``run.json`` names for the run (None: none)."""
    from reports.rundir.files import read_run_info

    tracking = read_run_info(Path(run_dir)).tracking
    return Trackers(Path(run_dir), study, tracking) if tracking.get("backends") else None


def _plan_value(configs: list[dict[str, Any]], key: str, spec) -> Any:
    return configs[spec.config["_trial"]].get(key)


def grid_space(configs: list[dict[str, Any]], trials: list[int]) -> dict[str, Any]:
    """Tune's space of a grid: one axis, the plan index ``_trial``, and every config key as a
    value Tune resolves from it (``sample_from``), so that each trial's config in Tune's state
    (what ``ExperimentAnalysis``, ``Tuner.restore`` and the result grid read) is the trial's
    real config. A grid of the configs themselves is not possible: Tune's grid axes are
    independent, and a study's variants are not a product of values."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    return {
        "_trial": tune.grid_search(trials),
        **{k: tune.sample_from(functools.partial(_plan_value, configs, k)) for k in keys if k != "_trial"},
    }


class GridTrialLabel:
    """How the live status line names a grid's trial (its group and seed) and the epochs it
    runs to (None: a trial of another experiment of the run)."""

    def __init__(self, plans: list[TrialPlan], full: list[int], trials: list[int]) -> None:
        runs = set(trials)
        self.labels = {p.index: (f"{p.variant} seed={p.seed}", full[p.index]) for p in plans if p.index in runs}

    def __call__(self, trial) -> tuple[str, int] | None:
        return self.labels.get(trial.config.get("_trial"))


class SearchTrialLabel:
    """How the live status line names a search's trial (``trial007``) and the reports it runs
    to (the scheduler's ``max_t``, or fewer where its config trains fewer epochs)."""

    def __init__(self, entry, search, study: str, first: int) -> None:
        self.entry, self.search, self.name = entry, search, SearchTrialName(study, first)
        self.study = study
        self.known: dict[str, tuple[str, int]] = {}  # by trial id: a config is validated once

    def __call__(self, trial) -> tuple[str, int] | None:
        if trial.trial_id not in self.known:
            try:
                full = self.entry.full_iterations(sampled_trial_config(self.entry, self.search, trial.config))
            except ValueError:  # a sampled combination the trainable refuses: the trial fails at once
                full = self.search.max_t
            name = self.name(trial).removeprefix(f"{self.study}_")
            self.known[trial.trial_id] = (name, min(self.search.max_t, full))
        return self.known[trial.trial_id]


def live_status(describe, total: int, max_concurrent: int | None) -> tune.Callback:
    from orchestrator.live import LiveStatus

    return LiveStatus(describe, total, max_concurrent)


def history_logger() -> tune.Callback:
    """Tune's JSON result logger (``result.json`` per trial, one line per report), the one of
    Tune's loggers the others are left off for: ``ExperimentAnalysis`` reads a trial's
    per-epoch history from it. (Its CSV logger fixes its columns at the first report, and a
    trial's evaluation metrics come later.)"""
    from ray.tune.logger import JsonLoggerCallback

    return JsonLoggerCallback()


def _fit(tuner) -> None:
    try:
        tuner.fit()
    except Exception as err:
        stop = stopped_cause(err)
        if stop is None:
            raise
        raise RunStopped(str(stop)) from None


def execute(
    *,
    study: str,
    trainable: Callable[[dict[str, Any]], None],
    plans: list[TrialPlan],
    table: ResultsTable,
    run_dir: Path,
    metric: str,
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent: int | None,
    max_failures: int,
    log: Callable[[str], None] = print,
    restore: bool = False,
    trials: list[int] | None = None,
    tune_dir: str = TUNE_DIR,
    best_by_of: Callable[[dict[str, Any]], str | None] | None = None,
    provenance: dict[int, dict[str, str]] | None = None,
    full_of: Callable[[dict[str, Any]], int] | None = None,
) -> None:
    """Run every planned trial to completion (or failure); rows land in ``results.csv`` as they end.

    If the run is interrupted (Ctrl-C), trials that were still running are marked
    INTERRUPTED and those never started stay PENDING. ``restore``: continue the run from
    Tune's experiment state in ``run_dir/tune`` (``resume``): finished trials stay as they
    are, unfinished ones continue from their last checkpoint, pending ones start.
    ``trials``: the plan indices this Tune experiment runs (default: all), in the run's folder
    ``tune_dir`` (``extend`` runs the trials it adds as an experiment of their own).
    ``best_by_of(config)``: what a trial's best epoch is chosen by (``plan.best_epoch_by``).
    ``provenance``: what each trial's preparation returned (its data snapshot).
    ``full_of(config)``: the reports of a trial that runs to its end (``TrainableEntry.full_iterations``).
    """
    provenance = provenance or {}
    _quiet_tune_logs()
    assert [p.index for p in plans] == list(range(len(plans)))
    trials = list(range(len(plans))) if trials is None else list(trials)
    best_by = [best_by_of(p.config) if best_by_of else None for p in plans]
    snapshots = trial_snapshots(plans, provenance, table.rows if table is not None else {})
    full = [full_of(p.config) if full_of else 1 for p in plans]
    fn = tune.with_resources(
        _announced(_by_plan_index(trainable, [p.config for p in plans], best_by, snapshots), study),
        {"cpu": cpus_per_trial, "gpu": gpus_per_trial},
    )
    space = grid_space([p.config for p in plans], trials)
    if restore:
        # the space again: Tune does not keep it in tuner.pkl, only in the searcher's state,
        # which it first saves a while after the start; a driver that died before that would
        # otherwise resume into trials without a config
        tuner = tune.Tuner.restore(
            str(Path(run_dir).resolve() / tune_dir),
            trainable=fn,
            param_space=space,
            resume_unfinished=True,
            resume_errored=False,
        )
    else:
        names = [f"{study}_{p.name}" for p in plans]
        tuner = tune.Tuner(
            fn,
            param_space=space,
            tune_config=tune.TuneConfig(
                max_concurrent_trials=max_concurrent,
                reuse_actors=True,
                trial_name_creator=lambda t: names[t.config["_trial"]],
                trial_dirname_creator=lambda t: names[t.config["_trial"]],
            ),
            run_config=tune.RunConfig(
                name=tune_dir,
                storage_path=str(Path(run_dir).resolve()),
                verbose=0,
                callbacks=[
                    live_status(GridTrialLabel(plans, full, trials), len(trials), max_concurrent),
                    GridProgress(
                        Path(run_dir),
                        study,
                        plans,
                        metric,
                        table.group_column,
                        log,
                        trackers=trackers_of(run_dir, study),
                        full=full if full_of else None,
                    ),
                    history_logger(),
                ],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=max_failures),
            ),
        )
    _fit(tuner)
    # the callbacks wrote every change to results.csv; read it back (a restored run's
    # callbacks are Tune's copies, not objects of this function)
    ResultsTable.load(Path(run_dir), study, plans, group_column=table.group_column).mark_unfinished(INTERRUPTED)


def _search_trainable(
    entry, search, study: str, best_by: str | None, snapshot: str | None
) -> Callable[[dict[str, Any]], None]:
    fn = entry.fn

    def trainable(config: dict[str, Any]) -> None:
        sampled = sampled_trial_config(entry, search, config)
        return fn({**sampled, **_hidden(best_by, snapshot)})

    functools.update_wrapper(trainable, fn)
    return _announced(trainable, study)


def execute_search(
    *,
    study: str,
    entry,
    search,
    run_dir: Path,
    metric: str,
    mode: str,
    provenance: dict[str, str],
    cpus_per_trial: float,
    gpus_per_trial: float,
    max_concurrent: int | None,
    max_failures: int,
    log: Callable[[str], None] = print,
    restore: bool = False,
    tune_dir: str = TUNE_DIR,
    continues: str | None = None,
    first: int = 0,
    best_by: str | None = None,
) -> None:
    """Optuna TPE (Ray Tune's OptunaSearch, the base config enqueued first) with the spec's
    scheduler (``orchestrator.schedulers``: ASHA by default, or FIFO).

    A trial ASHA stops before ``max_t`` iterations ends as STOPPED with the ``rung`` (its
    iterations) it reached; only trials that ran to the end count as TERMINATED.
    ``restore``: continue from Tune's experiment state (``resume``): the sampler goes on from
    its saved state (every trial it has seen), unfinished trials from their last checkpoint.
    ``continues``: the run's folder of an earlier experiment of this search (``extend``): its
    sampler goes on from the state Tune saved there (Optuna's study with every trial, its
    random state), in a new experiment in ``tune_dir`` whose trials are numbered from
    ``first``, and ASHA's rungs start with every value the earlier trials recorded.
    """
    from orchestrator.asha import RunningLimiter
    from orchestrator.schedulers import scheduler_of
    from orchestrator.searcher import StoppedAwareOptunaSearch
    from reports.rundir.space import base_point, define_by_run

    _quiet_tune_logs()
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours to print
    snapshot = snapshot_of(provenance)
    if snapshot is None and restore:  # as results.csv recorded it: resumed trials read the data they started with
        from reports.rundir.files import read_results

        snapshot = next(filter(None, map(snapshot_of, read_results(Path(run_dir)).to_dict("records"))), None)
    fn = tune.with_resources(
        _search_trainable(entry, search, study, best_by, snapshot), {"cpu": cpus_per_trial, "gpu": gpus_per_trial}
    )
    if restore:
        tuner = tune.Tuner.restore(
            str(Path(run_dir).resolve() / tune_dir), trainable=fn, resume_unfinished=True, resume_errored=False
        )
    else:
        searcher = StoppedAwareOptunaSearch(
            space=define_by_run(search.params, search.base),
            metric=metric,
            mode=mode,
            points_to_evaluate=None if continues else [base_point(search.params, search.base)],
            seed=search.search_seed,
            trainable=entry.name,
            search=search,
        )
        if continues:
            # the sampler as Tune last saved it in the earlier experiment; the count of
            # trials is the new experiment's own (``search.num_samples``, the samples added)
            searcher.restore_from_dir(str(Path(run_dir).resolve() / continues))
            searcher._search = search
        if max_concurrent:
            searcher = RunningLimiter(searcher, max_concurrent=max_concurrent)
        scheduler = scheduler_of(search).build(
            run_dir, search, metric=metric, mode=mode, max_concurrent=max_concurrent, replay=bool(continues)
        )
        name = SearchTrialName(study, first)
        progress = SearchProgress(
            Path(run_dir),
            study,
            entry,
            search,
            metric,
            provenance,
            log,
            first=first,
            trackers=trackers_of(run_dir, study),
        )
        tuner = tune.Tuner(
            fn,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=search.num_samples,
                metric=metric,
                mode=mode,
                reuse_actors=True,
                trial_name_creator=name,
                trial_dirname_creator=name,
            ),
            run_config=tune.RunConfig(
                name=tune_dir,
                storage_path=str(Path(run_dir).resolve()),
                verbose=0,
                callbacks=[
                    live_status(SearchTrialLabel(entry, search, study, first), search.num_samples, max_concurrent),
                    progress,
                    history_logger(),
                ],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=max_failures),
            ),
        )
    _fit(tuner)
    # the rows as the callbacks left them (a restored run's callbacks are Tune's copies)
    SearchProgress(Path(run_dir), study, entry, search, metric, provenance, first=first).table.mark_unfinished(
        INTERRUPTED
    )
