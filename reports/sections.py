"""Sections a trainable adds to every report of its runs, whatever the study's kind (``probe``:
the track comparison, ``reports.track``); the kinds' own pages are ``reports.kinds``. A new
trainable registers its section here instead of a branch in the builder."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Callable

from reports.rundir.info import RunInfo

if TYPE_CHECKING:
    from reports.kinds.base import ReportInput, Section


#: trainable -> section(report input) -> (heading, html), added to each of its runs' reports
#: (None: nothing to add to this run's page).
TRAINABLE_SECTIONS: dict[str, Callable[["ReportInput"], "Section | None"]] = {}


def section_for(trainable: str):
    """Register a section a trainable adds to its runs' reports (a decorator)."""

    def wrap(fn):
        if trainable in TRAINABLE_SECTIONS:
            raise ValueError(f"the report section of trainable {trainable!r} is registered twice")
        TRAINABLE_SECTIONS[trainable] = fn
        return fn

    return wrap


def study_summary(meta: RunInfo, df, what: str) -> str:
    """The page's lines on the study: its description, ``what`` it ran (already HTML), its metric,
    its trials by status, whether it was a quick run, and which model each trial keeps."""
    from reports.html import _e

    counts = df["status"].value_counts().to_dict()
    return (
        f"<p>{_e(meta.description or '')}</p><p>{what}; "
        f"metric <code>{_e(meta.metric)}</code> ({_e(meta.mode)}); {len(df)} trials: "
        + ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items()))
        + (" &mdash; <b>quick run</b>" if meta.quick else "")
        + "</p>"
        + models_line(meta)
    )


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
