"""Build ``<run>/report/`` from the run directory alone (results.csv, run.json, spec.yaml).

This module stages the report's files and assembles the page; what a page holds is its study
kind's (``reports.kinds``: one module per kind) and its trainable's (``reports.sections``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import pandas as pd

import reports.track  # noqa: F401  (registers the probe's section)
from reports.errors import ReportInputError
from reports.html import _e, folded, frame_html, page
from reports.kinds import KIND_REPORTS, ReportInput, comparison_tables
from reports.rundir.files import read_curves, read_run, require_kind_fields
from reports.rundir.info import RunInfo
from reports.rundir.names import REPORT_DIR, REPORTED_PROVENANCE, SAMPLES_FILE, STAGING_DIR, spec_file
from reports.sections import TRAINABLE_SECTIONS


def build_report(run_dir: Path | str, warn: Callable[[str], None] | None = None) -> Path:
    """Write tables (LaTeX, Markdown, CSV) and ``index.html``; returns the page's path.

    The files are made in a staging folder and moved into ``report/`` one by one, each with an
    atomic rename, once all are made: a report that fails half-way (or a driver killed while
    it builds) leaves the previous report as it was, and files a user added stay.
    ``warn``: told, in one line, what the page says is missing (the static figures when
    Chromium is missing or fails)."""
    from reports.plots import STATIC_PROBLEMS

    problems: list[str] = []
    token = STATIC_PROBLEMS.set(problems)
    try:
        index = _build_report(Path(run_dir))
    finally:
        STATIC_PROBLEMS.reset(token)
    if problems and warn is not None:
        more = f" ({len(problems) - 1} more such notes on the page)" if len(problems) > 1 else ""
        warn(f"warning: PDF/PNG figures missing from the report: {problems[0]}{more}")
    return index


def _build_report(run_dir: Path) -> Path:
    from reports.rundir.lock import run_lock

    df, meta = read_run(run_dir)  # refused in one line when damaged: nothing is written, not even the lock
    _require_an_ended_trial(run_dir, df, meta)
    if meta.kind == "search":  # the page draws its curves: a foreign file refused before the lock
        read_curves(run_dir)
    with run_lock(run_dir):  # one writer: a second `report` (or a run going on) is refused
        return _build_locked(run_dir)


def _require_an_ended_trial(run_dir: Path, df: pd.DataFrame, meta: RunInfo) -> None:
    """A run stopped before any trial ended has nothing to report: one line saying so (a run
    whose trials all failed has: the page lists the errors)."""
    from reports.rundir.names import FAILED, FINISHED, PENDING

    if not df["status"].isin(FINISHED + FAILED).any():
        planned = meta.num_samples or len(df)
        raise ReportInputError(
            f"{run_dir}: no trial has ended yet ({int((df['status'] != PENDING).sum())} of {planned} started), so there is nothing to report; "
            f"python -m orchestrator status {run_dir} says where it stands, resume {run_dir} continues it"
        )


def _build_locked(run_dir: Path) -> Path:
    import shutil

    df, meta = read_run(run_dir)  # again, now that no other command can be writing it
    final = run_dir / REPORT_DIR
    out = run_dir / STAGING_DIR
    shutil.rmtree(out, ignore_errors=True)  # what a killed build left
    out.mkdir()
    try:
        _build(run_dir, df, meta, out)
        final.mkdir(exist_ok=True)
        for f in sorted(out.rglob("*")):
            if f.is_file():
                (final / f.relative_to(out)).parent.mkdir(parents=True, exist_ok=True)
                os.replace(f, final / f.relative_to(out))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return final / "index.html"


def _build(run_dir: Path, df: pd.DataFrame, meta: RunInfo, out: Path) -> Path:
    # run.json says whether the data is synthetic; runs made before it did: the sample grid
    synthetic = meta.synthetic if meta.synthetic is not None else (run_dir / SAMPLES_FILE).is_file()
    # every LaTeX label starts with it: two runs' tables can be input into one paper. Recorded
    # at the run's start (run.json); a run made before that: its directory's name
    meta = meta.model_copy(update={"label": meta.label_prefix(run_dir)})
    note = "Data: synthfaces (synthetic)." if synthetic else ""
    kind = meta.kind
    require_kind_fields(run_dir, meta)
    if kind not in KIND_REPORTS:
        raise ReportInputError(f"{run_dir}: run.json names study kind {kind!r}, which has no report here")
    r = ReportInput(run_dir, df, meta, out, synthetic, note)
    sections = KIND_REPORTS[kind](r)
    section = TRAINABLE_SECTIONS[meta.trainable](r) if meta.trainable in TRAINABLE_SECTIONS else None
    sections += [section] if section else []  # what the trainable adds to every kind's page
    return _write_page(run_dir, df, meta, out, sections)


def _write_page(run_dir: Path, df: pd.DataFrame, meta: RunInfo, out: Path, sections: list) -> Path:
    """Close the page with the spec as run, the run's options and the provenance; write it."""
    spec = (run_dir / spec_file(meta)).read_text() if (run_dir / spec_file(meta)).is_file() else ""
    run_args = meta.model_dump(mode="json", include={"quick", "overrides", "resources", "command", "started_at"})
    sections.append(
        (
            "Study spec",
            folded(f"<pre>{_e(spec)}</pre><pre>{_e(json.dumps(run_args, indent=2))}</pre>", "the spec as run"),
        )
    )
    prov = df[[c for c in REPORTED_PROVENANCE if c in df.columns]].drop_duplicates()
    sections.append(("Provenance", folded(frame_html(prov), "versions, commit, data fingerprint")))
    index = out / "index.html"
    index.write_text(page(title=f"Report: {meta.study}", sections=sections))
    return index


__all__ = ["build_report", "comparison_tables", "ReportInputError"]
