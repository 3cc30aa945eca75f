"""``run probes --quick`` end to end on the shared local Ray: the embedding cache filled once
by the run's preparation and only read by the trials, the note's files in every trial's
directory, and the report's track comparison."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from orchestrator.cli import main
from reports.track import trial_dir
from tests.latex_check import assert_fits
from trainables.probe.loop import OUTPUT_FILES


@pytest.fixture(scope="module")
def run(ray_local, cache_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("probes") / "run"
    log = cache_dir / "embeddings" / "builds.log"
    before = log.read_text().splitlines() if log.is_file() else []
    assert main(["run", "probes", "--quick", "--out", str(out)]) == 0
    after = log.read_text().splitlines()
    return out, [json.loads(x) for x in after[len(before) :]]


def test_every_trial_reads_the_cache_the_preparation_filled(run):
    out, builds = run
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 8 and (df["status"] == "TERMINATED").all()
    # the stand-in and the untrained control: 16 classes x 4 images x 3 domains, each encoded
    # once, in the driver; no trial encoded anything
    assert sorted(b["encoder"] for b in builds if b["n"] == 16 * 4 * 3) == ["standin", "standin:untrained"]
    assert (df["train/encoded"] == 0).all()
    # classes the stand-in never saw in pre-training are still far better separated than by random features
    acc = df.groupby("variant")["eval/probe/acc"].mean()
    assert acc["standin-linear"] > 2 * acc["untrained-linear"]
    weights = df[df["variant"] == "learned_weights-linear"]
    assert (weights["train/fusion_weight/0"] > weights["train/fusion_weight/1"]).all()


def test_trials_write_the_notes_files(run):
    out, _ = run
    df = pd.read_csv(out / "results.csv")
    for row in df.itertuples():
        d = trial_dir(out, "probes", row.trial_name)
        assert all((d / f).is_file() for f in OUTPUT_FILES), d
        pred, true = np.load(d / "predictions.npy"), np.load(d / "true_labels.npy")
        assert (pred == true).mean() == pytest.approx(df.loc[row.Index, "eval/probe/acc"])
        summary = json.loads((d / "summary.json").read_text())
        assert summary["seed"] == row.seed and len(summary["top_classes"]) == 5


def test_report_has_the_track_comparison(run, tmp_path):
    out, _ = run
    df = pd.read_csv(out / "results.csv")
    table = pd.read_csv(out / "report" / "track_comparison.csv")
    assert table["Variant"].tolist() == [
        "standin-linear",
        "standin-supcon",
        "untrained-linear",
        "learned_weights-linear",
    ]
    row = table.set_index("Variant").loc["untrained-linear"]
    accs = df.loc[df["variant"] == "untrained-linear", "eval/probe/acc"]
    assert row["Accuracy"] == f"{accs.mean():.4f} ± {accs.std(ddof=1):.4f}"
    assert row["Encoders"] == "standin:untrained" and row["Seeds"] == 2
    # best / worst classes: per-class F1 from the trials' own results.csv, averaged over seeds
    per = pd.concat(
        [
            pd.read_csv(trial_dir(out, "probes", t) / "results.csv")
            for t in df.loc[df["variant"] == "untrained-linear", "trial_name"]
        ]
    )
    best = per[per["support"] > 0].groupby("name")["f1"].mean().sort_values(kind="stable")[::-1]
    assert row["Best 3 classes (F1)"].startswith(f"{best.index[0]} ({best.iloc[0]:.2f})")
    assert "probe prediction CV (lower is better)" in (out / "report" / "ablation.md").read_text()
    page = (out / "report" / "index.html").read_text()
    assert "Track comparison" in page and "fig_confusion.html" in page  # beside it, the confusions
    f1 = pd.read_csv(out / "report" / "per_class_f1.csv").set_index("class")
    assert f1.loc[best.index[0], "untrained-linear"] == pytest.approx(best.iloc[0])
    assert_fits([out / "report" / "track_comparison.tex", out / "report" / "ablation.tex"], tmp_path)


def test_the_probe_page_with_its_confusions_fits_and_draws(run, tmp_path):
    """The page with its confusion matrices, static figures exported, opened 1280 px wide: nothing
    past the window, nothing on the console (no missing image)."""
    from reports import build_report
    from tests.browser_check import assert_page_fits
    from tests.conftest import static_figures

    out, _ = run
    with static_figures():
        build_report(out)
    assert (out / "report" / "fig_confusion.png").stat().st_size > 0
    assert_page_fits(out / "report" / "index.html", tmp_path)


PROBE_SEARCH = """
name: probe-search
kind: search
trainable: probe
metric: val/probe/acc
mode: max
seeds: [0]
num_samples: 3
search_seed: 0
top_k: 3
base: {encoders: [standin], head: linear, epochs: 10, synth_classes: 16}
space:
  lr: {loguniform: [1.0e-3, 1.0e-1]}
"""


def test_a_probe_search_ranks_trials_that_report_once(ray_local, standin, tmp_path, monkeypatch):
    """A probe reports its final result once, whatever its ``epochs`` (passes of the head):
    every trial that did so completed, none was stopped early, and the search ranks them (on
    the validation images); before, each was marked STOPPED and nothing was ranked."""
    import optuna

    from orchestrator.searcher import StoppedAwareOptunaSearch

    (tmp_path / "s.yaml").write_text(PROBE_SEARCH)
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(out), "--max-concurrent", "1"]) == 0
    df = pd.read_csv(out / "results.csv")
    assert list(df["status"]) == ["TERMINATED"] * 3 and (df["iterations"] == 1).all()
    top = pd.read_csv(out / "report" / "top_k.csv")
    assert len(top) == 3 and list(top["val/probe/acc"]) == sorted(df["val/probe/acc"], reverse=True)
    searcher = StoppedAwareOptunaSearch()
    searcher.restore_from_dir(str(out / "tune"))
    assert [t.state for t in searcher._ot_study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
