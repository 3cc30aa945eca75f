"""The search report: the top-k trials that ran to completion, with their settings; the
search's figures, importances, the check of ASHA's rungs and the Optuna study file.

Trials ASHA stopped early are listed apart with the rung they reached; they never enter
a ranking or a test (a stopped trial's metric is from fewer epochs than a finished one's).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports._format import setting
from reports.ablation import COMPLETED
from reports.html import _e, figures_html, frame_html
from reports.kinds.base import ReportInput, Section, report_for
from reports.latex import frame_latex
from reports.markdown import frame_markdown
from reports.rundir.files import read_curves
from reports.rundir.info import RunInfo
from reports.rundir.names import OPTUNA_FILE, REPORT_DIR
from reports.sections import study_summary
from reports.selection import selection_sentence

#: Fewer completed trials than this: the importances are flagged as a rough guide.
FEW_FOR_IMPORTANCE = 10


def top_k(df: pd.DataFrame, meta: RunInfo) -> pd.DataFrame:
    """Completed trials, best first, at most ``top_k``: trial, the metric they are ranked on
    (validation), the other report metrics beside it (the test metrics of what was chosen,
    never used to rank), and the searched keys."""
    metric, k = meta.metric, meta.top_k
    done = df[df["status"] == COMPLETED]
    if metric not in done.columns:
        return pd.DataFrame(columns=["rank", "trial", metric])
    done = done.dropna(subset=[metric]).sort_values(metric, ascending=meta.mode == "min", kind="stable")
    cols = [f"config/{key}" for key in (meta.space or {}) if f"config/{key}" in done.columns]
    reported = [m for m in meta.report_metrics if m != metric and m in done.columns]
    taken = {"rank", "trial", metric, *reported}  # a searched key of one of these names keeps its config/ prefix
    out = (
        done[["trial", metric, *reported, *cols]]
        .head(k)
        .rename(columns={c: c.removeprefix("config/") for c in cols if c.removeprefix("config/") not in taken})
    )
    for c in out.columns:
        if out[c].dtype == object:
            out[c] = out[c].map(setting)  # a searched list (LoRA targets) as one readable cell
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def search_headline(table: pd.DataFrame, df: pd.DataFrame, meta: RunInfo) -> str:
    """The answer first, as the ablation's page opens: the best trial that ran to completion
    on the study metric, its settings, the other report metrics of that trial (what was
    chosen, never used to choose), how many trials it was chosen among, and that one seed
    ranks but does not test."""
    from reports.rundir.names import FAILED, STOPPED

    metric = meta.metric
    counts = (
        f"{int((df['status'] == COMPLETED).sum())} of {len(df)} trials ran to completion"
        f" ({int((df['status'] == STOPPED).sum())} stopped early by ASHA, {int(df['status'].isin(FAILED).sum())} failed)"
    )
    if not len(table):
        return f"No trial ran to completion with a value of {metric}: nothing is ranked; {counts}."
    best = table.iloc[0]
    fmt = _settings_format(table, meta)
    keys = [c for c in fmt if c not in ("rank", "trial") and c in table.columns]
    settings = ", ".join(f"{k.removeprefix('config/')}={fmt[k](best[k])}" for k in keys if pd.notna(best[k]))
    others = [m for m in meta.report_metrics if m != metric and m in table.columns]
    text = f"Best on {metric} ({meta.mode}): {best['trial']} ({best[metric]:.3f})"
    text += f" with {settings}" if settings else ""
    if others:
        text += "; the same trial's " + ", ".join(f"{m} = {best[m]:.3f}" for m in others[:2])
    return (
        text + f". {counts}. One seed per trial ranks the settings but does not test them: "
        f"`python -m orchestrator run confirm --from DIR` reruns the best with several seeds."
    )


def top_k_markdown(table: pd.DataFrame, meta: RunInfo) -> str:
    return frame_markdown(
        table,
        f"Top {len(table)} of the trials that ran to completion, by {meta.metric} "
        f"({meta.mode}), best in bold; trials stopped early by ASHA are not ranked. "
        + selection_sentence(meta, meta.report_metrics),
        bold=_best(table, meta),
        formats=_settings_format(table, meta),
    )


def _best(table: pd.DataFrame, meta: RunInfo) -> set[tuple[int, str]]:
    return {(0, meta.metric)} if len(table) else set()


def _settings_format(table: pd.DataFrame, meta: RunInfo) -> dict:
    """Sampled settings with 4 significant digits (a learning rate of 2.3e-4 is not 0.0002)."""

    def sig(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    metrics = {meta.metric, *meta.report_metrics}
    return {c: sig for c in table.columns if c not in ("rank", "trial") and c not in metrics}


def top_k_latex(table: pd.DataFrame, meta: RunInfo, *, caption_note: str = "") -> str:
    caption = (
        f"{meta.title or 'Search'}: the top {len(table)} trials that ran to completion, by "
        f"{meta.metric} ({meta.mode}), one seed each, best in bold; trials stopped early by ASHA are "
        f"not ranked; run confirm tests the best ones with fresh seeds. "
        f"{selection_sentence(meta, meta.report_metrics)} {caption_note}"
    )
    return frame_latex(
        table,
        caption=caption,
        label=f"{meta.label or meta.study}-top-k",
        header={meta.metric: meta.metric_name(meta.metric)},
        bold=_best(table, meta),
        formats=_settings_format(table, meta),
        keep=2,  # rank and trial start every block
    )


def search_selection(meta: RunInfo, roles: str) -> str:
    return (
        f"Chosen on: {meta.metric} (validation identities) ranks the trials, drives the sampler and ASHA; "
        f"reported only: {roles}."
    )


@report_for("search", selection=search_selection)
def _search(r: ReportInput) -> list[Section]:
    run_dir, df, meta, out, note, synthetic = r.run_dir, r.df, r.meta, r.out, r.note, r.synthetic
    table = top_k(df, meta)
    (out / "top_k.tex").write_text(top_k_latex(table, meta, caption_note=note))
    (out / "top_k.md").write_text(top_k_markdown(table, meta))
    table.to_csv(out / "top_k.csv", index=False)
    summary = study_summary(meta, df, f"Search over {', '.join(map(_e, meta.space or {}))}")
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
    sections.append(("Figures", figures_html(figures, notes)))
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
    return sections


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
