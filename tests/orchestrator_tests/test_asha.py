"""ASHA by promotion: the rules checked by hand on the bookkeeping, then on Ray Tune with
a tiny trainable whose values are known, so that every decision can be predicted."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import pytest

from orchestrator.asha import PromotionRungs, milestones


def test_milestones_below_max_t():
    assert milestones(32, 2, 4) == [2, 8]
    assert milestones(9, 1, 3) == [1, 3]
    assert milestones(2, 1, 2) == [1]
    assert milestones(4, 4, 2) == []  # grace = max_t: nothing is compared (FIFO)


def _arrive(r: PromotionRungs, trial: str, value: float, k: int = 0, closed: bool = False) -> bool:
    r.record(trial, r.milestones[k], value)
    return r.decide(trial, k, closed)


def test_a_trial_goes_on_only_among_the_best_floor_n_over_eta():
    r = PromotionRungs([1], reduction_factor=2)
    # n=1: floor(1/2)=0, a waits; n=2: b is the best of 2; n=3: quota 1 is b's already;
    # n=4: quota 2 = {d, b}, d goes on; n=5: e waits; n=6: quota 3 = {d, f, b}
    decisions = [_arrive(r, t, v) for t, v in zip("abcdef", (0.5, 0.7, 0.6, 0.9, 0.4, 0.8))]
    assert decisions == [False, True, False, True, False, True]
    assert r.promoted[0] == {"b", "d", "f"} and r.waiting == {"a": 0, "c": 0, "e": 0}
    closed = r.closed(exhausted=True, live={"a", "c", "e"})
    assert closed == [True]  # all drawn, everyone recorded: ceil(6/2)=3, already promoted
    assert r.promotable(0, True) == [] and sorted(r.finished_waiting(closed)) == ["a", "c", "e"]


def test_closing_a_rung_promotes_ceil_n_over_eta():
    r = PromotionRungs([1], reduction_factor=2)
    for t, v in zip("abcde", (0.5, 0.7, 0.6, 0.9, 0.4)):
        _arrive(r, t, v)
    assert r.promoted[0] == {"b", "d"}
    assert r.closed(exhausted=False, live={"a", "c", "e"}) == [False]  # more samples may come
    assert r.closed(exhausted=True, live={"a", "c", "e", "x"}) == [False]  # x has not reported yet
    closed = r.closed(exhausted=True, live={"a", "c", "e"})
    assert closed == [True] and r.promotable(0, True) == ["c"]  # ceil(5/2)=3: d, b, c
    assert sorted(r.finished_waiting(closed)) == ["a", "e"]  # c is not finished: it goes on


def test_a_rung_closes_only_when_nobody_below_can_reach_it():
    r = PromotionRungs([1, 3], reduction_factor=3)
    for t, v in zip("abc", (0.1, 0.3, 0.2)):
        _arrive(r, t, v)
    # quota floor(n/3): 0 for a and b; 1 when c arrives, and c is not the best
    assert r.waiting == {"a": 0, "b": 0, "c": 0}
    closed = r.closed(exhausted=True, live={"a", "b", "c"})
    assert closed == [True, False]  # rung 3 cannot close while b may still be promoted to it
    assert r.promotable(0, True) == ["b"]
    assert r.decide("b", 0, True) and r.waiting == {"a": 0, "c": 0}
    assert r.closed(exhausted=True, live={"a", "b", "c"}) == [True, False]  # b runs towards rung 3
    r.record("b", 3, 0.35)
    assert not r.decide("b", 1, False)  # alone at rung 3: floor(1/3) = 0
    closed = r.closed(exhausted=True, live={"a", "b", "c"})
    assert closed == [True, True] and r.promotable(1, True) == ["b"]  # ceil(1/3) = 1: b reaches max_t
    assert sorted(r.finished_waiting(closed)) == ["a", "c"]


def test_mode_min_and_nan_ranks_last():
    r = PromotionRungs([1], reduction_factor=2, mode="min")
    for t, v in zip("abcd", (0.3, float("nan"), 0.1, 0.2)):
        r.record(t, 1, v)
    assert r.promotable(0, True) == ["c", "d"]  # lower is better; the diverged trial last
    r.forget("c")
    assert r.promotable(0, False) == ["d"] and "c" not in r.values[0]
    assert math.isnan(-r.values[0]["b"])


# -- on Ray Tune -------------------------------------------------------------------------------

VALUES = (0.5, 0.4, 0.6, 0.9, 0.7, 0.8)  # a .. f


def _trainable(config):
    """Reports x + 0.01 * iteration, with a checkpoint of its iteration, for 4 iterations;
    a restored trial continues from its checkpoint (and says so)."""
    from ray import tune

    start, log = 0, []
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            state = json.loads((Path(d) / "state.json").read_text())
        start, log = state["iteration"], state["log"] + [f"restored at {state['iteration']}"]
    for i in range(start + 1, 5):
        log.append(i)
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "state.json").write_text(json.dumps({"iteration": i, "log": log}))
            tune.report(
                {"score": config["x"] + 0.01 * i, "log": json.dumps(log)}, checkpoint=tune.Checkpoint.from_directory(d)
            )


def test_promotion_asha_on_tune(ray_local, tmp_path):
    """Six configs a..f (x in VALUES), one at a time, max_t 4, rungs at 1 and 2, eta 2. By hand:
    a reaches rung 1 alone and waits (floor(1/2) = 0); b arrives, the quota is 1 and a is the
    better: b waits, a is resumed from its checkpoint, reaches rung 2 alone and waits there.
    c, d, e are each among the best floor(n/2) on arrival at both rungs and run to 4. f
    arrives last: every sample is drawn, so the rungs close with ceil(n/2): f goes on to 4;
    a (not in the top 3 of 5 at rung 2) and b (not in the top 3 of 6 at rung 1) stop there.
    19 iterations, against 24 for training every config fully."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    from orchestrator.asha import PromotionASHA, RunningLimiter

    searcher = RunningLimiter(
        OptunaSearch(metric="score", mode="max", seed=0, points_to_evaluate=[{"x": v} for v in VALUES]),
        max_concurrent=1,
    )
    scheduler = PromotionASHA(
        tmp_path, metric="score", mode="max", max_t=4, grace_period=1, reduction_factor=2, max_concurrent=1
    )
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": 1}),
        param_space={"x": tune.uniform(0.0, 1.0)},
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=len(VALUES),
            metric="score",
            mode="max",
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(storage_path=str(tmp_path), name="t", verbose=0),
    )
    results = tuner.fit()
    runs = {round(r.config["x"], 6): (r.metrics["training_iteration"], json.loads(r.metrics["log"])) for r in results}
    assert sorted(runs) == sorted(VALUES) and not results.errors
    assert {x: it for x, (it, _) in runs.items()} == {0.5: 2, 0.4: 1, 0.6: 4, 0.9: 4, 0.7: 4, 0.8: 4}
    assert runs[0.5][1] == [1, "restored at 1", 2]  # a waited at rung 1, then went on from there
    assert all(runs[x][1] == [1, 2, 3, 4] for x in (0.6, 0.9, 0.7, 0.8))  # promoted on arrival
    assert sum(it for it, _ in runs.values()) == 19
    best = results.get_best_result()
    assert best.config["x"] == pytest.approx(0.9)


