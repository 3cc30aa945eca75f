"""The search report's table: the top-k trials that ran to completion, with their settings.

Trials ASHA stopped early are listed apart with the rung they reached; they never enter
a ranking or a test (a stopped trial's metric is from fewer epochs than a finished one's).
"""

from __future__ import annotations

import pandas as pd

from reports._format import metric_label, setting
from reports.ablation import COMPLETED
from reports.latex import frame_latex
from reports.markdown import frame_markdown
from reports.rundir.info import RunInfo
from reports.selection import selection_sentence


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
        header={meta.metric: metric_label(meta.metric)},
        bold=_best(table, meta),
        formats=_settings_format(table, meta),
        keep=2,  # rank and trial start every block
    )
