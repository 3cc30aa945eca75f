"""``run sensitivity --quick`` end to end on the shared local Ray: every axis point against
the shared base point, its tables and marks (made on validation identities), figures, the
page and LaTeX tables that compile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from orchestrator.cli import main
from reports.stats import paired_ttest
from tests.browser_check import assert_page_fits, console_and_screenshot
from tests.conftest import static_figures
from tests.latex_check import assert_fits


@pytest.fixture(scope="module")
def sensitivity_run(ray_local, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "sensitivity-quick"
    with static_figures():
        assert main(["run", "sensitivity", "--quick", "--out", str(out), "--set", "epochs=1"]) == 0
    return out


def test_sensitivity_quick_run(sensitivity_run, tmp_path):
    df = pd.read_csv(sensitivity_run / "results.csv")
    meta = json.loads((sensitivity_run / "run.json").read_text())
    points = list(df["point"].unique())
    assert points[0] == "base" and len(points) == 8 and len(df) == 16  # shared base + 7 points, x 2 seeds
    assert set(df["status"]) == {"TERMINATED"}
    assert df.loc[df["point"] == "lora_rank=4", "config/lora_rank"].eq(4).all()
    assert df.loc[df["point"] == "samples_per_identity=20", "config/samples_per_identity"].eq(20).all()
    assert list(meta["axes"]) == [
        "lora_rank",
        "num_domains",
        "maml_inner_steps",
        "loss_weights",
        "samples_per_identity",
    ]
    m = "eval/cross_domain/acc"
    for axis, axis_points in meta["axes"].items():
        table = pd.read_csv(sensitivity_run / "report" / f"sensitivity_{axis}.csv")
        rows = table[table["metric"] == m]
        assert list(rows[axis]) == [p["label"] for p in axis_points]  # every point, in axis order
        base = df[df["point"] == "base"].sort_values("seed")[m].to_numpy()
        for p in axis_points:
            row = rows[rows[axis] == p["label"]].iloc[0]
            vals = df[df["point"] == p["point"]].sort_values("seed")[m].to_numpy()
            assert row["mean"] == pytest.approx(vals.mean())
            if p["base"]:
                assert bool(row["reference"]) and pd.isna(row["p"])
            else:
                assert row["p"] == pytest.approx(paired_ttest(vals, base).p, nan_ok=True)
    grid = pd.read_csv(sensitivity_run / "report" / "sensitivity_loss_weights.csv")
    assert len(grid) == 4 * 3  # the 2 x 2 quick grid, 3 report metrics
    # the marks (a recommendation) are made on the validation identities, and say so
    md = (sensitivity_run / "report" / "sensitivity_lora_rank.md").read_text()
    assert "not significantly worse than the best point" in md and "in val/cross_domain/acc" in md
    assert "Chosen on: † marks on val/cross_domain/acc (validation identities)" in md
    index = (sensitivity_run / "report" / "index.html").read_text()
    assert "DA-LoRA sensitivity (synthfaces, synthetic): sensitivity to lora_rank" in index and "synthetic" in index
    assert_fits(sorted((sensitivity_run / "report").glob("sensitivity_*.tex")), tmp_path)


def test_sensitivity_report_figures_and_page(sensitivity_run, tmp_path):
    report = sensitivity_run / "report"
    axes = ("lora_rank", "num_domains", "maml_inner_steps", "loss_weights", "samples_per_identity")
    # each axis's figure; the few-shot curves (the samples_per_identity axis); across domains
    for stem in [report / f"fig_sensitivity_{axis}" for axis in axes] + [
        report / "fig_fewshot",
        report / "fig_cross_domain",
    ]:
        assert "plotly.min.js" in stem.with_suffix(".html").read_text()
        assert stem.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
        png = np.asarray(Image.open(stem.with_suffix(".png")).convert("L"), dtype=float)
        assert png.shape[1] > 600 and png.std() > 10  # drawn, not blank
    assert (report / "plotly.min.js").is_file()
    console, shot = console_and_screenshot(report / "index.html", tmp_path)
    assert console == []  # no script errors, no missing images
    assert shot.std() > 10
    assert_page_fits(report / "index.html", tmp_path)


def test_plan_reads_each_axis_as_its_own_family(sensitivity_run, capsys):
    """``plan`` on a sensitivity run: one section per axis, each point against the base point,
    the family the axis's comparisons, the MDE as the axis's report table has it."""
    assert main(["plan", str(sensitivity_run), "--effect", "0.01"]) == 0
    blocks = {b.splitlines()[0].split(": paired")[0]: b.splitlines() for b in capsys.readouterr().out.split("\n\n")}
    meta = json.loads((sensitivity_run / "run.json").read_text())
    m = meta["metric"]
    assert list(blocks) == [f"{meta['title']}: sensitivity to {axis}" for axis in meta["axes"]]
    for axis, axis_points in meta["axes"].items():
        lines = blocks[f"{meta['title']}: sensitivity to {axis}"]
        assert lines[1].startswith("With 2 seeds this study can detect differences in")
        assert "seeds for 0.01" in lines[2]
        table = pd.read_csv(sensitivity_run / "report" / f"sensitivity_{axis}.csv")
        base = table.loc[table["reference"], "shown_as"].iloc[0]
        others = [p for p in axis_points if not p["base"]]
        for p in others:
            row = table[(table["metric"] == m) & (table[axis] == p["label"])].iloc[0]
            line = next(x for x in lines[3:] if x.split()[0] == m and f" {row['shown_as']} vs {base} " in x)
            words = line.split()
            assert words[-3] == str(
                len(others)
            )  # the family: this axis's comparisons with the base (columns: ..., family m, MDE, seeds)
            assert words[-2] == ("n/a" if pd.isna(row["mde"]) else f"{row['mde']:.3f}")
