"""Ray Tune's ``OptunaSearch``, told which trials the scheduler stopped early.

When ASHA stops a running trial, Tune hands its last result to the searcher's
``on_trial_complete``, and ``OptunaSearch`` records it as COMPLETE: TPE would then model a
1-epoch accuracy as if it were a finished trial's. Optuna's own pruners record such a trial
as PRUNED, its per-epoch values as intermediate values (which ``OptunaSearch`` already
reports each epoch), and TPE treats PRUNED trials apart from complete ones. Neither Tune nor
Optuna knows from a result alone whether the trial ran to its end, so this searcher is given
the rule: a trial that ended with fewer reports than its config's full length (its
``iterations``, capped by ASHA's ``max_t``) was stopped early.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch
from ray.tune.utils.util import unflatten_dict


class StoppedAwareOptunaSearch(OptunaSearch):
    """``OptunaSearch`` recording scheduler-stopped trials as PRUNED, finished ones as COMPLETE.

    ``trainable``: the trainable's registered name; ``search``: the compiled ``SearchPlan``
    (its base config, space and ``max_t``). Both pickle with the searcher (``save`` uses plain
    pickle: the registry entry itself holds closures, so only its name is kept), so the rule
    holds after ``resume`` too (Tune restores the searcher from its saved state)."""

    def __init__(self, *args, trainable: str | None = None, search=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._trainable, self._search = trainable, search

    def full_length(self, params: dict[str, Any]) -> int | None:
        """Reports of a trial with these sampled values that runs to its end (None: its
        config is refused, and the trial fails anyway)."""
        from trainables import get_trainable

        entry = get_trainable(self._trainable)
        try:
            config = self._search.full_config(entry, unflatten_dict(params))
        except ValueError:
            return None
        return min(int(self._search.max_t), entry.full_iterations(config))

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        # An epoch reported again: a resumed trial reruns the epochs after its last checkpoint,
        # and ``PromotionASHA`` hands on what a trial reported before the driver stopped, some
        # of which the restored state may hold. Optuna keeps the first value (and warns).
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
            if int(result.get("training_iteration", -1)) in frozen.intermediate_values:
                return
        super().on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if error or trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return super().on_trial_complete(trial_id, result=result, error=error)
        import optuna

        ot_trial = self._ot_trials[trial_id]
        if not result:
            # Tune ends a trial that is not running (waiting at a rung, or requeued by
            # ``resume`` after it had ended) with no result: its last reported epoch is it
            reported = self._ot_study._storage.get_trial(ot_trial._trial_id).intermediate_values
            if not reported:
                return super().on_trial_complete(trial_id, result=result, error=error)
            last = max(reported)
            result = {self.metric: reported[last], "training_iteration": last}
        reached = int(result.get("training_iteration", 0))
        value = result.get(self.metric)
        frozen = self._ot_study._storage.get_trial(ot_trial._trial_id)
        if value is not None and reached not in frozen.intermediate_values:
            # the result that made the scheduler stop the trial (early, or at max_t) never
            # reached ``on_trial_result``: every reported epoch is an intermediate value
            ot_trial.report(float(value), reached)
        full = self.full_length(ot_trial.params)
        if full is None or reached >= full:
            return super().on_trial_complete(trial_id, result=result, error=error)
        self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        self._completed_trials.add(trial_id)
