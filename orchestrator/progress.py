"""Tune callbacks that keep the run directory current: a row of ``results.csv`` when a
trial starts and ends, its curve as it reports, one printed line per end, and a full disk
turned into a stopped run instead of a traceback in Tune's loop."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from ray import tune

from orchestrator.errors import RunStopped, is_disk_full, stopped_for_full_disk
from orchestrator.plan import TrialPlan
from orchestrator.results import CurveLog, ResultsTable
from orchestrator.tracking import Trackers
from reports.rundir.names import DIVERGED, ERROR, PAUSED, RUNNING, STOPPED, TERMINATED, UNFINISHED

NO_SPACE = ("[Errno 28]", "No space left on device", "[Errno 122]", "Disk quota exceeded")


def _stops_on_full_disk(method):
    """A callback's write that finds the disk full stops the run (``RunStopped``, raised
    through Tune) instead of failing in Tune's loop with a traceback; the files it was
    rewriting keep their previous, intact version (``reports.run_files.write_checked``)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except OSError as err:
            if is_disk_full(err):
                raise stopped_for_full_disk(self.run_dir, f"writing {err.filename or 'a run file'}") from None
            raise

    return wrapper


def _check_disk(trial, run_dir: Path) -> None:
    """A trial that failed because the disk is full is not the trial's fault, and every
    other trial would fail the same way: stop the run with its row left unfinished, so that
    ``resume`` runs it again from its last checkpoint once there is room."""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text(errors="replace")
        if any(marker in text for marker in NO_SPACE):
            raise stopped_for_full_disk(run_dir, f"trial {trial} could not write its checkpoint")


