"""A search read back from its files: best-so-far, cost to reach a target, the Optuna study
(and its SQLite file) and the importance Optuna computes on it."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pandas as pd
import pytest

from reports import search_analysis as sa
from reports.rundir.info import RunInfo, Scheduler

M = "eval/x/acc"
SPACE = {
    "lr": {"loguniform": [1e-4, 1e-2]},
    "rank": {"choice": [4, 8, 16]},
    "steps": {"choice": [0, 1, 3]},
    "inner_lr": {"loguniform": [1e-3, 0.1], "when": {"steps": {"gt": 0}}},
}
META = {
    "study": "s",
    "metric": M,
    "mode": "max",
    "space": SPACE,
    "scheduler": {"max_t": 9, "grace_period": 1, "reduction_factor": 3},
}
INFO = RunInfo.model_validate({**META, "kind": "search"})  # run.json as the readers get it


def _row(i, status, value, iterations, **config):
    cfg = {"lr": 1e-3, "rank": 8, "steps": 0, "inner_lr": 0.01, **config}
    return {
        "trial_name": f"trial{i:03d}_seed0",
        "trial": f"trial{i:03d}",
        "seed": 0,
        "status": status,
        "iterations": iterations,
        M: value,
        "error": "boom" if status == "ERROR" else "",
        **{f"config/{k}": v for k, v in cfg.items()},
    }


def _curves(rows):
    """Three iterations per full trial, reported one after another, one second apart."""
    out, t = [], 1000.0
    for r in rows:
        for it in range(1, r["iterations"] + 1):
            t += 1
            value = r[M] - 0.01 * (r["iterations"] - it)
            out.append(
                {
                    "trial_name": r["trial_name"],
                    "iteration": it,
                    "time_total_s": float(it),
                    "timestamp": t,
                    "key": M,
                    "value": value,
                }
            )
            out.append(
                {
                    "trial_name": r["trial_name"],
                    "iteration": it,
                    "time_total_s": float(it),
                    "timestamp": t,
                    "key": "train/loss",
                    "value": 1.0,
                }
            )
    return pd.DataFrame(out)


ROWS = [
    _row(0, "TERMINATED", 0.70, 3),
    _row(1, "STOPPED", 0.90, 1, lr=5e-3),
    _row(2, "TERMINATED", 0.75, 3, steps=3, inner_lr=0.05),
    _row(3, "ERROR", math.nan, 0, rank=16),
    _row(4, "TERMINATED", 0.72, 3, rank=4),
]


def test_best_so_far_counts_only_trials_that_ran_to_completion():
    by_trial = sa.best_so_far_by_trial(pd.DataFrame(ROWS), M, "max")
    # the stopped trial's 0.90 is from one epoch: it never becomes "the best"
    assert list(by_trial["best"]) == [0.70, 0.70, 0.75, 0.75, 0.75]
    assert list(sa.best_so_far_by_trial(pd.DataFrame(ROWS), M, "min")["best"]) == [0.70, 0.70, 0.70, 0.70, 0.70]


def test_best_so_far_by_compute_and_cost_to_reach():
    df = pd.DataFrame(ROWS)
    by = sa.best_so_far_by_compute(df, _curves(ROWS), M, "max")
    assert list(by["iterations"]) == list(range(1, 11))  # 3 + 1 + 3 + 0 + 3 iterations
    # best known after each iteration: trial000 completes at 3, trial002 at 7
    assert by["best"].isna().sum() == 2 and list(by["best"][2:]) == [0.70] * 4 + [0.75] * 4
    assert sa.cost_to_reach(by, 0.75, "max") == (7, pytest.approx(7.0))
    assert sa.cost_to_reach(by, 0.74, "max")[0] == 7 and sa.cost_to_reach(by, 0.8, "max") == (None, None)


def test_optuna_study_states_params_and_intermediate_values(tmp_path):
    df = pd.DataFrame(ROWS)
    study = sa.optuna_study(df, _curves(ROWS), INFO)
    t = study.trials
    S = optuna.trial.TrialState
    assert [x.state for x in t] == [S.COMPLETE, S.PRUNED, S.COMPLETE, S.FAIL, S.COMPLETE]
    # the pruned trial carries its last intermediate value (Optuna's convention): 0.90 at 1 epoch
    assert [x.value for x in t] == [0.70, 0.90, 0.75, None, 0.72]
    assert t[1].intermediate_values == {1: pytest.approx(0.90)}
    # inner_lr is a param only where steps > 0 (where the sampler chose it)
    assert t[0].params == {"lr": 1e-3, "rank": 8, "steps": 0}
    assert t[2].params == {"lr": 1e-3, "rank": 8, "steps": 3, "inner_lr": 0.05}
    assert isinstance(t[0].params["rank"], int)
    assert t[2].intermediate_values == {1: pytest.approx(0.73), 2: pytest.approx(0.74), 3: pytest.approx(0.75)}
    assert t[1].user_attrs["status"] == "STOPPED" and t[3].user_attrs["error"] == "boom"
    assert study.best_trial.user_attrs["trial"] == "trial002"
    # the file optuna-dashboard opens holds the same study
    path = sa.write_optuna_storage(df, _curves(ROWS), INFO, tmp_path / "optuna.db")
    loaded = optuna.load_study(study_name="s", storage=f"sqlite:///{path}")
    assert loaded.metric_names == [M]  # optuna-dashboard names the objective, not "Objective 0"
    assert [(x.state, x.value, x.params, x.intermediate_values) for x in loaded.trials] == [
        (x.state, x.value, x.params, x.intermediate_values) for x in t
    ]
    sa.write_optuna_storage(df, _curves(ROWS), INFO, path)  # rewritten, not appended
    assert len(optuna.load_study(study_name="s", storage=f"sqlite:///{path}").trials) == 5


def test_choice_cells_come_back_in_their_types():
    p = sa.search_params(INFO.model_copy(update={"space": {"a": {"choice": [0.0, 0.5, "x", True]}}}))[0]
    assert sa._param_value(p, "0.5") == 0.5 and sa._param_value(p, 0) == 0.0 and sa._param_value(p, "x") == "x"
    with pytest.raises(sa.ReportInputError, match="not one of its choices"):
        sa._param_value(p, 0.3)


def test_importance_finds_the_key_that_drives_the_metric():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        lr = float(10 ** rng.uniform(-4, -2))
        rank = int(rng.choice([4, 8, 16]))
        # the metric depends on lr alone (peaked at 1e-3), rank is noise-free irrelevant
        rows.append(_row(i, "TERMINATED", 0.9 - 0.1 * (math.log10(lr) + 3) ** 2, 3, lr=lr, rank=rank))
    df = pd.DataFrame(rows)
    imp, why = sa.importance(sa.optuna_study(df, _curves(rows), INFO))
    assert why == "" and set(imp) == {"lr", "rank", "steps"}  # inner_lr: never active, never a param
    assert imp["lr"] > 0.8 and imp["lr"] > 5 * imp["rank"] and imp["steps"] < 0.05  # steps never varied
    few = df.copy()
    few.loc[1:, "status"] = "STOPPED"
    imp, why = sa.importance(sa.optuna_study(few, _curves(rows), INFO))
    assert imp == {} and "at least 2 trials" in why


def test_importance_names_its_evaluator_instead_of_optunas_default(monkeypatch):
    """The evaluator is passed, not left to Optuna's default (which changed between
    releases): PED-ANOVA with its published settings, the one the page names."""
    seen = []
    real = optuna.importance.get_param_importances

    def spy(study, **kw):
        seen.append(kw.get("evaluator"))
        return real(study, **kw)

    monkeypatch.setattr(optuna.importance, "get_param_importances", spy)
    rows = [_row(i, "TERMINATED", 0.7 + 0.01 * i, 3, lr=10 ** (-4 + i / 10)) for i in range(12)]
    imp, _ = sa.importance(sa.optuna_study(pd.DataFrame(rows), _curves(rows), INFO))
    (evaluator,) = seen
    assert isinstance(evaluator, optuna.importance.PedAnovaImportanceEvaluator)
    assert (evaluator._target_quantile, evaluator._region_quantile, evaluator._evaluate_on_local) == (0.1, 1.0, True)
    assert "PedAnovaImportanceEvaluator: target_quantile 0.1, region_quantile 1.0, local" in sa.IMPORTANCE_EVALUATOR


def test_asha_rungs():
    assert sa.asha_rungs(INFO) == [1, 3]
    two = INFO.model_copy(update={"scheduler": Scheduler(max_t=2, grace_period=1, reduction_factor=2)})
    assert sa.asha_rungs(two) == [1]  # a run made before the rungs were recorded: from the budget
    assert sa.asha_rungs(INFO.model_copy(update={"scheduler": None})) == []  # no scheduler: no rungs


def test_report_of_a_search_where_every_trial_failed(tmp_path):
    """No completed trial and no curves.csv: the page says what is missing, nothing raises."""
    import json

    from reports import build_report

    rows = [_row(i, "ERROR", math.nan, 0) for i in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({**META, "kind": "search", "top_k": 5, "description": "d"}))
    page = build_report(tmp_path).read_text()
    assert "No importance plot: hyperparameter importance needs at least 2 trials" in page
    assert "No curves.csv" in page and page.count("boom") == 3
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'report' / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"] * 3
    assert (tmp_path / "report" / "top_k.csv").read_text().startswith("rank,trial,")


def test_search_page_opens_on_its_answer(tmp_path):
    """The search page's first sentence names the best trial that ran to completion (0.75,
    trial002; not the stopped trial001 at 0.90), its settings, and how many trials it was
    chosen among."""
    import json
    import re

    from reports import build_report

    pd.DataFrame(ROWS).to_csv(tmp_path / "results.csv", index=False)
    _curves(ROWS).to_csv(tmp_path / "curves.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({**META, "kind": "search", "top_k": 5, "description": "d"}))
    page = build_report(tmp_path).read_text()
    first = re.search(r"<p class=headline>(.*?)</p>", page).group(1)
    assert page.index("class=headline") < page.index("Top 3 completed trials")
    assert first.startswith(f"Best on {M} (max): trial002 (0.750) with lr=0.001, rank=8, steps=3, inner_lr=0.05.")
    assert "3 of 5 trials ran to completion (1 stopped early by ASHA, 1 failed)" in first


def test_top_k_ranks_completed_trials_and_keeps_clashing_keys_apart():
    from reports.kinds.search import top_k

    table = top_k(pd.DataFrame(ROWS), INFO.model_copy(update={"top_k": 2}))
    assert list(table["trial"]) == ["trial002", "trial004"] and list(table["rank"]) == [1, 2]
    assert list(table["config/rank"]) == [8, 4] and list(table["lr"]) == [
        1e-3,
        1e-3,
    ]  # space key "rank" vs the rank column


def _bloomers(early: dict[int, list[float]], final: list[float], stopped: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Completed trials with the given metric at each rung and at the end (max_t 9, rungs 1
    and 3), and ``stopped`` trials ASHA stopped at rung 1 (they have no final value)."""
    rows, curves = [], []
    for i, value in enumerate(final):
        rows.append(_row(i, "TERMINATED", value, 9))
        for it in range(1, 10):
            v = early[it][i] if it in early else value
            curves.append(
                {
                    "trial_name": rows[-1]["trial_name"],
                    "iteration": it,
                    "time_total_s": it,
                    "timestamp": it,
                    "key": M,
                    "value": v,
                }
            )
    for j in range(stopped):
        rows.append(_row(len(final) + j, "STOPPED", 0.99, 1))
        curves.append(
            {
                "trial_name": rows[-1]["trial_name"],
                "iteration": 1,
                "time_total_s": 1,
                "timestamp": 1,
                "key": M,
                "value": 0.99,
            }
        )
    return pd.DataFrame(rows), pd.DataFrame(curves)


