"""A finished search, analysed from its run directory: learning curves, best-so-far, and the
search as an Optuna study (for ``optuna.importance`` and for ``optuna-dashboard``).

Everything here reads ``results.csv``, ``curves.csv`` and ``run.json``; Ray is not needed.
The Optuna study is rebuilt post hoc with ``optuna.trial.FrozenTrial`` rather than taken
from Tune: Tune keeps its searcher's study pickled inside its own state, and a rebuilt one
also works for a search that was interrupted.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reports.errors import ReportInputError
from reports.rundir.info import RunInfo
from reports.rundir.names import COMPLETED, STOPPED, rung_milestones


def metric_curves(curves: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (trial, iteration) of ``metric``: trial_name, iteration, time_total_s, timestamp, value."""
    c = curves[curves["key"] == metric].drop(columns="key")
    return c.drop_duplicates(["trial_name", "iteration"], keep="last").sort_values(["timestamp", "trial_name"])


def _better(mode: str):
    return (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)


def best_so_far_by_trial(df: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """Trials in the order the sampler proposed them, with the best final metric of the trials
    that ran to completion so far (stopped trials never count: their metric is from fewer epochs)."""
    better, best, rows = _better(mode), math.nan, []
    for number, (_, r) in enumerate(df.iterrows()):
        value = float(r[metric]) if metric in df.columns and pd.notna(r.get(metric)) else math.nan
        if r["status"] == COMPLETED and not math.isnan(value) and (math.isnan(best) or better(value, best)):
            best = value
        rows.append({"number": number, "trial": r["trial_name"], "status": r["status"], "value": value, "best": best})
    return pd.DataFrame(rows)


def best_so_far_by_compute(df: pd.DataFrame, curves: pd.DataFrame, metric: str, mode: str) -> pd.DataFrame:
    """After each reported iteration (in the order they arrived, whichever trial): training
    iterations spent so far by all trials, seconds since the search started, and the best
    final metric of the trials completed by then. The compute axis of a search's cost.

    ``status`` is the trial's, and ``value`` its metric at its last reported iteration (NaN
    at the others): each trial is one point, where it ended (ran to completion, or stopped)."""
    c = metric_curves(curves, metric)
    if c.empty:
        return pd.DataFrame(columns=["iterations", "elapsed_s", "best", "trial", "status", "value"])
    final = {r["trial_name"]: int(r["iterations"]) for _, r in df.iterrows() if r["status"] == COMPLETED}
    status = dict(zip(df["trial_name"], df["status"]))
    last = c.groupby("trial_name")["iteration"].max().to_dict()
    start = float((c["timestamp"] - c["time_total_s"]).min())
    better, best, rows = _better(mode), math.nan, []
    for spent, (_, r) in enumerate(c.iterrows(), start=1):
        if final.get(r["trial_name"]) == int(r["iteration"]) and (math.isnan(best) or better(r["value"], best)):
            best = float(r["value"])
        rows.append(
            {
                "iterations": spent,
                "elapsed_s": float(r["timestamp"]) - start,
                "best": best,
                "trial": r["trial_name"],
                "status": status.get(r["trial_name"], ""),
                "value": float(r["value"]) if last[r["trial_name"]] == r["iteration"] else math.nan,
            }
        )
    return pd.DataFrame(rows)


def cost_to_reach(by_compute: pd.DataFrame, target: float, mode: str) -> tuple[int | None, float | None]:
    """(iterations, seconds) spent when a completed trial first reached ``target``; Nones if never."""
    hit = by_compute[by_compute["best"] >= target] if mode == "max" else by_compute[by_compute["best"] <= target]
    if hit.empty:
        return None, None
    return int(hit["iterations"].iloc[0]), float(hit["elapsed_s"].iloc[0])


def _param_value(param, cell: Any) -> Any:
    """A results.csv cell back in the type of its distribution (CSV keeps no types)."""
    if param.kind == "choice":
        for choice in param.values:
            if str(choice) == str(cell) or (
                isinstance(choice, (int, float)) and not isinstance(choice, bool) and _float(cell) == float(choice)
            ):
                return choice
        raise ReportInputError(f"results.csv: {param.name}={cell!r} is not one of its choices {list(param.values)}")
    return int(round(float(cell))) if param.kind == "int" else float(cell)


def _float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _distribution(param):
    import optuna.distributions as d

    if param.kind == "choice":
        return d.CategoricalDistribution(list(param.values))
    if param.kind == "int":
        return d.IntDistribution(int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return d.FloatDistribution(float(param.low), float(param.high), step=param.step, log=param.kind == "loguniform")


def search_params(meta: RunInfo) -> list:
    from reports.rundir.space import SearchSpaceError, parse_space

    space = meta.space
    if not isinstance(space, dict):
        raise ReportInputError("run.json: the search space is missing (a run from an older version?)")
    try:
        return parse_space(space)
    except SearchSpaceError as err:
        raise ReportInputError(f"run.json: {err}") from None


def optuna_study(df: pd.DataFrame, curves: pd.DataFrame, meta: RunInfo, storage: Any = None):
    """The search as an Optuna study: TERMINATED -> COMPLETE (its final metric), STOPPED ->
    PRUNED (with its last intermediate value as its value, Optuna's convention for pruned
    trials), ERROR and INTERRUPTED -> FAIL; PENDING trials never ran and are left out. Params
    are the keys the sampler chose (conditional keys only where their condition held),
    intermediate values the per-iteration metric. The study carries the metric's name, so
    optuna-dashboard shows it rather than "Objective 0"."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created..." is noise in a report
    params = search_params(meta)
    metric = meta.metric
    curve = metric_curves(curves, metric)
    study = optuna.create_study(
        storage=storage,
        study_name=meta.study,
        load_if_exists=False,
        direction="maximize" if meta.mode == "max" else "minimize",
    )
    import warnings

    with warnings.catch_warnings():  # "experimental since 3.2": stable in use, and noise in a report
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([metric])
    states = {COMPLETED: optuna.trial.TrialState.COMPLETE, STOPPED: optuna.trial.TrialState.PRUNED}
    by_trial = dict(tuple(curve.groupby("trial_name")))  # once, not a scan of every curve per trial
    empty = curve.iloc[:0]
    for _, r in df.iterrows():
        if r["status"] in ("PENDING", "RUNNING", "PAUSED"):
            continue
        config = {p.name: _param_value(p, r[f"config/{p.name}"]) for p in params if f"config/{p.name}" in r}
        values, chosen = _config_row(r), {}
        for p in params:  # a key was sampled only where its condition held (search_space.DefineByRun)
            if p.name in config and p.active(values):
                chosen[p.name] = values[p.name] = config[p.name]
        state = states.get(r["status"], optuna.trial.TrialState.FAIL)
        value = r.get(metric) if state == optuna.trial.TrialState.COMPLETE else None
        if value is not None and (pd.isna(value) or not math.isfinite(float(value))):
            state, value = optuna.trial.TrialState.FAIL, None
        mine = by_trial.get(r["trial_name"], empty)
        intermediate = {int(i): float(v) for i, v in zip(mine["iteration"], mine["value"]) if math.isfinite(v)}
        if state == optuna.trial.TrialState.PRUNED and intermediate:
            value = intermediate[max(intermediate)]  # as study.tell(state=PRUNED) records it
        if len(mine):  # the trial's span from its reports; without curves, "now" (Optuna needs both)
            end = float(mine["timestamp"].max())
            start, complete = (
                dt.datetime.fromtimestamp(end - float(mine["time_total_s"].max())),
                dt.datetime.fromtimestamp(end),
            )
        else:
            start = complete = dt.datetime.now()
        study.add_trial(
            optuna.trial.FrozenTrial(
                number=0,
                trial_id=0,
                state=state,
                value=None if value is None else float(value),
                values=None,
                datetime_start=start,
                datetime_complete=complete,
                params=chosen,
                distributions={p.name: _distribution(p) for p in params if p.name in chosen},
                user_attrs={
                    "trial": r.get("trial", r["trial_name"]),
                    "status": r["status"],
                    "iterations": int(r["iterations"]),
                    **({"error": str(r["error"])} if isinstance(r.get("error"), str) and r["error"] else {}),
                },
                system_attrs={},
                intermediate_values=intermediate,
            )
        )
    return study


def _config_row(r: pd.Series) -> dict[str, Any]:
    """The row's config values by key (for evaluating ``when`` conditions on keys outside the space)."""
    out = {}
    for col, v in r.items():
        if isinstance(col, str) and col.startswith("config/") and isinstance(v, (list, tuple, dict)):
            out[col.removeprefix("config/")] = v  # typed from configs.json: a list stays a list
        elif isinstance(col, str) and col.startswith("config/") and pd.notna(v):
            f = _float(v)
            out[col.removeprefix("config/")] = f if f is not None and not isinstance(v, str) else v
    return out


#: The importance evaluator, named rather than left to Optuna's default (which has changed
#: between releases): PED-ANOVA (Watanabe et al. 2023) with its published settings, the top
#: 10% of trials against all of them, on the local space; it weighs conditional keys too.
IMPORTANCE_EVALUATOR = "PED-ANOVA (optuna PedAnovaImportanceEvaluator: target_quantile 0.1, region_quantile 1.0, local)"


def importance(study) -> tuple[dict[str, float], str]:
    """``optuna.importance.get_param_importances`` on the completed trials with the named
    evaluator (``IMPORTANCE_EVALUATOR``); ({}, why) when it cannot."""
    import optuna

    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < 2:
        return (
            {},
            f"hyperparameter importance needs at least 2 trials that ran to completion (this search has {len(complete)})",
        )
    if not any(t.params for t in complete):
        return {}, "no completed trial sampled any key (only the base config ran to completion)"
    import warnings

    try:
        with warnings.catch_warnings():  # e.g. "some regimes ... have less than 2 trials": the page warns on few trials
            warnings.simplefilter("ignore", UserWarning)
            evaluator = optuna.importance.PedAnovaImportanceEvaluator(
                target_quantile=0.1, region_quantile=1.0, evaluate_on_local=True
            )
            return dict(optuna.importance.get_param_importances(study, evaluator=evaluator)), ""
    except (ValueError, RuntimeError) as err:
        return {}, f"optuna.importance could not evaluate this search: {err}"


def write_optuna_storage(study_df: pd.DataFrame, curves: pd.DataFrame, meta: RunInfo, path: Path) -> Path:
    """``optuna.db`` (SQLite) for ``optuna-dashboard sqlite:///<path>``, rewritten from scratch."""
    path = Path(path)
    path.unlink(missing_ok=True)
    optuna_study(study_df, curves, meta, storage=f"sqlite:///{path.resolve()}")
    return path


def asha_rungs(meta: RunInfo) -> list[int]:
    """The iterations at which ASHA compared trials: grace, grace*rf, ... below max_t."""
    s = meta.scheduler
    if s is None:  # a run that recorded no scheduler compared no trials at rungs
        return []
    if s.rungs is not None:  # recorded by the run
        return list(s.rungs)
    return rung_milestones(
        grace_period=s.grace_period or 1, reduction_factor=s.reduction_factor or 3, max_t=s.max_t or 1
    )


# -- does an early rung predict the end? -------------------------------------------------

#: Below this rank correlation between a rung's metric and the final one, ASHA's decisions at
#: that rung say little about where a trial ends: late bloomers are stopped. The report warns.
LOW_RANK_CORRELATION = 0.5
#: Fewer trials with both values than this: no correlation (with 3, rho is one of -1, -0.5,
#: 0.5, 1, whatever the trials).
MIN_TRIALS_FOR_CORRELATION = 4


def rung_correlations(df: pd.DataFrame, curves: pd.DataFrame, meta: RunInfo) -> pd.DataFrame:
    """For each rung at which the scheduler compared trials (``asha_rungs``, before the last
    iteration): Spearman's rank correlation (``scipy.stats.spearmanr``) between each trial's
    study metric at that rung and its final metric, over the trials that ran to completion
    (the only ones with both). Columns: rung, trials, rho, p (NaN below
    MIN_TRIALS_FOR_CORRELATION trials or where the values at the rung do not vary), low.

    Only the trials that were not stopped enter, so the correlation is that of the trials
    ASHA kept (a narrower range than all the trials): it tends to be lower than over every
    trial, and a low value says the rung's ranking did not carry over among those it kept."""
    from scipy.stats import spearmanr

    metric = meta.metric
    max_t = (meta.scheduler.max_t if meta.scheduler else None) or 0
    rungs = [r for r in asha_rungs(meta) if not max_t or r < max_t]
    cols = ["rung", "trials", "rho", "p", "low"]
    if not rungs or metric not in df.columns or curves.empty:
        return pd.DataFrame(columns=cols)
    done = df[(df["status"] == COMPLETED) & df[metric].notna()].set_index("trial_name")[metric]
    at = metric_curves(curves, metric).set_index(["trial_name", "iteration"])["value"]
    rows = []
    for rung in rungs:
        names = [n for n in done.index if (n, rung) in at.index]
        early = np.array([at[(n, rung)] for n in names], dtype=float)
        final = done.loc[names].to_numpy(dtype=float)
        rho = p = math.nan
        if len(names) >= MIN_TRIALS_FOR_CORRELATION and np.ptp(early) > 0 and np.ptp(final) > 0:
            res = spearmanr(early, final)
            rho, p = float(res.statistic), float(res.pvalue)
        rows.append({"rung": rung, "trials": len(names), "rho": rho, "p": p, "low": rho < LOW_RANK_CORRELATION})
    return pd.DataFrame(rows, columns=cols)


def rung_warning(table: pd.DataFrame, metric: str) -> str:
    """One sentence per rung whose correlation is low; empty when none is."""
    low = table[table["low"]]
    return " ".join(
        f"At rung {int(r.rung)} (iteration {int(r.rung)}), the rank of a trial's {metric} predicts its final rank "
        f"poorly (Spearman rho = {r.rho:.2f} over the {int(r.trials)} trials that ran to completion): ASHA's "
        f"decisions there may stop trials that would have ended among the best (late bloomers); a larger "
        f"grace_period or a smaller reduction_factor stops fewer of them."
        for r in low.itertuples()
    )
