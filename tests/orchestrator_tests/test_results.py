"""results.csv: every planned trial has a row from the start; rows change as trials end."""

from __future__ import annotations

import pandas as pd

from orchestrator.plan import TrialPlan
from orchestrator.results import ResultsTable


def _plans() -> list[TrialPlan]:
    return [
        TrialPlan(i, v, s, {"seed": s, "lr": 0.1, "lora_targets": ["qkv", "attn.proj"]})
        for i, (v, s) in enumerate([("a", 0), ("a", 1), ("b", 0)])
    ]


def test_rows_from_start_to_end(tmp_path):
    plans = _plans()
    table = ResultsTable(tmp_path, "s", plans, {p.index: {"data_fingerprint": "fp", "git_commit": "c"} for p in plans})
    table.write()
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df["status"]) == ["PENDING"] * 3
    assert list(df["trial_name"]) == ["a_seed0", "a_seed1", "b_seed0"]
    assert df["config/lora_targets"].iloc[0] == "qkv+attn.proj"
    assert df["config_hash"].iloc[0] == df["config_hash"].iloc[1]  # seeds share the hash

    table.started(0, "t0")
    table.started(1, "t1")
    table.finished(
        0,
        trial_id="t0",
        status="TERMINATED",
        result={
            "training_iteration": 3,
            "time_total_s": 12.5,
            "eval/x/acc": 0.8,
            "train/loss": 1.0,
            "config": {"seed": 0},
            "timestamp": 123,
        },
    )
    table.mark_unfinished("INTERRUPTED")
    df = pd.read_csv(tmp_path / "results.csv")
    assert list(df["status"]) == ["TERMINATED", "INTERRUPTED", "PENDING"]
    assert df.loc[0, "iterations"] == 3 and df.loc[0, "wall_s"] == 12.5 and df.loc[0, "eval/x/acc"] == 0.8
    assert "timestamp" not in df.columns and "config" not in df.columns  # Ray's own keys stay out
    cols = list(df.columns)
    assert cols[:6] == ["trial_id", "trial_name", "study", "variant", "seed", "status"]
    assert cols.index("config/lr") < cols.index("eval/x/acc") < cols.index("data_fingerprint")


def test_the_progress_lines_line_up_whatever_the_variant_names(tmp_path):
    """One line per ended trial, its columns at the same place on every line, also where a
    variant's name is longer than 20 characters (``lora+domain_classifier``)."""
    from types import SimpleNamespace

    from orchestrator.progress import GridProgress

    names = ["lora", "lora+domain_classifier_and_more"]
    plans = [TrialPlan(i, v, 0, {"seed": 0}) for i, v in enumerate(names)]
    ResultsTable(tmp_path, "s", plans, {}).write()
    lines: list[str] = []
    progress = GridProgress(tmp_path, "s", plans, "eval/x/acc", "variant", log=lines.append)
    for p in plans:
        trial = SimpleNamespace(config={"_trial": p.index}, trial_id=f"t{p.index}", last_result={})
        progress.on_trial_start(0, [], trial)
        progress.on_trial_result(0, [], trial, {"training_iteration": 1, "eval/x/acc": 0.5, "time_total_s": 1.0})
        progress.on_trial_complete(0, [], trial)
    assert [ln.split()[1] for ln in lines] == names
    assert len({ln.index(" seed=") for ln in lines}) == 1 and len({ln.index("TERMINATED") for ln in lines}) == 1, lines
