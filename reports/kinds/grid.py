"""The page of the kinds whose trials form a grid of variants (or points) over seeds:
ablation, confirm, sensitivity. Their tables are compared over seeds by the paired tests of
``reports.ablation``; the page opens on the answer, then figures, tables and context."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from reports.ablation import COMPLETED, headline
from reports.html import _e, ablation_html, folded, frame_html
from reports.kinds.base import ReportInput, Section
from reports.latex import ablation_full_latex, ablation_latex, comparison_latex, main_metrics
from reports.markdown import ablation_frame, ablation_markdown
from reports.rundir.info import RunInfo
from reports.rundir.names import SAMPLES_FILE
from reports.sections import study_summary
from reports.selection import selection_sentence


def sample_domains(run_dir: Path) -> str:
    """The domains of the sample grid's columns, in order (from the grid's side file)."""
    try:
        return ", ".join(json.loads((run_dir / SAMPLES_FILE).with_suffix(".json").read_text())["domains"])
    except (OSError, ValueError, KeyError):
        return "domains"


def stats_options(meta: RunInfo) -> dict:
    """The spec's ``report`` options of the statistics, as run.json recorded them (runs made
    before a family could be declared adjusted over the whole table: they keep that)."""
    return {
        "test": meta.test,
        "family": meta.family,
        "alpha": meta.alpha,
        "min_effect": meta.min_effect,
        "interval": meta.interval,
    }


def with_selection(tables: list, meta: RunInfo) -> list:
    """The tables with the sentence of what chose and what is only reported in their captions."""
    return [replace(t, selection=selection_sentence(meta, meta.report_metrics)) for t in tables]


def grid_sections(r: ReportInput, tables: list, *, extra_sections: list = (), figures=None) -> list[Section]:
    """The sections of the page of a study whose trials are a grid (ablation, sensitivity,
    confirm): its tables in every format, the study and its data, figures, and the trials left
    out of the statistics."""
    run_dir, df, meta, out, note = r.run_dir, r.df, r.meta, r.out, r.note
    tables = [replace(t, label_prefix=meta.label or "", main=list(meta.main_metrics)) for t in tables]
    for table in tables:
        (out / f"{table.key}.tex").write_text(ablation_latex(table, caption_note=note))
        if len(main_metrics(table)) < len(table.metrics):  # the main table leaves metrics out
            (out / f"{table.key}_full.tex").write_text(ablation_full_latex(table, caption_note=note))
        (out / f"{table.key}_stats.tex").write_text(comparison_latex(table, caption_note=note))
        (out / f"{table.key}.md").write_text(ablation_markdown(table))
        ablation_frame(table).to_csv(out / f"{table.key}.csv", index=False)

    sections = []
    summary = study_summary(meta, df, f"Trainable <code>{_e(meta.trainable or '?')}</code>")
    answer = headline(tables[0]) if len(tables) == 1 else ""
    synthetic_line = (
        "<p class=synthetic>All numbers on this page come from <b>synthfaces</b>, the "
        "embedded <b>synthetic</b> data set (procedural face-like images), not from real faces.</p>"
        if r.synthetic
        else ""
    )
    # the page opens on the answer: the headline, the figures, the tables; context follows
    sections.append(("Study", (f"<p class=headline>{_e(answer)}</p>" if answer else "") + synthetic_line + summary))
    if figures is not None:
        sections.append(figures())
    for table in tables:
        links = " · ".join(
            f"<a href='{table.key}{x}'>{table.key}{x}</a>"
            for x in (".tex", "_full.tex", "_stats.tex", ".md", ".csv")
            if (out / f"{table.key}{x}").is_file()
        )
        heading = "Ablation" if table.key == "ablation" else table.title
        sections.append((heading, ablation_html(table) + f"<p>{links} · <a href='../results.csv'>results.csv</a></p>"))
    sections += list(extra_sections)
    if r.synthetic:
        domains = sample_domains(run_dir)
        grid = (
            f"<img src='../{SAMPLES_FILE}' alt='synthfaces samples' style='image-rendering:pixelated'>"
            f"<p><small>Rows: held-out identities; columns: {_e(domains)}.</small></p>"
            if (run_dir / SAMPLES_FILE).is_file()
            else ""
        )
        sections.append(("Data", folded(synthetic_line + grid, "the data and its sample grid")))
    group = meta.group_column or ("point" if "point" in df.columns else "variant")
    not_done = df[df["status"] != COMPLETED][["trial_name", group, "seed", "status", "error"]]
    sections.append(("Trials not in the statistics", frame_html(not_done)))
    return sections
