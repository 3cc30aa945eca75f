"""Which report a run gets: one builder per study kind (``ablation``, ``sensitivity``,
``confirm``, ``search``: ``reports/build.py`` registers them), plus sections a trainable adds
to every report of its runs (``probe``: the track comparison). A new kind or trainable
registers its own here instead of a branch in the builder."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from reports.rundir.info import RunInfo


@dataclass(frozen=True)
class ReportInput:
    """What every builder gets: the run directory, its results and run.json, the staging
    folder the report's files go into, whether the data is synthetic and the caption note
    that says so."""

    run_dir: Path
    df: pd.DataFrame
    meta: RunInfo
    out: Path
    synthetic: bool
    note: str


#: kind -> builder(report input) -> the page's path.
KIND_REPORTS: dict[str, Callable[[ReportInput], Path]] = {}
#: kind -> tables(results, run.json) -> its comparison tables over seeds, which its report and
#: ``plan`` share (a kind whose trials are not paired over seeds, search, has none).
KIND_TABLES: dict[str, Callable[[pd.DataFrame, RunInfo], list]] = {}
#: trainable -> section(report input) -> (heading, html), added to each of its runs' reports.
TRAINABLE_SECTIONS: dict[str, Callable[[ReportInput], tuple[str, str]]] = {}


def report_for(kind: str, *, tables: Callable[[pd.DataFrame, RunInfo], list] | None = None):
    """Register the report builder of a study kind (a decorator), and ``tables``, the
    comparison tables it computes from a run's results and run.json, where it has any."""

    def wrap(fn):
        if kind in KIND_REPORTS:
            raise ValueError(f"the report of study kind {kind!r} is registered twice")
        KIND_REPORTS[kind] = fn
        if tables is not None:
            KIND_TABLES[kind] = tables
        return fn

    return wrap


def section_for(trainable: str):
    """Register a section a trainable adds to its runs' reports (a decorator)."""

    def wrap(fn):
        if trainable in TRAINABLE_SECTIONS:
            raise ValueError(f"the report section of trainable {trainable!r} is registered twice")
        TRAINABLE_SECTIONS[trainable] = fn
        return fn

    return wrap


def models_line(meta: RunInfo) -> str:
    """Which epoch's model each trial keeps (``python -m orchestrator export`` writes it out)."""
    by = meta.best_epoch_by
    if by is None:
        return ""
    which = (
        f"its best epoch by the validation metric <code>{html.escape(by.rpartition(':')[0])}</code>"
        if by
        else "its <b>last</b> epoch: the study has no validation metric to choose an epoch by"
    )
    return (
        f"<p>Models: each trial keeps the model of {which} (results.csv: <code>train/best_epoch</code>); "
        "<code>python -m orchestrator export DIR --trial NAME --out MODEL_DIR</code> writes it out.</p>"
    )
