"""A probe study's confusion matrices and per-class F1, from the predictions its trials kept:
counts and rates by their definitions (loops here), the most-confused classes past 20."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.confusion import MAX_CLASSES, confusion_info, most_confused, per_class_f1
from reports.rundir.info import RunInfo
from reports.track import trial_dir

M = "eval/probe/acc"


def test_the_most_confused_classes_come_from_the_largest_off_diagonal_cells():
    counts = np.zeros((6, 6), int)
    np.fill_diagonal(counts, 50)  # the diagonal (correct predictions) never counts
    counts[4, 1] = 9  # the largest confusion: classes 4 and 1
    counts[2, 5] = 7
    counts[0, 3] = 7  # a tie with (2, 5): the earlier row first
    assert most_confused(counts, 3) == [4, 1, 0]
    assert most_confused(counts, 6) == list(range(6))  # no more classes than asked: all, in order
    assert most_confused(counts, 5) == [4, 1, 0, 3, 2]
    assert most_confused(np.diag([3, 3, 3]), 2) == [0, 1]  # no confusion at all: the first ones


def _probe_run(tmp_path, classes: int, rng) -> tuple:
    """A probe ablation's run directory: two variants x two seeds, each trial's note files."""
    names = [f"c{i:03d}" for i in range(classes)]
    rows, kept = [], {}
    for v in ("lin", "sup"):
        for seed in (0, 1):
            name = f"{v}_seed{seed}"
            true = np.repeat(np.arange(classes), 3)
            pred = np.where(rng.random(len(true)) < 0.7, true, rng.integers(0, classes, len(true)))
            d = trial_dir(tmp_path, "probes", name)
            d.mkdir(parents=True)
            np.save(d / "predictions.npy", pred)
            np.save(d / "true_labels.npy", true)
            (d / "names.json").write_text(json.dumps(names))
            f1 = rng.random(classes)
            pd.DataFrame({"name": names, "precision": f1, "recall": f1, "f1": f1, "support": 3, "predicted": 3}).to_csv(
                d / "results.csv", index=False
            )
            kept[name] = (true, pred, f1)
            rows.append({"trial_name": name, "variant": v, "seed": seed, "status": "TERMINATED", "error": "", M: 0.7})
    df = pd.DataFrame(rows)
    meta = {"study": "probes", "kind": "ablation", "trainable": "probe", "metric": M, "mode": "max"}
    meta |= {"variants": ["lin", "sup"], "reference": "lin"}
    df.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "run.json").write_text(json.dumps(meta))
    return df, RunInfo.model_validate(meta), names, kept


@pytest.mark.parametrize("classes", [5, MAX_CLASSES + 7])
def test_confusions_pool_the_seeds_and_rate_each_row_over_its_class(tmp_path, classes):
    rng = np.random.default_rng(classes)
    df, meta, names, kept = _probe_run(tmp_path, classes, rng)
    panels = confusion_info(tmp_path, df, meta, trial_dir)
    assert [p.variant for p in panels] == ["lin", "sup"] and all(p.seeds == 2 for p in panels)
    for p in panels:
        counts = np.zeros((classes, classes), int)
        for name in (f"{p.variant}_seed0", f"{p.variant}_seed1"):
            true, pred, _ = kept[name]
            for t, q in zip(true, pred):
                counts[t, q] += 1
        shown = [names.index(c) for c in p.classes]
        assert len(shown) == min(classes, MAX_CLASSES) and p.total_classes == classes
        for a, i in enumerate(shown):
            for b, j in enumerate(shown):
                assert p.counts[a, b] == counts[i, j]
                assert p.rates[a, b] == pytest.approx(counts[i, j] / counts[i].sum())
        if classes > MAX_CLASSES:  # the largest confusion is among those shown
            off = counts - np.diag(np.diag(counts))
            i, j = np.unravel_index(np.argmax(off), off.shape)
            assert {int(i), int(j)} <= set(shown)


def test_per_class_f1_is_each_variants_mean_over_seeds_and_the_page_shows_them(tmp_path):
    from reports import build_report

    rng = np.random.default_rng(0)
    df, meta, names, kept = _probe_run(tmp_path, 5, rng)
    table = per_class_f1(tmp_path, df, meta, trial_dir).set_index("class")
    for v in ("lin", "sup"):
        want = (kept[f"{v}_seed0"][2] + kept[f"{v}_seed1"][2]) / 2
        assert table[v].to_numpy() == pytest.approx(want)
    page = build_report(tmp_path).read_text()
    assert "fig_confusion.html" in page and "per_class_f1.csv" in page
    assert (tmp_path / "report" / "per_class_f1.csv").read_text().startswith("class,lin,sup")