class _Trial:
    """What the scheduler reads of Tune's ``Trial`` when ``resume`` requeues one."""

    def __init__(self, trial_id: str, iteration: int) -> None:
        self.trial_id, self.status, self.last_result = trial_id, "PENDING", {"training_iteration": iteration}

    def set_status(self, status: str) -> None:
        self.status = status


def test_resume_rebuilds_the_rungs_and_keeps_waiting_trials_waiting(tmp_path):
    """What a search left when its driver stopped, rungs at 1 and 2 (max_t 4): a ran to the
    end; b waits at 2 (PAUSED); c waited at 1 when the driver stopped (INTERRUPTED); d was
    stopped at 1; e was promoted past 2 and ran to 3; f failed. Tune pickles the scheduler as
    created and requeues b, c, e as PENDING: b and c must wait again, e must run."""
    import pickle
    from types import SimpleNamespace

    import pandas as pd
    from ray.tune.search import Searcher

    from orchestrator.asha import PromotionASHA, RunningLimiter

    last = {
        "a": ("TERMINATED", 4),
        "b": ("PAUSED", 2),
        "c": ("INTERRUPTED", 1),
        "d": ("STOPPED", 1),
        "e": ("INTERRUPTED", 3),
        "f": ("ERROR", 2),
    }
    at = {"a": 0.9, "b": 0.7, "c": 0.5, "d": 0.4, "e": 0.8, "f": 0.95}
    pd.DataFrame(
        [
            {"trial_name": n, "trial_id": f"id_{n}", "seed": 0, "status": s, "iterations": it}
            for n, (s, it) in last.items()
        ]
    ).to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame(
        [
            {"trial_name": n, "iteration": i, "key": k, "value": at[n] + i / 100 if k == "m" else 0.0}
            for n, (_, it) in last.items()
            for i in range(1, it + 1)
            for k in ("m", "loss")
        ]
    ).to_csv(tmp_path / "curves.csv", index=False)
    created = PromotionASHA(
        tmp_path, metric="m", mode="max", max_t=4, grace_period=1, reduction_factor=2, max_concurrent=1
    )
    scheduler = pickle.loads(pickle.dumps(created))  # as Tuner.restore has it
    limiter = RunningLimiter(Searcher(metric="m", mode="max"), max_concurrent=1)
    limiter.paused = {"id_x"}  # stale: Tune's searcher state is older than the trials'
    controller = SimpleNamespace(search_alg=SimpleNamespace(searcher=limiter))
    trials = {n: _Trial(f"id_{n}", it) for n, (_, it) in last.items() if n in "bce"}
    for t in trials.values():
        scheduler.on_trial_add(controller, t)
    assert {n: t.status for n, t in trials.items()} == {"b": "PAUSED", "c": "PAUSED", "e": "PENDING"}
    r = scheduler.rungs
    assert r.values[0] == {f"id_{n}": pytest.approx(at[n] + 0.01) for n in "abcde"}  # not the failed f
    assert r.values[1] == {f"id_{n}": pytest.approx(at[n] + 0.02) for n in "abe"}
    assert r.promoted == [{"id_a", "id_b", "id_e"}, {"id_a", "id_e"}]
    assert r.waiting == {"id_b": 1, "id_c": 0} and limiter.paused == {"id_b", "id_c"}
    # a requeued trial whose checkpoint is older than its rung runs up to it again
    again = pickle.loads(pickle.dumps(created))
    older = _Trial("id_b", 1)
    again.on_trial_add(controller, older)
    assert older.status == "PENDING" and "id_b" not in again.rungs.waiting and "id_b" not in limiter.paused


