"""The metric-learning studies end to end (``run mining|triplet-search|feedback|temperature
--quick`` on the shared local Ray), and their bad input: one line, exit status 2."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.cli import main
from tests.latex_check import assert_fits


@pytest.fixture(scope="module")
def runs(ray_local, tmp_path_factory):
    root = tmp_path_factory.mktemp("metric-studies")
    out = {}
    for study in ("mining", "triplet-search", "feedback", "temperature"):
        out[study] = root / study
        assert main(["run", study, "--quick", "--out", str(out[study])]) == 0, study
    return out


def _results(run) -> pd.DataFrame:
    return pd.read_csv(run / "results.csv")


def test_mining_quick(runs, tmp_path):
    df = _results(runs["mining"])
    assert (df["status"] == "TERMINATED").all() and len(df) == 6
    assert sorted(df["variant"].unique()) == ["baseline", "maximum", "minimal"]
    base, mn, mx = (df[df["variant"] == v] for v in ("baseline", "minimal", "maximum"))
    assert (base["iterations"] == 1).all() and (base["train/epochs"] == 0).all()
    # the mining levels trained on 25 % and 100 % of the same possible triplets
    possible = mx["train/possible_triplets"].iloc[0]
    assert (mx["train/triplets"] == possible).all() and (mn["train/triplets"] == math.ceil(0.25 * possible)).all()
    # the baseline is the backbone before fine-tuning: the same numbers for every seed, no gain
    assert base["eval/twin/eer"].nunique() == 1 and (base["eval/twin/eer_gain"] == 0).all()
    for _, row in pd.concat([mn, mx]).iterrows():
        assert row["eval/twin/eer_gain"] == pytest.approx(base["eval/twin/eer"].iloc[0] - row["eval/twin/eer"])
    table = (runs["mining"] / "report" / "ablation.md").read_text()
    assert "baseline (ref.)" in table and "twin EER (lower is better)" in table
    assert_fits([runs["mining"] / "report" / "ablation.tex"], tmp_path)


def test_triplet_search_ranks_on_validation_identities(runs):
    df = _results(runs["triplet-search"])
    assert len(df) == 4 and df["status"].isin(["TERMINATED", "STOPPED"]).all()
    meta = json.loads((runs["triplet-search"] / "run.json").read_text())
    assert meta["metric"] == "val/twin/eer" and meta["mode"] == "min"
    assert {"eval/twin/eer", "val/twin/eer", "config/margin", "config/distance"} <= set(df.columns)
    assert (runs["triplet-search"] / "report" / "index.html").is_file()


def test_feedback_quick(runs, tmp_path):
    df = _results(runs["feedback"])
    assert (df["status"] == "TERMINATED").all() and len(df) == 10
    # a test file over other people: no test pair has an image (or person) that was trained on
    assert (df["eval/pairs/with_training_image"] == 0).all()
    fixed = df[df["config/threshold_policy"] == "fixed"]
    assert (fixed["eval/pairs/threshold"] == 0.4).all()  # the note's fixed threshold, not tuned
    assert (df.loc[df["config/threshold_policy"] == "eer", "eval/pairs/threshold"] != 0.4).all()
    assert (df.loc[df["config/baseline"], "eval/pairs/eer_gain"] == 0).all()
    texs = sorted((runs["feedback"] / "report").glob("*.tex"))
    assert texs
    assert_fits(texs, tmp_path)
    # synthetic data stated as a fact of the run (the feedback study draws no sample grid)
    import json

    assert json.loads((runs["feedback"] / "run.json").read_text())["synthetic"] is True
    assert not (runs["feedback"] / "data_samples.png").exists()
    assert "synthetic" in (runs["feedback"] / "report" / "index.html").read_text()
    assert all("Data: synthfaces (synthetic)." in t.read_text() for t in texs)


def test_temperature_quick(runs):
    df = _results(runs["temperature"])
    assert (df["status"] == "TERMINATED").all() and len(df) == 6
    assert sorted(df["point"].unique().tolist()) == ["base", "baseline=True", "temperature=0.2"]
    trained = df[~df["config/baseline"]]
    assert set(trained["config/temperature"]) == {0.07, 0.2}
    assert ((trained["eval/gallery/rank1"] >= 0) & (trained["eval/gallery/rank1"] <= 1)).all()
    assert (df["eval/gallery/probes"] > 0).all()
    base = df[df["config/baseline"]]
    assert base["eval/gallery/rank1"].nunique() == 1 and (base["eval/gallery/rank1_gain"] == 0).all()
    assert (runs["temperature"] / "report" / "index.html").is_file()
    # the CMC of every point, from the probe ranks its trials kept; rank 1 as results.csv has it
    from reports.evaluation_plots import cmc_info, trial_evaluations
    from reports.rundir.files import read_run

    results, info = read_run(runs["temperature"])
    evaluations = trial_evaluations(runs["temperature"], results, info, "point")
    assert sorted(evaluations) == ["base", "baseline=True", "temperature=0.2"]
    cmc = {c.variant: c for c in cmc_info(evaluations, "eval/gallery").curves}
    for point, rows in df.groupby("point"):
        assert cmc[point].tar[0] == pytest.approx(rows["eval/gallery/rank1"].mean()), point
    assert "fig_cmc.html" in (runs["temperature"] / "report" / "index.html").read_text()


# ---------------------------------------------------------------- bad input
def _img(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


@pytest.fixture()
def files(tmp_path):
    people = {}
    for k in range(8):
        people[f"a{k}"] = [f"a{k}/{j}.png" for j in range(2)]
        for j in range(2):
            _img(tmp_path / f"a{k}" / f"{j}.png", 9 * k + j)
    (tmp_path / "train.json").write_text(json.dumps(people))
    (tmp_path / "test.json").write_text(json.dumps({"b0": ["a0/0.png"], "b1": ["a1/0.png"]}))
    (tmp_path / "twins_unknown.json").write_text(json.dumps([["a0", "zed"]]))
    (tmp_path / "noimages.json").write_text(json.dumps({**people, "a9": []}))
    (tmp_path / "missing.json").write_text(json.dumps({**people, "a9": ["a9/0.png"]}))
    (tmp_path / "labels.json").write_text(json.dumps([{"image1": "a0/0.png", "image2": "a0/1.png", "label": 2}]))
    return tmp_path


TRIPLET = """
name: tiny-triplet
kind: ablation
trainable: triplet
metric: eval/nontwin/eer  # (the test persons have no twin file: no twin protocol to report)
mode: min
seeds: [0]
reference: a
base: {epochs: 1, train_persons: TRAIN, test_persons: TEST}
variants:
  a: {}