def _spearman_by_definition(x: list[float], y: list[float]) -> float:
    """Without ties: 1 - 6 sum(d^2) / (n (n^2 - 1)), d the difference of the two ranks."""
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    n = len(x)
    return 1 - 6 * float(((rx - ry) ** 2).sum()) / (n * (n * n - 1))


def test_rung_correlation_is_spearman_over_the_trials_that_ran_to_completion():
    final = [0.70, 0.74, 0.72, 0.80, 0.76, 0.71]
    at1 = [0.60, 0.58, 0.65, 0.59, 0.61, 0.66]  # epoch 1 says little about the end
    at3 = [0.66, 0.70, 0.68, 0.77, 0.73, 0.67]  # epoch 3 ranks them as they end
    df, curves = _bloomers({1: at1, 3: at3}, final)
    table = sa.rung_correlations(df, curves, INFO).set_index("rung")
    assert list(table.index) == [1, 3]  # ASHA's rungs below max_t 9
    assert (table["trials"] == 6).all()  # the stopped trials (0.99 at rung 1) do not enter
    assert table.at[1, "rho"] == pytest.approx(_spearman_by_definition(at1, final))
    assert table.at[3, "rho"] == pytest.approx(1.0)
    assert bool(table.at[1, "low"]) and not bool(table.at[3, "low"])
    warning = sa.rung_warning(table.reset_index(), M)
    assert warning.startswith("At rung 1 (iteration 1)") and "late bloomers" in warning and "rung 3" not in warning