class _Controller:
    """What PromotionASHA reads of Tune's controller: the trials, whether the searcher is
    done, the results it tells the searcher, and ``stop_trial``."""

    def __init__(self, trials, finished: bool) -> None:
        self.trials, self.finished, self.stopped, self.told = trials, finished, [], []
        self.search_alg = self

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.told.append((trial_id, result))

    def get_trials(self):
        return self.trials

    def is_finished(self) -> bool:
        return self.finished

    def stop_trial(self, trial) -> None:
        self.stopped.append(trial.trial_id)
        trial.status = "TERMINATED"


def test_a_trial_promoted_while_its_pause_is_in_progress_is_restarted(tmp_path):
    """Found hanging a search: a waits at rung 1 (Tune pauses it, which takes a moment: it
    reads RUNNING until saved); b's result closes the rung and promotes a meanwhile. Once a
    reads PAUSED, the scheduler must hand it back to Tune; the first version had forgotten
    the promotion (it kept only promoted trials reading PAUSED), so a waited for ever and
    the search never ended."""
    from ray.tune.schedulers import TrialScheduler

    from orchestrator.asha import PromotionASHA

    a, b = _Trial("a", 0), _Trial("b", 0)
    a.status = b.status = "RUNNING"
    tune = _Controller([a, b], finished=True)  # both samples drawn
    asha = PromotionASHA(
        tmp_path, metric="m", mode="max", max_t=2, grace_period=1, reduction_factor=2, max_concurrent=2
    )
    assert asha.on_trial_result(tune, a, {"training_iteration": 1, "m": 0.9}) == TrialScheduler.PAUSE  # floor(1/2) = 0
    assert (
        asha.on_trial_result(tune, b, {"training_iteration": 1, "m": 0.5}) == TrialScheduler.STOP
    )  # closed: a goes on
    assert asha.choose_trial_to_run(tune) is None  # a's pause is not done yet: nothing to restart
    a.status = "PAUSED"
    assert asha.choose_trial_to_run(tune) is a
    a.status = "RUNNING"  # Tune restarted it from its checkpoint
    assert asha.on_trial_result(tune, a, {"training_iteration": 2, "m": 0.95}) == TrialScheduler.STOP  # max_t
    assert asha._resume == {}