"""

PAIRS = """
name: tiny-pairs
kind: ablation
trainable: pair_contrastive
metric: eval/pairs/acc
mode: max
seeds: [0]
reference: a
base: {epochs: 1, pairs: LABELS}
variants:
  a: {}
"""


@pytest.mark.parametrize(
    "spec, setting, message",
    [
        (TRIPLET, "train_twins=DIR/twins_unknown.json", "pair 0: identity 'zed' is not in the person file"),
        (TRIPLET, "train_persons=DIR/noimages.json", "identity 'a9': no images"),
        (TRIPLET, "train_persons=DIR/missing.json", "1 image files do not exist, e.g. DIR/a9/0.png (identity 'a9')"),
        (TRIPLET, "val_fraction=0.01", "val_fraction=0.01 of the 8 identities"),
        (TRIPLET, "mining_level=extreme", "mining_level"),
        (TRIPLET, "train_persons=synthfaces", "train_persons: synthfaces brings its own files; test_persons"),
        (PAIRS, "epochs=1", "pair 0: label must be 0 (different) or 1 (same), got 2"),
        (PAIRS, "pairs=DIR/nothere.json", "pairs file DIR/nothere.json: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(files, spec, setting, message, capsys, standin):
    text = textwrap.dedent(spec).replace("TRAIN", str(files / "train.json")).replace("TEST", str(files / "test.json"))
    text = text.replace("LABELS", str(files / "labels.json"))
    (files / "study.yaml").write_text(text)
    out = files / "run"
    assert main(["run", str(files / "study.yaml"), "--out", str(out), "--set", setting.replace("DIR", str(files))]) == 2
    err = capsys.readouterr().err.strip()
    assert message.replace("DIR", str(files)) in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err and not out.exists()


def test_export_synthfaces_command(tmp_path, capsys, cache_dir):
    from trainables.data.json_lists import read_feedback_pairs, read_persons

    out = tmp_path / "faces"
    assert main(["export-synthfaces", str(out), "--image-size", "16"]) == 0
    train = read_persons(out / "train_dataset_infor.json", out / "train_twin_pairs.json")
    test = read_persons(out / "test_dataset_infor.json", out / "test_twin_pairs.json")
    assert train.num_identities == 120 and test.num_identities == 60 and train.twin_pairs() and test.twin_pairs()
    assert Image.open(train.paths[0]).size == (16, 16)
    assert len(read_feedback_pairs(out / "feedback_pairs.json", identity_from_folder=True)) == 120 * 8
    assert len(read_feedback_pairs(out / "feedback_test_pairs.json", identity_from_folder=True)) == 60 * 8
    capsys.readouterr()
    assert main(["export-synthfaces", str(out)]) == 2
    assert "is a directory that is not empty" in capsys.readouterr().err
