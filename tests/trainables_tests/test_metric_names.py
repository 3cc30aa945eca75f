"""What tables and figures call a metric: declared by the trainable (``trainables.metrics``),
recorded in ``run.json`` (``metric_names``) and used by every rendering of the report."""

from __future__ import annotations

import re

import pytest

from trainables.metrics import (
    IDENTIFICATION_NAMES,
    RECORD_NAMES,
    TRAINING_NAMES,
    VERIFICATION_NAMES,
    display_name,
)

ALL = VERIFICATION_NAMES + IDENTIFICATION_NAMES + TRAINING_NAMES + RECORD_NAMES


@pytest.mark.parametrize(
    "key, name",
    [
        # the set is kept, the eval/ and train/ namespaces dropped, the measure named
        ("eval/cross_domain/acc", "cross_domain accuracy"),
        ("eval/lfw/acc_std", "lfw accuracy SD"),
        ("eval/cross_domain/tar@far=1e-3", "cross_domain TAR@FAR=1e-3"),
        ("eval/templates/tar@far=1e-6", "templates TAR@FAR=1e-6"),
        ("eval/open_set/g1/tpir@fpir=1e-2", "open_set g1 TPIR@FPIR=1e-2"),
        ("eval/gallery/rank1", "gallery rank-1"),
        ("eval/x/eer", "x EER"),
        ("eval/x/eer_gain", "x EER gain"),  # the longer pattern first: not "EER"
        # validation keeps its namespace: a test and a validation column must not read alike
        ("val/cross_domain/acc", "val cross_domain accuracy"),
        ("train/loss", "loss"),
        ("train/cosface_loss", "cosface loss"),
        ("train/images_per_s", "images/s"),
        ("train/epoch_s", "epoch (s)"),
        ("eval/x/impostor_pairs", "x impostor pairs"),
    ],
)
def test_a_metric_is_named_by_its_set_and_its_measure(key, name):
    assert display_name(ALL, key) == name


def test_a_key_no_pattern_matches_has_no_name():
    assert display_name(ALL, "eval/x/colourfulness") is None
    assert display_name((), "eval/x/acc") is None


def test_the_report_shows_the_recorded_names_and_the_key_without_them(tmp_path):
    """Every rendering of a comparison table (LaTeX, Markdown, HTML) and the figure's axis use
    run.json's ``metric_names``; a run made before names were recorded shows the key without
    its namespace, as before."""
    from reports import build_report
    from tests.reports_tests.test_ablation import M, _ablation_run

    named = _ablation_run(tmp_path / "named", metric_names={M: "x accuracy"})
    build_report(named)
    report = named / "report"
    assert r"\multicolumn{2}{c}{accuracy}" in (report / "ablation.tex").read_text()
    assert "x accuracy" in (report / "ablation.md").read_text()
    assert "<th colspan=2>x accuracy</th>" in (report / "index.html").read_text()
    axis = r'"yaxis":\s*\{"title":\s*\{"text":\s*"x accuracy"'  # the study metric's axis
    assert re.search(axis, (report / "fig_ablation.html").read_text())

    old = _ablation_run(tmp_path / "old")
    build_report(old)
    assert r"\multicolumn{2}{c}{acc}" in (old / "report" / "ablation.tex").read_text()
    assert "<th colspan=2>x acc</th>" in (old / "report" / "index.html").read_text()
