"""ASHA as Li et al. define it (asynchronous successive halving by promotion), for Ray Tune.

Tune's ``AsyncHyperBandScheduler`` decides when a trial reaches a rung, from the values
recorded there so far: the first trials at each rung go on with nothing to compare against,
and with a dozen configurations two to four of them run to ``max_t`` (BENCHMARKS.md has the
arithmetic). Li et al. (2020, "A System for Massively Parallel Hyperparameter Tuning")
promote instead: a trial that reaches a rung waits there, paused at its checkpoint, until it
is among the top ``1/eta`` of the trials recorded at that rung, while the free worker starts
the next configuration. Neither Tune nor Optuna implements that schedule over pausable
trials, hence this module; the pausing, checkpointing and resuming are Tune's.

Rules (``n_k`` values recorded at rung ``k``, ``eta`` the reduction factor):

- a trial reaching rung ``k`` goes on if it is among the best ``floor(n_k / eta)`` there
  and not all of those have been promoted yet; otherwise it waits (Tune's PAUSE);
- whenever a worker is free, the best promotable waiting trial of the highest rung goes on
  (Tune resumes it from its checkpoint), before any new configuration;
- once no trial can reach rung ``k`` any more (all samples drawn, every live trial recorded
  there or waiting below it), the rung is closed: ``ceil(n_k / eta)`` go on, so the best
  trial always reaches ``max_t``, and the trials left waiting there end as STOPPED;
- the search's concurrency limit counts running trials only (Tune's ``ConcurrencyLimiter``
  counts paused ones too and would stall): ``RunningLimiter``.

``PromotionRungs`` is the bookkeeping, free of Ray, so that it can be tested by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher


def milestones(max_t: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The iterations at which trials are compared: grace, grace*eta, ... below ``max_t``
    (the same list the report marks on the learning curves)."""
    from reports.rundir.names import rung_milestones

    return rung_milestones(grace_period=grace_period, reduction_factor=reduction_factor, max_t=max_t)


class PromotionRungs:
    """Values recorded at each rung, who was promoted past it, who waits there.

    Values are stored so that larger is better (``mode='min'`` negates); a NaN (a diverged
    trial) ranks last. Ties keep the order of arrival."""

    def __init__(self, milestones: list[int], reduction_factor: float, mode: str = "max") -> None:
        self.milestones = list(milestones)
        self.eta = float(reduction_factor)
        self.sign = 1.0 if mode == "max" else -1.0
        self.values: list[dict[str, float]] = [{} for _ in self.milestones]
        self.promoted: list[set[str]] = [set() for _ in self.milestones]
        self.waiting: dict[str, int] = {}  # trial id -> the rung it waits at

    def quota(self, k: int, closed: bool) -> int:
        n = len(self.values[k])
        return math.ceil(n / self.eta) if closed else math.floor(n / self.eta)

    def promotable(self, k: int, closed: bool) -> list[str]:
        """Trials among the best ``quota`` at rung ``k`` not promoted yet, best first."""
        values = self.values[k]
        ranked = sorted(values, key=lambda t: math.inf if math.isnan(values[t]) else -values[t])
        return [t for t in ranked[: self.quota(k, closed)] if t not in self.promoted[k]]

    def record(self, trial_id: str, iteration: int, value: float) -> None:
        """The trial's value at every rung it reached for the first time with this result."""
        for k, m in enumerate(self.milestones):
            if iteration >= m and trial_id not in self.values[k]:
                self.values[k][trial_id] = self.sign * float(value)

    def rung_at(self, iteration: int) -> int | None:
        return self.milestones.index(iteration) if iteration in self.milestones else None

    def decide(self, trial_id: str, k: int, closed: bool) -> bool:
        """A trial at rung ``k``: True (promoted: it goes on) or False (it waits there)."""
        if trial_id in self.promoted[k]:
            return True
        if trial_id in self.promotable(k, closed):
            self.promoted[k].add(trial_id)
            self.waiting.pop(trial_id, None)
            return True
        self.waiting[trial_id] = k
        return False

    def closed(self, exhausted: bool, live: set[str]) -> list[bool]:
        """Per rung: can no trial reach it any more? ``exhausted``: every sample has been
        drawn; ``live``: the trials not yet ended."""
        out, below_done = [], exhausted
        for k in range(len(self.milestones)):
            done = below_done and all(t in self.values[k] or self.waiting.get(t, k) < k for t in live)
            out.append(done)
            # the rung above closes only once nobody waiting here can still go on
            below_done = done and not any(t in self.waiting for t in self.promotable(k, True))
        return out

    def finished_waiting(self, closed: list[bool]) -> list[str]:
        """Waiting trials that can no longer be promoted: their rung is closed and they are
        not among its best ``ceil(n/eta)``."""
        return [t for t, k in self.waiting.items() if closed[k] and t not in self.promotable(k, True)]

    def forget(self, trial_id: str) -> None:
        """A failed trial: as if it had never reported (it cannot be promoted)."""
        for k in range(len(self.milestones)):
            self.values[k].pop(trial_id, None)
            self.promoted[k].discard(trial_id)
        self.waiting.pop(trial_id, None)


