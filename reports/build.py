"""Build ``<run>/report/`` from the run directory alone (results.csv, run.json, spec.yaml)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from reports.ablation import COMPLETED, ablation_table, headline
from reports.errors import ReportInputError
from reports.html import _e, ablation_html, folded, frame_html, page
from reports.latex import ablation_full_latex, ablation_latex, comparison_latex, main_metrics
from reports.markdown import ablation_frame, ablation_markdown
from reports.rundir.files import read_curves, read_run, require_kind_fields
from reports.rundir.info import RunInfo
from reports.rundir.names import (
    OPTUNA_FILE,
    REPORT_DIR,
    REPORTED_PROVENANCE,
    SAMPLES_FILE,
    STAGING_DIR,
    spec_file,
)
from reports.sections import (
    KIND_REPORTS,
    KIND_TABLES,
    TRAINABLE_SECTIONS,
    ReportInput,
    models_line,
    report_for,
    section_for,
)
from reports.selection import recommends, selection_sentence

FEW_FOR_IMPORTANCE = 10


def _sample_domains(run_dir: Path) -> str:
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


def confirm_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """A confirm run's comparison table: each candidate against the base, Holm over the
    candidates, rows named by candidate and search trial."""
    table = _ablation_tables(df, meta)[0]
    labels = {c.variant: f"{c.variant} ({c.trial})" for c in meta.candidates}
    return [
        replace(
            table,
            key="confirm",
            labels=labels,
            row_header="Candidate",
            title=f"Confirm: the top {len(labels)} config(s) of the search "
            f"(study {meta.search_study or '?'}) against its base config",
        )
    ]


def _candidates_section(table, meta: RunInfo, out: Path, note: str, df: pd.DataFrame) -> list:
    """A confirm run's candidates table (search trial and value, confirmed value, settings),
    written in every format; its page section."""
    from reports.confirm import candidates_frame, candidates_note
    from reports.latex import frame_latex
    from reports.markdown import frame_markdown

    frame = candidates_frame(table, meta, df)
    caption = (
        f"The candidates of the search (study {meta.search_study or '?'}) that the confirm run reran. "
        f"{candidates_note(meta)} {note}"
    )
    (out / "confirm_candidates.tex").write_text(frame_latex(frame, caption=caption, label=f"{meta.label}-candidates"))
    (out / "confirm_candidates.md").write_text(frame_markdown(frame, candidates_note(meta)))
    frame.to_csv(out / "confirm_candidates.csv", index=False)
    links = " · ".join(f"<a href='confirm_candidates{x}'>confirm_candidates{x}</a>" for x in (".tex", ".md", ".csv"))
    html = (
        frame_html(frame) + f"<p><small>{_e(candidates_note(meta))} Search run: <code>{_e(meta.from_dir or '')}"
        f"</code></small></p><p>{links}</p>"
    )
    return [("Candidates", html)]


def _figures_html(figures, notes: str = "") -> str:
    items = "".join(
        f"<figure><a href='{stem}.html'><img src='{stem}.png' alt='{_e(title)}' width=640 "
        f"onerror=\"this.replaceWith('(no static image: open the interactive figure)')\"></a>"
        f"<figcaption>{_e(title)}: <a href='{stem}.html'>interactive</a> · <a href='{stem}.pdf'>PDF</a> · "
        f"<a href='{stem}.png'>PNG</a></figcaption></figure>"
        for stem, title in figures.written.items()
    )
    warn = f"<p class=warn>{_e(figures.static_error)}</p>" if figures.static_error else ""
    return warn + items + notes


def _search_report(run_dir: Path, df: pd.DataFrame, meta: RunInfo, out: Path, note: str, synthetic: bool) -> Path:
    from reports.search import search_headline, top_k, top_k_latex, top_k_markdown

    table = top_k(df, meta)
    (out / "top_k.tex").write_text(top_k_latex(table, meta, caption_note=note))
    (out / "top_k.md").write_text(top_k_markdown(table, meta))
    table.to_csv(out / "top_k.csv", index=False)
    counts = df["status"].value_counts().to_dict()
    summary = (
        f"<p>{_e(meta.description or '')}</p><p>Search over {', '.join(map(_e, meta.space or {}))}; "
        f"metric <code>{_e(meta.metric)}</code> ({_e(meta.mode)}); {len(df)} trials: "
        + ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items()))
        + (" &mdash; <b>quick run</b>" if meta.quick else "")
        + "</p>"
        + models_line(meta)
    )
    answer = search_headline(table, df, meta).replace("DIR", str(run_dir))
    sections = [("Study", f"<p class=headline>{_e(answer)}</p>" + summary)]
    if synthetic:
        sections.append(
            (
                "Data",
                "<p class=synthetic>All numbers on this page come from <b>synthfaces</b>, the "
                "embedded <b>synthetic</b> data set, not from real faces.</p>",
            )
        )
    links = " · ".join(f"<a href='top_k{x}'>top_k{x}</a>" for x in (".tex", ".md", ".csv"))
    sections.append((f"Top {len(table)} completed trials", frame_html(table) + f"<p>{links}</p>"))

    from reports.search_analysis import IMPORTANCE_EVALUATOR, write_optuna_storage
    from reports.search_plots import search_figures

    curves = read_curves(run_dir)
    figures, importances, why = search_figures(df, curves, meta, out)
    notes = ""
    if importances:
        imp = pd.DataFrame({"key": list(importances), "importance": [round(v, 4) for v in importances.values()]})
        imp.to_csv(out / "importance.csv", index=False)
        n_done = int((df["status"] == COMPLETED).sum())
        if n_done < FEW_FOR_IMPORTANCE:
            notes = (
                f"<p class=warn>Importance from {n_done} completed trials is a rough guide at best: "
                f"PED-ANOVA compares the best trials with the rest, and needs tens of them.</p>"
            )
        notes += (
            "<p><small>Importance: <code>optuna.importance.get_param_importances</code> with "
            f"{_e(IMPORTANCE_EVALUATOR)} on the "
            "trials that ran to completion; keys sampled only under a condition are weighed on the trials "
            f"where it held.</small></p>{frame_html(imp)}<p><a href='importance.csv'>importance.csv</a></p>"
        )
    else:
        (run_dir / REPORT_DIR / "importance.csv").unlink(missing_ok=True)  # from an earlier build of this report
        notes = f"<p class=warn>No importance plot: {_e(why)}.</p>"
    if curves.empty:
        notes += "<p class=warn>No curves.csv: no learning curves or best-so-far by compute.</p>"
    sections.append(("Figures", _figures_html(figures, notes)))
    early = _rung_check(run_dir, df, curves, meta, out)
    if early:
        sections.append(("Early stopping check", early))
    write_optuna_storage(df, curves, meta, out / OPTUNA_FILE)
    sections.append(
        (
            "Optuna dashboard",
            f"<p>The search as an Optuna study: <a href='{OPTUNA_FILE}'>{OPTUNA_FILE}</a> "
            f"(SQLite; completed trials COMPLETE, ASHA-stopped PRUNED, failed FAIL). Open it with "
            f"<code>optuna-dashboard sqlite:///{_e(run_dir / REPORT_DIR / OPTUNA_FILE)}</code>.</p>",
        )
    )
    cols = [c for c in ("trial", "status", "rung", "iterations", meta.metric, "error") if c in df.columns]
    sections.append(("Trials stopped early or failed", frame_html(df[df["status"] != COMPLETED][cols])))
    return _write_page(run_dir, df, meta, out, sections)


def _rung_check(run_dir: Path, df: pd.DataFrame, curves: pd.DataFrame, meta: RunInfo, out: Path) -> str:
    """Whether each rung's ranking carried over to the end (``rung_correlation.csv``), with a
    warning where it did not; empty for a scheduler that stops nothing early."""
    from reports.search_analysis import (
        LOW_RANK_CORRELATION,
        MIN_TRIALS_FOR_CORRELATION,
        rung_correlations,
        rung_warning,
    )

    table = rung_correlations(df, curves, meta)
    if table.empty:
        (run_dir / REPORT_DIR / "rung_correlation.csv").unlink(missing_ok=True)  # from an earlier build
        return ""
    table.to_csv(out / "rung_correlation.csv", index=False)
    warning = rung_warning(table, meta.metric)
    few = table["rho"].isna().all()
    return (
        (f"<p class=warn>{_e(warning)}</p>" if warning else "")
        + (
            f"<p class=warn>Fewer than {MIN_TRIALS_FOR_CORRELATION} trials ran to completion (or their values "
            f"did not vary): no rank correlation is computed.</p>"
            if few
            else ""
        )
        + f"<p>Spearman's rank correlation between each trial's {_e(meta.metric)} at the rung where ASHA "
        f"compared it and its final value, over the trials that ran to completion (those it kept: a narrower "
        f"range than all the trials, so the correlation tends to be lower). Below {LOW_RANK_CORRELATION:g} the "
        f"report warns.</p>"
        + frame_html(table.drop(columns="low").round(4))
        + "<p><a href='rung_correlation.csv'>rung_correlation.csv</a></p>"
    )


def build_report(run_dir: Path | str) -> Path:
    """Write tables (LaTeX, Markdown, CSV) and ``index.html``; returns the page's path.

    The files are made in a staging folder and moved into ``report/`` one by one, each with an
    atomic rename, once all are made: a report that fails half-way (or a driver killed while
    it builds) leaves the previous report as it was, and files a user added stay."""
    from reports.rundir.lock import run_lock

    run_dir = Path(run_dir)
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
    return KIND_REPORTS[kind](ReportInput(run_dir, df, meta, out, synthetic, note))


@report_for("search")
def _search(r: ReportInput) -> Path:
    return _search_report(r.run_dir, r.df, r.meta, r.out, r.note, r.synthetic)


def comparison_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """The comparison tables of a run, as its kind registered them (``report_for``): one for
    an ablation or confirm run, one per axis for a sensitivity run, none for a search (one
    seed per trial: nothing is paired)."""
    tables = KIND_TABLES.get(meta.kind)
    return tables(df, meta) if tables else []


def _ablation_tables(df: pd.DataFrame, meta: RunInfo) -> list:
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
    return [table]


def _with_selection(tables: list, meta: RunInfo) -> list:
    return [replace(t, selection=selection_sentence(meta, meta.report_metrics)) for t in tables]


@report_for("ablation", tables=_ablation_tables)
def _ablation(r: ReportInput) -> Path:
    from reports.ablation_plots import ablation_figures
    from reports.evaluation_plots import evaluation_figures, trial_evaluations
    from reports.fairness import write_fairness
    from reports.plots import Figures, export_static

    tables = _with_selection(_ablation_tables(r.df, r.meta), r.meta)
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
        return ("Figures", _figures_html(export_static(figs), note))

    return _grid_report(r, tables, extra_sections=extra, figures=figures)


@report_for("confirm", tables=confirm_tables)
def _confirm(r: ReportInput) -> Path:
    from reports.confirm import confirm_figures

    tables = _with_selection(confirm_tables(r.df, r.meta), r.meta)
    extra = _candidates_section(tables[0], r.meta, r.out, r.note, r.df)

    def figures() -> tuple[str, str]:
        return ("Figures", _figures_html(confirm_figures(tables[0], r.meta, r.df, r.out)))

    return _grid_report(r, tables, extra_sections=extra, figures=figures)


@report_for("sensitivity", tables=sensitivity_tables)
def _sensitivity(r: ReportInput) -> Path:
    from reports.evaluation_plots import evaluation_figures
    from reports.plots import Figures, export_static, sensitivity_figures

    def figures() -> tuple[str, str]:
        figs = sensitivity_figures(r.df, r.meta, r.out, figures=Figures())
        # ROC, DET, histograms or CMC of the points, by their labels, from the trials' evaluation.npz
        shown = {p.point: p.label for points in (r.meta.axes or {}).values() for p in points}
        note = evaluation_figures(r.run_dir, r.df, r.meta, r.out, figs, shown=shown)
        return ("Figures", _figures_html(export_static(figs), note))

    return _grid_report(r, sensitivity_tables(r.df, r.meta), figures=figures)


@section_for("probe")
def _track_comparison(r: ReportInput) -> tuple[str, str]:
    from reports.track import write_track_comparison

    return ("Track comparison", write_track_comparison(r.run_dir, r.df, r.meta, r.out, r.note))


def _grid_report(r: ReportInput, tables: list, *, extra_sections: list = (), figures=None) -> Path:
    """The page of a study whose trials are a grid (ablation, sensitivity, confirm): its
    tables in every format, the study and its data, figures, the trainable's sections, and
    the trials left out of the statistics."""
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
    counts = df["status"].value_counts().to_dict()
    summary = (
        f"<p>{_e(meta.description or '')}</p><p>Trainable <code>{_e(meta.trainable or '?')}</code>; "
        f"metric <code>{_e(meta.metric)}</code> ({_e(meta.mode)}); {len(df)} trials: "
        + ", ".join(f"{n} {_e(s)}" for s, n in sorted(counts.items()))
        + (" &mdash; <b>quick run</b>" if meta.quick else "")
        + "</p>"
        + models_line(meta)
    )
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
    if meta.trainable in TRAINABLE_SECTIONS:
        sections.append(TRAINABLE_SECTIONS[meta.trainable](r))
    if r.synthetic:
        domains = _sample_domains(run_dir)
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


__all__ = ["build_report", "ReportInputError"]