def stopped_cause(err: BaseException) -> RunStopped | None:
    """The ``RunStopped`` a callback raised, from the exceptions Tune wrapped it in."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, RunStopped):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def _failure(trial) -> tuple[str, str]:
    """(status, the last line of the trial's error): DIVERGED for a non-finite loss
    (``trainables.errors.TrialDiverged``), else ERROR. Tune keeps the traceback in the
    trial's error file."""
    text = ""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text(errors="replace")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else "error (no message)"
    if "TrialDiverged: " in last:
        return DIVERGED, "diverged: " + last.split("TrialDiverged: ", 1)[1]
    if "worker process has died" in text:  # Ray's paragraph on a killed or crashed process, cut to its facts
        exit_type = text.split("Worker exit type: ", 1)[1].split()[0] if "Worker exit type: " in text else "unknown"
        return ERROR, (
            f"the trial's worker process died (exit type {exit_type}: killed by a signal or the OOM "
            f"killer, or crashed); Ray's account is in {trial.error_file}"
        )
    return ERROR, last


def mark_done(result: dict[str, Any], full: int) -> None:
    """Tune's ``done`` of a report, as this tool counts a trial finished: True at the report
    that ends its training (``full`` reports), False before it. Tune sets ``done`` on the
    report a scheduler stops a trial at (an ASHA-stopped trial would read as finished in its
    result grid and ``ExperimentAnalysis``), and never on the last report of a trial that
    returns (it adds a copy of that report, not logged). Tune hands the callbacks the result
    before it keeps it as the trial's last result or logs it, and lets them change it in
    place (``TuneController._process_trial_result``), so Tune's views read this."""
    result["done"] = int(result.get("training_iteration", 0)) >= full


class GridProgress(tune.Callback):
    """Writes each trial's row of ``results.csv`` when it starts and ends, its curve as it
    reports, and prints one line per end.

    Tune pickles its callbacks into its experiment state when the run starts, and ``resume``
    gets them back from there: what they held then is stale, so the pickled form keeps only
    what identifies the run, and the table is read again from ``results.csv`` on unpickling.
    """

    def __init__(
        self,
        run_dir: Path,
        study: str,
        plans: list[TrialPlan],
        metric: str,
        group_column: str,
        log: Callable[[str], None] = print,
        trackers: Trackers | None = None,
        full: list[int] | None = None,
    ) -> None:
        """``full``: each plan's reports when it runs to its end (None: not known)."""
        self.full = full
        self.run_dir, self.study, self.plans, self.metric, self.group_column = (
            run_dir,
            study,
            plans,
            metric,
            group_column,
        )
        self.log, self.trackers = log, trackers
        self._attach()

    def _attach(self) -> None:
        self.table = ResultsTable.load(self.run_dir, self.study, self.plans, group_column=self.group_column)
        self.curves = CurveLog(self.run_dir)
        # the printed lines are padded to the study's longest variant name: the columns line up
        self.width = max(len(p.variant) for p in self.plans)
        self.last: dict[str, dict[str, Any]] = {}
        self.done = sum(1 for r in self.table.rows.values() if r["status"] not in UNFINISHED)
        # trials results.csv already has as ended: Tune may still hold one as running when its
        # experiment state was saved just before it ended; restored from its last (final)
        # checkpoint it ends again without training, and its row must stay as it is
        self.ended = {i for i, r in self.table.rows.items() if r["status"] not in UNFINISHED}

    def __getstate__(self) -> dict[str, Any]:
        keys = ("run_dir", "study", "plans", "metric", "group_column", "trackers", "full")
        return {k: getattr(self, k) for k in keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.setdefault("trackers", None)  # pickled by a version without trackers
        self.__dict__.setdefault("full", None)
        self.__dict__.update(state)
        self.log = print
        self._attach()

    @_stops_on_full_disk
    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.config["_trial"] not in self.ended:
            self.table.started(trial.config["_trial"], trial.trial_id)
            if self.trackers:
                plan = self.plans[trial.config["_trial"]]
                self.trackers.start(plan.name, plan.config)

    @_stops_on_full_disk
    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        plan = self.plans[trial.config["_trial"]]
        if self.full is not None:
            mark_done(result, self.full[plan.index])
        self.curves.add(plan.name, result)
        if self.trackers:
            self.trackers.epoch(plan.name, result)

    def on_experiment_end(self, trials, **info):
        if self.trackers:
            self.trackers.close()

    def _end(self, trial, status: str, error: str = "") -> None:
        result = self.last.get(trial.trial_id)
        if trial.config["_trial"] in self.ended and result is None:
            return  # ended before the resume (see _attach): nothing new
        if result is None and (trial.last_result or {}).get("training_iteration"):
            # The driver died after the trial's last report but before results.csv had its
            # end; restored from that report's checkpoint it ends again without reporting.
            # Tune's saved state pairs the checkpoint with the result it came with.
            result = trial.last_result
        self.table.finished(trial.config["_trial"], trial_id=trial.trial_id, status=status, result=result, error=error)
        self.done += 1
        plan = self.plans[trial.config["_trial"]]
        row = self.table.rows[plan.index]
        if self.trackers:
            self.trackers.end(plan.name, plan.config, row, trial.path)
        value = row.get(self.metric)
        shown = f"{self.metric}={value:.4f}  " if isinstance(value, (int, float)) and value == value else ""
        wall = (
            f"({row['wall_s']:.0f} s)"
            if isinstance(row.get("wall_s"), (int, float)) and row["wall_s"] == row["wall_s"]
            else ""
        )
        n = len(self.plans)
        self.log(
            f"[{self.done:>{len(str(n))}}/{n}] {plan.variant:<{self.width}} seed={plan.seed:<3} "
            f"{status:<10} {shown}{wall}{'  ' + error if error else ''}"
        )

    @_stops_on_full_disk
    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, TERMINATED)

    @_stops_on_full_disk
    def on_trial_error(self, iteration, trials, trial, **info):
        _check_disk(trial, self.run_dir)
        self._end(trial, *_failure(trial))


class SearchTrialName:
    """Trial names of a search, ``<study>_trial<NNN>`` in the order the searcher created them.

    The number comes from the trial's experiment tag, which starts with Tune's count of
    trials generated so far; the searcher's state carries that count across ``resume``, so
    trials created after a resume continue the numbering instead of starting it again."""

    def __init__(self, study: str, first: int = 0) -> None:
        # ``first``: the number of the experiment's first trial (an extension's continue the run's)
        self.study, self.first = study, first

    def __call__(self, trial) -> str:
        number = self.first + int(str(trial.experiment_tag).split("_", 1)[0]) - 1
        return f"{self.study}_trial{number:03d}"


class SearchProgress(tune.Callback):
    """Rows of a search in ``results.csv`` (added as the sampler proposes trials), curves, and
    one line per ended trial. Pickle-safe like ``GridProgress``: on ``resume`` it reads the
    rows back from ``results.csv`` and ``configs.json``."""

    def __init__(
        self,
        run_dir: Path,
        study: str,
        entry,
        search,
        metric: str,
        provenance: dict[str, str],
        log: Callable[[str], None] = print,
        first: int = 0,
        trackers: Trackers | None = None,
    ) -> None:
        """``first``: the number of this experiment's first trial (``SearchTrialName``)."""
        self.run_dir, self.study, self.entry, self.search = Path(run_dir), study, entry, search
        self.metric, self.provenance, self.log, self.first = metric, provenance, log, first
        self.trackers = trackers
        self._attach()

    def _attach(self) -> None:
        import json

        from reports.rundir.files import read_checked, read_results
        from reports.rundir.names import CONFIGS_FILE

        self.table = ResultsTable(self.run_dir, self.study, [], {}, group_column="trial")
        self.plan_of: dict[str, TrialPlan] = {}
        self.ended: set[str] = set()
        self.last: dict[str, dict[str, Any]] = {}
        self.curves = CurveLog(self.run_dir)
        if self.table.path.is_file():  # resume: the rows as they were
            configs = json.loads(read_checked(self.run_dir, CONFIGS_FILE))
            for i, row in enumerate(read_results(self.run_dir).to_dict("records")):
                plan = TrialPlan(i, row["trial"], self.search.seed, configs[row["trial_name"]])
                self.table.add(plan, {})
                self.table.rows[i] = row
                self.plan_of[row["trial_id"]] = plan
                if row["status"] not in UNFINISHED:
                    self.ended.add(row["trial_id"])
        self.done = len(self.ended)

    def __getstate__(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("run_dir", "study", "entry", "search", "metric", "provenance", "first", "trackers")
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.setdefault("first", 0)  # pickled by a version without extensions
        self.__dict__.setdefault("trackers", None)  # or without trackers
        self.__dict__.update(state)
        self.log = print
        self._attach()

    @_stops_on_full_disk
    def on_trial_start(self, iteration, trials, trial, **info):
        if trial.trial_id in self.ended:
            return
        if trial.trial_id not in self.plan_of:
            name = SearchTrialName(self.study, self.first)(trial).removeprefix(f"{self.study}_")
            # After a resume, Tune generates again the trials it created after its last
            # experiment checkpoint (at least every 10 s), under the same names: the row the
            # lost attempt left is replaced, and its curve dropped, so each name stays once.
            index = next(
                (i for i, r in self.table.rows.items() if r[self.table.group_column] == name), len(self.table.rows)
            )
            if index < len(self.table.rows):
                old = self.table.rows[index]
                if old["status"] not in UNFINISHED:
                    self.ended.discard(old["trial_id"])
                    self.done -= 1
                self.curves.drop(old["trial_name"])
                self.log(
                    f"{name}: started again (created after Tune's last experiment checkpoint; was {old['status']})"
                )
            try:
                config = sampled_trial_config(self.entry, self.search, trial.config)
            except ValueError:  # the trial itself fails with the reason; the row keeps what was sampled
                from reports.rundir.space import sampled_config

                config = sampled_config(self.search.params, self.search.base, trial.config)
            plan = TrialPlan(index, name, self.search.seed, config)
            self.plan_of[trial.trial_id] = plan
            self.table.add(plan, self.provenance)
        plan = self.plan_of[trial.trial_id]
        if self.trackers:  # (a promotion from a rung continues the trial's runs)
            self.trackers.start(plan.name, plan.config)
        self.table.started(plan.index, trial.trial_id)

    @_stops_on_full_disk
    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.last[trial.trial_id] = result
        plan = self.plan_of[trial.trial_id]
        mark_done(result, min(self.search.max_t, self.entry.full_iterations(plan.config)))
        self.curves.add(plan.name, result)
        if self.trackers:
            self.trackers.epoch(self.plan_of[trial.trial_id].name, result)

    def on_experiment_end(self, trials, **info):
        if self.trackers:
            self.trackers.close()

    @_stops_on_full_disk
    def on_step_end(self, iteration, trials, **info):
        # a trial waiting at an ASHA rung (paused at its checkpoint) reads PAUSED, not RUNNING
        for trial in trials:
            if trial.status == PAUSED and trial.trial_id in self.plan_of:
                index = self.plan_of[trial.trial_id].index
                if self.table.rows[index]["status"] == RUNNING:
                    self.table.paused(index, int((trial.last_result or {}).get("training_iteration", 0)))

    def _end(self, trial, status: str, error: str = "") -> None:
        result = self.last.get(trial.trial_id)
        if trial.trial_id in self.ended and result is None:
            return  # ended before the resume: its row stays as it is
        if result is None and (trial.last_result or {}).get("training_iteration"):
            result = trial.last_result  # waited at a rung across a resume, stopped there without running
        search, plan = self.search, self.plan_of[trial.trial_id]
        reached = int((result or {}).get("training_iteration", 0))
        # a trial that reported its final result ran to completion (a probe reports once,
        # whatever its ``epochs``; a baseline evaluates once)
        full = min(search.max_t, self.entry.full_iterations(plan.config))
        if status == TERMINATED and reached < full:
            status = STOPPED
            self.table.rows[plan.index]["rung"] = reached
        self.table.finished(plan.index, trial_id=trial.trial_id, status=status, result=result, error=error)
        self.done += 1
        if self.trackers:
            self.trackers.end(plan.name, plan.config, self.table.rows[plan.index], trial.path)
        value = (result or {}).get(self.metric)
        shown = f"{self.metric}={value:.4f}  " if isinstance(value, (int, float)) else ""
        self.log(
            f"[{self.done:>3}/{self.first + search.num_samples}] {plan.variant:<10} {status:<10} {shown}"
            f"(after {reached} of {full} iterations){'  ' + error if error else ''}"
        )

    @_stops_on_full_disk
    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, TERMINATED)

    @_stops_on_full_disk
    def on_trial_error(self, iteration, trials, trial, **info):
        _check_disk(trial, self.run_dir)
        self._end(trial, *_failure(trial))


def sampled_trial_config(entry, search, sampled: dict[str, Any]) -> dict[str, Any]:
    """The trial's full config; a combination the trainable refuses (e.g. a loss weight with
    nothing to train) fails that trial with the reason in one line, and the search goes on."""
    from pydantic import ValidationError

    try:
        return search.full_config(entry, sampled)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "config"
        raise ValueError(f"sampled config refused by {entry.name}: {where}: {first['msg']}") from None