class RunningLimiter(ConcurrencyLimiter):
    """``ConcurrencyLimiter`` counting only trials that run or are about to: a trial
    waiting at a rung (paused) frees its slot for a new configuration."""

    def __init__(self, searcher: Searcher, max_concurrent: int) -> None:
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        if len(self.live_trials - self.paused) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.paused.discard(trial_id)
        super().on_trial_complete(trial_id, result=result, error=error)

    def on_pause(self, trial_id: str) -> None:
        self.paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)


def _stop_waiting(tune_controller, trial: Trial) -> None:
    """End a trial that waits at a rung (PAUSED, its actor gone): Tune's ``stop_trial`` marks
    it TERMINATED but, the trial having no live actor, returns before marking it for the next
    experiment checkpoint (``TuneController._schedule_trial_stop``, Ray 2.60), so Tune's saved
    state kept it PAUSED: ``ExperimentAnalysis`` read it as unfinished and ``Tuner.restore(...,
    resume_unfinished=True)`` would have run it again. Marked here, the saved state has it
    TERMINATED, its last result ``done: False`` (Tune's mark of a trial a scheduler stopped)."""
    tune_controller.stop_trial(trial)
    mark = getattr(tune_controller, "_mark_trial_to_checkpoint", None)
    if mark is not None:
        mark(trial)


def _limiter(tune_controller) -> RunningLimiter | None:
    searcher = getattr(tune_controller.search_alg, "searcher", None)
    while searcher is not None and not isinstance(searcher, RunningLimiter):
        searcher = getattr(searcher, "searcher", None)
    return searcher