def test_a_trial_stopped_at_a_rung_is_not_trained_again_on_resume(tmp_path):
    """Found in a search resumed after SIGKILL: results.csv had d STOPPED at rung 1 (the rung
    had closed without it), but Tune's last saved state still had d waiting there, so Tune
    requeued it and, unknown to the rungs, it trained on to max_t and replaced its row. It
    must end again untrained: held PAUSED, then stopped through Tune (which closes it in the
    searcher and the callbacks), never chosen to run."""
    import pickle

    import pandas as pd

    from orchestrator.asha import PromotionASHA

    pd.DataFrame(
        [
            {"trial_name": "a", "trial_id": "id_a", "seed": 0, "status": "TERMINATED", "iterations": 2},
            {"trial_name": "d", "trial_id": "id_d", "seed": 0, "status": "STOPPED", "iterations": 1},
        ]
    ).to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame(
        [
            {"trial_name": "a", "iteration": 1, "key": "m", "value": 0.9},
            {"trial_name": "a", "iteration": 2, "key": "m", "value": 0.95},
            {"trial_name": "d", "iteration": 1, "key": "m", "value": 0.4},
        ]
    ).to_csv(tmp_path / "curves.csv", index=False)
    created = PromotionASHA(
        tmp_path, metric="m", mode="max", max_t=2, grace_period=1, reduction_factor=2, max_concurrent=1
    )
    scheduler = pickle.loads(pickle.dumps(created))  # as Tuner.restore has it
    d = _Trial("id_d", 1)  # requeued PENDING from its rung-1 checkpoint
    tune = _Controller([d], finished=True)
    scheduler.on_trial_add(tune, d)
    assert d.status == "PAUSED" and "id_d" not in scheduler.rungs.waiting
    assert scheduler.choose_trial_to_run(tune) is None
    assert tune.stopped == ["id_d"] and d.status == "TERMINATED"
    assert tune.told == [("id_d", {"m": 0.4, "training_iteration": 1})]  # what it reported, for the searcher


def test_an_extended_search_compares_its_new_trials_with_every_earlier_one(tmp_path):
    """``extend`` of a finished search (max_t 2, one rung at 1, eta 2): a and c ran past the
    rung, b was stopped there. The extension's scheduler starts from their rung values, so a
    new trial x at 0.85 is among the best floor(4/2) = 2 of the four (a 0.9, x) and goes on,
    and then y at 0.5 is not (a, x of five) and waits. A scheduler that knew only the new
    trials would hold x too (floor(1/2) = 0 go on before the rung closes)."""
    import pandas as pd

    from orchestrator.asha import PromotionASHA

    pd.DataFrame(
        [
            {"trial_name": n, "trial_id": f"id_{n}", "seed": 0, "status": s, "iterations": it}
            for n, s, it in (("a", "TERMINATED", 2), ("b", "STOPPED", 1), ("c", "TERMINATED", 2))
        ]
    ).to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame(
        [
            {"trial_name": n, "iteration": i, "key": "m", "value": v}
            for n, i, v in (("a", 1, 0.9), ("a", 2, 0.92), ("b", 1, 0.4), ("c", 1, 0.8), ("c", 2, 0.81))
        ]
    ).to_csv(tmp_path / "curves.csv", index=False)

    def scheduler(replay: bool) -> PromotionASHA:
        return PromotionASHA(
            tmp_path, metric="m", mode="max", max_t=2, grace_period=1, reduction_factor=2, replay=replay
        )

    x, y = _Trial("new_x", 0), _Trial("new_y", 0)
    tune = _Controller([x, y], finished=False)
    extended = scheduler(replay=True)
    for t in (x, y):
        extended.on_trial_add(tune, t)
        t.status = "RUNNING"
    assert extended.on_trial_result(tune, x, {"training_iteration": 1, "m": 0.85}) == "CONTINUE"
    assert extended.on_trial_result(tune, y, {"training_iteration": 1, "m": 0.5}) == "PAUSE"
    assert extended.rungs.values[0] == pytest.approx(
        {"id_a": 0.9, "id_b": 0.4, "id_c": 0.8, "new_x": 0.85, "new_y": 0.5}
    )

    alone = scheduler(replay=False)
    x2 = _Trial("new_x", 0)
    tune2 = _Controller([x2], finished=False)
    alone.on_trial_add(tune2, x2)
    x2.status = "RUNNING"
    assert alone.on_trial_result(tune2, x2, {"training_iteration": 1, "m": 0.85}) == "PAUSE"


