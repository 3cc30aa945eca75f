"""The ablation's report: each variant against the reference over seeds (paired tests,
Holm), its figures (per variant, ROC/DET, score histograms, t-SNE), and fairness across
domains where the trials kept their pair scores with identities."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from reports.ablation import ablation_table
from reports.html import figures_html
from reports.kinds.base import ReportInput, Section, report_for
from reports.kinds.grid import grid_sections, stats_options, with_selection
from reports.rundir.info import RunInfo
from reports.selection import declared


def ablation_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """The ablation table: every variant against the reference, over seeds."""
    table = ablation_table(
        df,
        study=meta.study,
        variants=meta.variants,
        metrics=meta.report_metrics,
        reference=meta.reference,
        primary=meta.metric,
        mode=meta.mode,
        directions=meta.metric_directions,
        display=dict(meta.names),
        title=meta.title or "",
        **stats_options(meta),
    )
    return [replace(table, metric_names=dict(meta.metric_names))]


@report_for("ablation", tables=ablation_tables, selection=declared)
def _ablation(r: ReportInput) -> list[Section]:
    from reports.ablation_plots import ablation_figures
    from reports.evaluation_plots import evaluation_figures, trial_evaluations
    from reports.fairness import grouped_sets, write_fairness
    from reports.plots import Figures, export_static

    tables = with_selection(ablation_tables(r.df, r.meta), r.meta)
    shown = {v: tables[0].shown(v) for v in tables[0].variants}
    evaluations = trial_evaluations(r.run_dir, r.df, r.meta, r.meta.group)  # the trials' evaluation.npz
    extra: list[tuple[str, str]] = []  # filled while the figures are drawn; the page adds it after the tables

    def figures() -> tuple[str, str]:
        figs = ablation_figures(tables[0], r.df, r.out, figures=Figures())
        # the t-SNE of the reference and of the first other variant (the plain baseline in the default ablation)
        pair = [tables[0].reference, *[v for v in tables[0].variants if v != tables[0].reference][:1]]
        note = evaluation_figures(
            r.run_dir, r.df, r.meta, r.out, figs, shown=shown, evaluations=evaluations, tsne_of=pair
        )
        fair = write_fairness(evaluations, shown, r.out, figs, label=r.meta.label or r.meta.study, note=r.note)
        extra.extend([("Fairness across domains", fair)] if fair else [])
        for grouped in grouped_sets(evaluations):  # a benchmark graded by an attribute of its people
            fair = write_fairness(
                evaluations, shown, r.out, figs, label=r.meta.label or r.meta.study, note=r.note, grouped=grouped
            )
            extra.extend([(f"Fairness on {grouped.split('/', 1)[1]}", fair)] if fair else [])
        return ("Figures", figures_html(export_static(figs), note))

    return grid_sections(r, tables, extra_sections=extra, figures=figures)