class PromotionASHA(TrialScheduler):
    """Tune scheduler: ASHA by promotion (module docstring). ``max_concurrent``: at most
    this many trials run at once (None: as many as the resources allow). ``run_dir``: where
    ``results.csv`` and ``curves.csv`` are, to rebuild the rungs on ``resume`` (Tune
    pickles the scheduler as it was created, not as it was when the driver stopped)."""

    def __init__(
        self,
        run_dir: Path,
        *,
        metric: str,
        mode: str,
        max_t: int,
        grace_period: int,
        reduction_factor: float,
        max_concurrent: int | None = None,
        time_attr: str = "training_iteration",
        replay: bool = False,
    ) -> None:
        """``replay``: the rungs start with every value the run's trials recorded so far
        (``extend`` of a search: its new trials are compared with every trial before them)."""
        super().__init__()
        self._run_dir = Path(run_dir)
        self._metric, self._mode, self._time_attr = metric, mode, time_attr
        self._max_t, self._max_concurrent = int(max_t), max_concurrent
        self.rungs = PromotionRungs(milestones(max_t, grace_period, reduction_factor), reduction_factor, mode)
        # promoted while waiting, by trial id -> the rung's iteration: to be restarted by Tune.
        # It stays here until the trial reports past that rung or ends, not merely while it
        # reads PAUSED: a trial promoted while its own pause is still in progress (it reads
        # RUNNING until Tune has saved it) would otherwise be lost, and wait for ever.
        self._resume: dict[str, int] = {}
        # resume: trials results.csv has as ended (STOPPED at a rung, or TERMINATED) that
        # Tune's last saved state still held as waiting or running: Tune requeues them from
        # an older checkpoint, and they end again, untrained. By trial id -> the (iteration,
        # value) points it reported, for the searcher (``_update``)
        self._stop_now: dict[str, list[tuple[int, float]]] = {}
        self._seeded = not replay  # a fresh run has nothing to replay

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if not isinstance(self._resume, dict):  # pickled by an older version (a set, empty as created)
            self._resume = {}
        self._stop_now = {}
        self._seeded = False  # unpickled by Tuner.restore: rebuild the rungs before the first decision

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # given to the constructor

    # -- Tune's hooks ----------------------------------------------------------------------

    def on_trial_add(self, tune_controller, trial) -> None:
        r = self.rungs
        if not self._seeded:
            self._seeded = True
            self._replay()
            limiter = _limiter(tune_controller)
            if limiter is not None:
                limiter.paused = set(r.waiting)
        if trial.trial_id in self._stop_now and trial.status in (Trial.PENDING, Trial.PAUSED):
            trial.set_status(Trial.PAUSED)  # never started again: ``_update`` ends it
            return
        if trial.trial_id in r.waiting and trial.status == Trial.PENDING:
            # requeued by ``resume``: Tune would start it; it goes on only when promoted
            iteration = int((trial.last_result or {}).get(self._time_attr, 0))
            if r.milestones[r.waiting[trial.trial_id]] == iteration:
                trial.set_status(Trial.PAUSED)  # (``add_trial`` files it under its status next)
            else:  # its checkpoint is older than its rung: it runs there again and is decided then
                r.waiting.pop(trial.trial_id)
                limiter = _limiter(tune_controller)
                if limiter is not None:
                    limiter.on_unpause(trial.trial_id)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        t = int(result.get(self._time_attr, 0))
        if self._resume.get(trial.trial_id, t) < t:  # restarted, and past the rung it was promoted from
            del self._resume[trial.trial_id]
        if t >= self._max_t:
            return TrialScheduler.STOP
        value = result.get(self._metric)
        k = self.rungs.rung_at(t)
        if value is None or k is None:
            return TrialScheduler.CONTINUE
        r, trial_id = self.rungs, trial.trial_id
        r.record(trial_id, t, value)
        limiter = _limiter(tune_controller)
        if r.decide(trial_id, k, self._closed(tune_controller)[k]):
            self._update(tune_controller, deciding=trial)
            return TrialScheduler.CONTINUE
        if limiter is not None:
            limiter.on_pause(trial_id)
        self._update(tune_controller, deciding=trial)  # its slot is free, perhaps for itself
        if trial_id in self._resume:  # promoted after all (the rung closed with it among the best)
            del self._resume[trial_id]
            return TrialScheduler.CONTINUE
        if trial_id in r.finished_waiting(self._closed(tune_controller)):
            r.waiting.pop(trial_id)  # the rung is closed and it is not among its best: done
            if limiter is not None:
                limiter.on_unpause(trial_id)
            return TrialScheduler.STOP
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller, trial, result) -> None:
        self.rungs.waiting.pop(trial.trial_id, None)
        self._resume.pop(trial.trial_id, None)
        self._update(tune_controller)

    def on_trial_error(self, tune_controller, trial) -> None:
        self.rungs.forget(trial.trial_id)
        self._resume.pop(trial.trial_id, None)
        self._update(tune_controller)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self.rungs.waiting.pop(trial.trial_id, None)
        self._resume.pop(trial.trial_id, None)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        self._update(tune_controller)
        trials = tune_controller.get_trials()
        alive = {t.trial_id for t in trials if t.status in (Trial.PAUSED, Trial.RUNNING, Trial.PENDING)}
        self._resume = {t: m for t, m in self._resume.items() if t in alive}
        for trial in trials:  # promotions before new configurations
            if trial.trial_id in self._resume and trial.status == Trial.PAUSED:
                return trial
        for trial in trials:
            if trial.status == Trial.PENDING:
                return trial
        return None

    def debug_string(self) -> str:
        r = self.rungs
        return "ASHA by promotion: " + ", ".join(
            f"rung {m}: {len(r.values[k])} recorded, {len(r.promoted[k])} promoted" for k, m in enumerate(r.milestones)
        )

    # -- promotion ---------------------------------------------------------------------------

    def _live(self, tune_controller) -> list[Trial]:
        return [t for t in tune_controller.get_trials() if t.status not in (Trial.TERMINATED, Trial.ERROR)]

    def _closed(self, tune_controller) -> list[bool]:
        return self.rungs.closed(
            tune_controller.search_alg.is_finished(), {t.trial_id for t in self._live(tune_controller)}
        )

    def _update(self, tune_controller, deciding: Trial | None = None) -> None:
        """Promote waiting trials while workers are free (highest rung first), then stop
        those that can no longer be promoted. ``deciding``: the trial whose result is being
        decided (still RUNNING, though it may already wait); its caller ends it if need be."""
        r = self.rungs
        while True:
            live = self._live(tune_controller)
            active = sum(
                1
                for t in live
                if t.trial_id not in r.waiting
                and (t.status in (Trial.RUNNING, Trial.PENDING) or t.trial_id in self._resume)
            )
            free = math.inf if self._max_concurrent is None else self._max_concurrent - active
            closed = self._closed(tune_controller)
            chosen = None
            if free > 0:
                for k in reversed(range(len(r.milestones))):
                    waiting = [t for t in r.promotable(k, closed[k]) if r.waiting.get(t) == k]
                    if waiting:
                        chosen = waiting[0]
                        break
            if chosen is None:
                break
            k = r.waiting[chosen]
            r.decide(chosen, k, True)
            self._resume[chosen] = r.milestones[k]
            limiter = _limiter(tune_controller)
            if limiter is not None:
                limiter.on_unpause(chosen)
        by_id = {t.trial_id: t for t in live if t is not deciding}
        for trial_id in r.finished_waiting(closed):
            if trial_id in by_id:
                r.waiting.pop(trial_id)
                _stop_waiting(tune_controller, by_id[trial_id])
        for trial_id in sorted(set(self._stop_now) & set(by_id)):
            points = self._stop_now.pop(trial_id)
            if by_id[trial_id].status == Trial.PAUSED:
                # Tune saves the searcher's state with its experiment state, so that state can
                # predate the results this trial reported before the driver stopped; ended
                # without them, OptunaSearch records it as pruned with no value (TPE then ranks
                # it below every other pruned trial). Hand it what the trial reported first.
                for iteration, value in points:
                    tune_controller.search_alg.on_trial_result(
                        trial_id, {self._metric: value, self._time_attr: iteration}
                    )
                _stop_waiting(tune_controller, by_id[trial_id])  # its row stays as results.csv has it

    # -- resume ------------------------------------------------------------------------------

    def _replay(self) -> None:
        """Rebuild the rungs from what the trials reported before the driver stopped:
        ``curves.csv`` (every reported value) and ``results.csv`` (which trials ended)."""

        from reports.rundir.files import read_curves, read_results
        from reports.rundir.names import CURVES_FILE, FINISHED, RESULTS_FILE, UNFINISHED

        results, curves = self._run_dir / RESULTS_FILE, self._run_dir / CURVES_FILE
        if not results.is_file() or not curves.is_file():
            return
        rows = read_results(self._run_dir)
        rows = rows[rows["trial_id"] != ""].set_index("trial_name")
        df = read_curves(self._run_dir, need=("trial_name", "iteration", "key", "value"))
        df = df[df["key"] == self._metric].sort_values("iteration", kind="stable")
        self._stop_now = {
            rows.at[name, "trial_id"]: [
                (int(p.iteration), float(p.value)) for p in df[df["trial_name"] == name].itertuples()
            ]
            for name in rows.index[rows["status"].isin(FINISHED)]
        }
        r = self.rungs
        for name, points in df.groupby("trial_name", sort=False):
            if name not in rows.index or rows.at[name, "status"] == "ERROR":
                continue
            trial_id, last = rows.at[name, "trial_id"], int(points["iteration"].max())
            for k, m in enumerate(r.milestones):
                at = points[points["iteration"] >= m]
                if len(at):
                    r.values[k].setdefault(trial_id, r.sign * float(at["value"].iloc[0]))
                if last > m:
                    r.promoted[k].add(trial_id)
            k = r.rung_at(last)
            if k is not None and rows.at[name, "status"] in UNFINISHED:
                r.waiting[trial_id] = k
