"""The sensitivity report: one table per axis (its points against the base point over seeds,
Holm within the axis), † on the points not significantly worse than the best (when the spec
asks for a recommendation and the metric is a validation one), and the curves of each axis."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from reports.ablation import ablation_table
from reports.html import figures_html
from reports.kinds.base import ReportInput, Section, report_for
from reports.kinds.grid import grid_sections, stats_options
from reports.rundir.info import RunInfo
from reports.selection import declared, recommends, selection_sentence


def sensitivity_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """One table per axis: its points as rows, each compared with the base point by a paired
    test over seeds, Holm-adjusted within the axis (the family is the axis's comparisons)."""
    tables = []
    common = dict(
        metrics=meta.report_metrics,
        primary=meta.metric,
        mode=meta.mode,
        directions=meta.metric_directions,
        group_column="point",
        **stats_options(meta),
    )
    names = meta.names
    for axis, points in meta.axes.items():
        rows = [p.point for p in points]
        labels = {p.point: p.label for p in points}
        table = ablation_table(df, study=meta.study, variants=rows, reference=meta.reference, **common)
        marks, note = _not_worse_than_best(df, meta, table, rows, labels, common) if recommends(meta) else ({}, "")
        tables.append(
            replace(
                table,
                row_header=axis,
                labels=labels,
                display={r: names[r] for r in rows if r in names},
                metric_names=dict(meta.metric_names),
                marks=marks,
                mark_note=note,
                title=f"{meta.title}: sensitivity to {axis}" if meta.title else f"Sensitivity to {axis}",
                key=f"sensitivity_{axis}",
                selection=selection_sentence(meta, common["metrics"]),
            )
        )
    return tables


def _not_worse_than_best(df, meta, table, rows, labels, common) -> tuple[dict[str, str], str]:
    """† on the axis points whose study metric is not significantly worse than the best
    point's (same test, Holm over the axis's comparisons with the best, at the study's
    ``report.alpha``)."""
    m = meta.metric
    means = {r: table.cells[(r, m)].mean for r in rows if table.cells[(r, m)].n}
    if len(means) < 2:
        return {}, ""
    best = (max if table.modes[m] == "max" else min)(means, key=means.get)
    vs_best = ablation_table(df, study=meta.study, variants=rows, reference=best, **{**common, "metrics": [m]})
    tied = [
        r
        for r in rows
        if r != best and vs_best.cells[(r, m)].p_holm is not None and vs_best.cells[(r, m)].p_holm >= vs_best.alpha
    ]
    note = (
        f"†: not significantly worse than the best point ({labels.get(best, best)}) "
        f"in {m} ({vs_best.test}, Holm over {vs_best.comparisons} comparisons, alpha {vs_best.alpha:g})."
    )
    return {r: "†" for r in [best, *tied]}, note


def sensitivity_selection(meta: RunInfo, roles: str) -> str:
    if recommends(meta):
        return f"Chosen on: † marks on {meta.metric} (validation identities); reported: {roles}."
    return declared(meta, roles)


@report_for("sensitivity", tables=sensitivity_tables, selection=sensitivity_selection)
def _sensitivity(r: ReportInput) -> list[Section]:
    from reports.domain_plots import fewshot_figure, fewshot_info
    from reports.evaluation_plots import evaluation_figures
    from reports.plots import Figures, export_static, sensitivity_figures, write_figure

    def figures() -> tuple[str, str]:
        figs = sensitivity_figures(r.df, r.meta, r.out, figures=Figures())
        curves = fewshot_info(r.df, r.meta)
        if curves:  # an axis of samples_per_identity alone: the few-shot curves
            title = "Few-shot: test accuracy against training images per identity (mean over seeds, 95% band)"
            write_figure(fewshot_figure(curves, title=title), r.out, "fig_fewshot", figs, title=title)
        # ROC, DET, histograms or CMC of the points, by their labels, from the trials' evaluation.npz
        shown = {p.point: p.label for points in (r.meta.axes or {}).values() for p in points}
        note = evaluation_figures(r.run_dir, r.df, r.meta, r.out, figs, shown=shown)
        return ("Figures", figures_html(export_static(figs), note))

    return grid_sections(r, sensitivity_tables(r.df, r.meta), figures=figures)