def test_rung_correlation_needs_enough_trials_and_a_scheduler_that_stops():
    df, curves = _bloomers({1: [0.1, 0.3, 0.2]}, [0.7, 0.8, 0.9])
    table = sa.rung_correlations(df, curves, INFO)
    assert table["rho"].isna().all() and not table["low"].any()  # 3 trials: no correlation, no warning
    fifo = RunInfo.model_validate({**META, "kind": "search", "scheduler": {"type": "fifo", "max_t": 9, "rungs": []}})
    assert sa.rung_correlations(df, curves, fifo).empty


def test_search_report_warns_where_a_rung_predicts_the_end_poorly(tmp_path):
    import json

    from reports import build_report

    final = [0.70, 0.74, 0.72, 0.80, 0.76, 0.71]
    df, curves = _bloomers({1: [0.60, 0.58, 0.65, 0.59, 0.61, 0.66], 3: [0.66, 0.70, 0.68, 0.77, 0.73, 0.67]}, final)
    df.to_csv(tmp_path / "results.csv", index=False)
    curves.to_csv(tmp_path / "curves.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps({**META, "kind": "search", "top_k": 5, "description": "d"}))
    page = build_report(tmp_path).read_text()
    assert "Early stopping check" in page and "At rung 1 (iteration 1)" in page and "At rung 3" not in page
    written = pd.read_csv(tmp_path / "report" / "rung_correlation.csv")
    assert list(written["rung"]) == [1, 3] and written.loc[1, "rho"] == pytest.approx(1.0)