def test_trials_ended_before_a_resume_are_not_trained_again_and_reach_the_sampler_with_their_values(tmp_path):
    """Found in CI (a search resumed after SIGKILL): Tune saves the searcher with its
    experiment state, up to seconds before the driver dies. After that save, d reported 0.4
    at rung 1 and was STOPPED there, and b, waiting at rung 1, was promoted and ran to the
    end (max_t 2). Tune requeues both from their rung-1 checkpoints: b must not be trained
    again (its row and its value stay as they were), and neither may reach the restored
    sampler without the values it reported: d reached Optuna as pruned with no value, which
    TPE ranks below every pruned trial. e's value, which the restored sampler already holds,
    is not told twice."""
    import pickle
    import warnings

    import optuna
    import pandas as pd
    from ray.tune.search.search_generator import SearchGenerator

    from orchestrator.asha import PromotionASHA, RunningLimiter
    from orchestrator.searcher import StoppedAwareOptunaSearch

    ended = {"a": ("TERMINATED", [0.9, 0.95]), "b": ("TERMINATED", [0.7, 0.75]), "d": ("STOPPED", [0.4])}
    ended["e"] = ("STOPPED", [0.3])
    pd.DataFrame(
        [
            {"trial_name": n, "trial_id": f"id_{n}", "seed": 0, "status": s, "iterations": len(v)}
            for n, (s, v) in ended.items()
        ]
    ).to_csv(tmp_path / "results.csv", index=False)
    pd.DataFrame(
        [
            {"trial_name": n, "iteration": i, "key": "m", "value": x}
            for n, (_, v) in ended.items()
            for i, x in enumerate(v, start=1)
        ]
    ).to_csv(tmp_path / "curves.csv", index=False)

    class Sampler(StoppedAwareOptunaSearch):
        def full_length(self, params):
            return 2  # every trial here runs 2 epochs in full (the search plan's rule, tested end to end)

    # the sampler as Tune saved it: a finished; b and e told their rung-1 values; d nothing
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    searcher = Sampler(space=space, metric="m", mode="max", seed=0)
    for n in "abde":
        searcher.suggest(f"id_{n}")
    for i, x in enumerate(ended["a"][1], start=1):
        searcher.on_trial_result("id_a", {"m": x, "training_iteration": i})
    searcher.on_trial_complete("id_a", {"m": 0.95, "training_iteration": 2})
    searcher.on_trial_result("id_b", {"m": 0.7, "training_iteration": 1})
    searcher.on_trial_result("id_e", {"m": 0.3, "training_iteration": 1})
    limiter = RunningLimiter(searcher, max_concurrent=1)
    limiter.live_trials = {"id_b", "id_d", "id_e"}

    class Tune(_Controller):
        def stop_trial(self, trial) -> None:  # Tune's stop_trial for a trial that is not running
            self.search_alg.on_trial_complete(trial.trial_id)
            super().stop_trial(trial)

        def is_finished(self) -> bool:
            return True

    requeued = [_Trial(f"id_{n}", 1) for n in "bde"]  # PENDING, from their rung-1 checkpoints
    tune = Tune(requeued, finished=True)
    tune.search_alg = SearchGenerator(limiter)
    created = PromotionASHA(
        tmp_path, metric="m", mode="max", max_t=2, grace_period=1, reduction_factor=2, max_concurrent=1
    )
    scheduler = pickle.loads(pickle.dumps(created))  # as Tuner.restore has it
    for t in requeued:
        scheduler.on_trial_add(tune, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warns of a step told twice
        assert scheduler.choose_trial_to_run(tune) is None
    assert sorted(tune.stopped) == ["id_b", "id_d", "id_e"]
    trials = {tid: searcher._ot_study.trials[t.number] for tid, t in searcher._ot_trials.items()}
    S = optuna.trial.TrialState
    assert {tid: (t.state, t.value, t.intermediate_values) for tid, t in trials.items()} == {
        "id_a": (S.COMPLETE, 0.95, {1: 0.9, 2: 0.95}),
        "id_b": (S.COMPLETE, 0.75, {1: 0.7, 2: 0.75}),
        "id_d": (S.PRUNED, 0.4, {1: 0.4}),
        "id_e": (S.PRUNED, 0.3, {1: 0.3}),
    }
