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

from orchestrator import ray_runtime  # noqa: F401  (sets Tune's environment before it is imported)
from orchestrator.plan import TrialPlan
from orchestrator.results import ResultsTable

TUNE_DIR = "tune"


def _quiet(record) -> bool:
    """Logging filter: drop Tune's per-trial error tracebacks and its end-of-run summary."""
    return record.levelno < 40  # below logging.ERROR


def _by_plan_index(fn: Callable[[dict[str, Any]], None], configs: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    """The trainable, called with the full config of the plan entry Tune's ``_trial`` names."""

    @functools.wraps(fn)
    def trainable(config: dict[str, Any]) -> None:
        return fn(configs[config["_trial"]])

    return trainable


def _error_line(trial) -> str:
    """The last line of the trial's error (Tune writes the traceback to its error file)."""
    text = ""
    if trial.error_file and Path(trial.error_file).is_file():
        text = Path(trial.error_file).read_text(errors="replace")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "error (no message)"


def _make_progress_callback(table: ResultsTable, plans: list[TrialPlan], metric: str, log: Callable[[str], None]):
    from ray import tune

    class Progress(tune.Callback):
        """Writes each trial's row when it starts and ends, and prints one line per end."""

        def __init__(self) -> None:
            self.last: dict[str, dict[str, Any]] = {}
            self.done = 0

        def on_trial_start(self, iteration, trials, trial, **info):
            table.started(trial.config["_trial"], trial.trial_id)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            self.last[trial.trial_id] = result

        def _end(self, trial, status: str, error: str = "") -> None:
            result = self.last.get(trial.trial_id)
            table.finished(trial.config["_trial"], trial_id=trial.trial_id, status=status, result=result, error=error)
            self.done += 1
            plan = plans[trial.config["_trial"]]
            value = (result or {}).get(metric)
            shown = f"{metric}={value:.4f}  " if isinstance(value, (int, float)) else ""
            wall = f"({result['time_total_s']:.0f} s)" if result and "time_total_s" in result else ""
            log(f"[{self.done:>{len(str(len(plans)))}}/{len(plans)}] {plan.variant:<20} seed={plan.seed:<3} "
                f"{status:<10} {shown}{wall}{'  ' + error if error else ''}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._end(trial, "TERMINATED")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, "ERROR", _error_line(trial))

    return Progress()


def execute(*, study: str, trainable: Callable[[dict[str, Any]], None], plans: list[TrialPlan], table: ResultsTable,
            run_dir: Path, metric: str, cpus_per_trial: float, gpus_per_trial: float,
            max_concurrent: int | None, max_failures: int, log: Callable[[str], None] = print) -> None:
    """Run every planned trial to completion (or failure); rows land in ``table`` as they end.

    If the run is interrupted (Ctrl-C), trials that were still running are marked
    INTERRUPTED and those never started stay PENDING.
    """
    import logging

    from ray import tune

    # Tune logs every trial failure with its full traceback; the traceback stays in the
    # trial's error file and the user gets our one line per trial instead.
    for name in ("ray.tune.execution.tune_controller", "ray.tune.tune"):
        logger = logging.getLogger(name)
        if _quiet not in logger.filters:
            logger.addFilter(_quiet)
    assert [p.index for p in plans] == list(range(len(plans)))
    names = [f"{study}_{p.name}" for p in plans]
    tuner = tune.Tuner(
        tune.with_resources(_by_plan_index(trainable, [p.config for p in plans]),
                            {"cpu": cpus_per_trial, "gpu": gpus_per_trial}),
        param_space={"_trial": tune.grid_search(list(range(len(plans))))},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
            trial_name_creator=lambda t: names[t.config["_trial"]],
            trial_dirname_creator=lambda t: names[t.config["_trial"]],
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(Path(run_dir).resolve()),
            verbose=0,
            callbacks=[_make_progress_callback(table, plans, metric, log)],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=max_failures),
        ),
    )
    tuner.fit()
    table.mark_unfinished("INTERRUPTED")
