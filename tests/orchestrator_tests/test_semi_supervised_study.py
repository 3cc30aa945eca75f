"""The shipped semi-supervised study, ``--quick``, end to end on the shared Ray: supervised-only
against entropy minimisation on the thermal images whose labels are hidden, tested on the
thermal domain, with its report."""

from __future__ import annotations

import json

import pandas as pd

from orchestrator.cli import main
from orchestrator.studies import load_study


def test_semi_supervised_quick_runs_both_variants_on_a_target_domain_without_labels(ray_local, tmp_path):
    spec = load_study("semi-supervised")[0].quick_form()
    out = tmp_path / "semi"
    assert main(["run", "semi-supervised", "--quick", "--out", str(out)]) == 0
    df = pd.read_csv(out / "results.csv")
    assert sorted(df["variant"].unique()) == ["semi-supervised", "supervised"]
    assert len(df) == 2 * len(spec.seeds) and set(df["status"]) == {"TERMINATED"}
    assert set(df["config/unlabeled_data"]) == {"synthfaces:thermal"}  # both: no thermal label trained on
    semi, sup = df[df["variant"] == "semi-supervised"], df[df["variant"] == "supervised"]
    assert (semi["config/lambda_unlabeled"] > 0).all() and (sup["config/lambda_unlabeled"] == 0).all()
    assert (semi["train/unlabeled_loss"] > 0).all() and sup["train/unlabeled_loss"].isna().all()
    # the unlabeled thermal images: two per trained identity (synth_train_images: 2 per domain)
    assert (df["unlabeled_images"] % 2 == 0).all() and df["unlabeled_images"].nunique() == 1
    assert df["eval/thermal/acc"].notna().all()
    table = pd.read_csv(out / "report" / "ablation.csv")
    assert set(table.loc[table["metric"] == "eval/thermal/acc", "variant"]) == {"semi-supervised", "supervised"}
    assert json.loads((out / "run.json").read_text())["metric"] == "eval/thermal/acc"
