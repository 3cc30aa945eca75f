"""What a study kind's report is: a builder that makes its page's sections from the run
directory, the comparison tables it computes (those its report and ``plan`` share) and the
sentence its tables' captions give of what chose and what is only reported. Each kind
registers its own (``report_for``) in its module of this package, by the name its
``orchestrator.kinds`` module (or, for confirm, its run) records in ``run.json``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from reports.rundir.info import RunInfo

#: A page's section: (heading, html).
Section = tuple[str, str]


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


#: kind -> builder(report input) -> the sections of its page (``reports.build`` closes the
#: page with the trainable's sections, the spec and the provenance, and writes it).
KIND_REPORTS: dict[str, Callable[[ReportInput], list[Section]]] = {}
#: kind -> tables(results, run.json) -> its comparison tables over seeds, which its report and
#: ``plan`` share (a kind whose trials are not paired over seeds, search, has none).
KIND_TABLES: dict[str, Callable[[pd.DataFrame, RunInfo], list]] = {}
#: kind -> sentence(run.json, the roles of the reported metrics) -> what chose, in words (a
#: kind without one chooses nothing: ``reports.selection``).
KIND_SELECTION: dict[str, Callable[[RunInfo, str], str]] = {}


def report_for(
    kind: str,
    *,
    tables: Callable[[pd.DataFrame, RunInfo], list] | None = None,
    selection: Callable[[RunInfo, str], str] | None = None,
):
    """Register the report builder of a study kind (a decorator); ``tables``, the comparison
    tables it computes from a run's results and run.json, where it has any; ``selection``, its
    sentence of what chose, where it chooses anything."""

    def wrap(fn):
        if kind in KIND_REPORTS:
            raise ValueError(f"the report of study kind {kind!r} is registered twice")
        KIND_REPORTS[kind] = fn
        if tables is not None:
            KIND_TABLES[kind] = tables
        if selection is not None:
            KIND_SELECTION[kind] = selection
        return fn

    return wrap


def comparison_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """The comparison tables of a run, as its kind registered them (``report_for``): one for
    an ablation or confirm run, one per axis for a sensitivity run, none for a search (one
    seed per trial: nothing is paired)."""
    tables = KIND_TABLES.get(meta.kind)
    return tables(df, meta) if tables else []
