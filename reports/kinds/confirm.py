"""The confirm report: the top candidates of a search rerun with fresh seeds, each against the
search's base config (Holm over the candidates), and its second table: what each candidate
is, what the search saw of it (one seed, the seed that ranked it) and what the reruns found
(fresh seeds)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from reports._format import num
from reports.ablation import COMPLETED, AblationTable
from reports.html import _e, figures_html, frame_html
from reports.kinds.ablation import ablation_tables
from reports.kinds.base import ReportInput, Section, report_for
from reports.kinds.grid import grid_sections, with_selection
from reports.latex import frame_latex
from reports.markdown import frame_markdown
from reports.rundir.info import RunInfo
from reports.stats import mean_std


def _show(v) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _confirmed(df: pd.DataFrame, variant: str, metric: str) -> str:
    """Mean ± std (n) of a metric over a variant's completed reruns."""
    rows = df[(df["variant"] == variant) & (df["status"] == COMPLETED)]
    mean, std, n = mean_std(rows[metric].tolist()) if metric in rows.columns else (math.nan, math.nan, 0)
    return f"{num(mean, 4)} ± {num(std, 4)} (n={n})" if n else "n/a"


def candidates_frame(table: AblationTable, meta: RunInfo, df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its search trial and the value it was chosen on (validation,
    one seed), the confirmed mean ± std of that metric and of the test metric (fresh seeds),
    its settings."""
    chosen, tested = meta.chosen_by, meta.metric
    columns = {f"confirmed {chosen}": chosen}
    if tested != chosen:
        columns[f"confirmed {tested}"] = tested
    rows = [
        {
            "candidate": table.reference,
            "search trial": f"{meta.base_trial or 'trial000'} (base)",
            f"search {chosen}": math.nan if meta.base_search_value is None else float(meta.base_search_value),
            **{k: _confirmed(df, table.reference, m) for k, m in columns.items()},
            "settings": "the search's base config",
        }
    ]
    for c in meta.candidates:
        rows.append(
            {
                "candidate": c.variant,
                "search trial": c.trial,
                f"search {chosen}": c.search_value,
                **{k: _confirmed(df, c.variant, m) for k, m in columns.items()},
                "settings": ", ".join(f"{k}={_show(v)}" for k, v in sorted(c.changes.items())),
            }
        )
    return pd.DataFrame(rows)


def candidates_note(meta: RunInfo) -> str:
    chosen, tested = meta.chosen_by, meta.metric
    return (
        f"{meta.metric_name(chosen)}: the search's value is one run with seed(s) "
        f"{', '.join(map(str, meta.search_seeds))}, on the validation identities the candidates were "
        f"chosen on (the run that ranked it, so biased upwards); confirmed: mean ± std over seeds "
        f"{', '.join(map(str, meta.seeds or []))}"
        + (
            f", and {meta.metric_name(tested)} on the test identities, which took no part in the choice"
            if tested != chosen
            else ""
        )
        + ". Settings: what differs from the base config."
    )


# -- the figure: the search's value against the confirmed one (the winner's curse) -------


@dataclass(frozen=True)
class CandidatePoint:
    """One candidate (or the base config): the one-seed value the search saw on the metric it
    chose on, and the mean with its 95% t interval of the same metric over the fresh seeds."""

    candidate: str
    shown: str
    base: bool
    search: float
    mean: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class ConfirmInfo:
    """What the confirm figure shows, computed apart from drawing it."""

    metric: str
    mode: str
    points: list[CandidatePoint]
    name: str = ""
    """What the axes call the metric (its declared name; from its key where empty)."""

    @property
    def shrinkage(self) -> float | None:
        """Mean of confirmed - search over the candidates (not the base) that have both: below
        0 for a metric to maximise, the search's values were optimistic (the winner's curse)."""
        d = [p.mean - p.search for p in self.points if not p.base and math.isfinite(p.search) and p.n]
        return float(np.mean(d)) if d else None


def confirm_info(table: AblationTable, meta: RunInfo, df: pd.DataFrame) -> ConfirmInfo:
    """From the confirm table, run.json (the candidates and their search values) and the
    results; only completed reruns count."""
    from reports.plots import mean_ci

    chosen = meta.chosen_by
    done = df[df["status"] == COMPLETED]
    search = {c.variant: c.search_value for c in meta.candidates}
    base = meta.base_search_value
    search[table.reference] = math.nan if base is None else float(base)
    points = []
    for v in table.variants:
        rows = done[done["variant"] == v]
        values = rows[chosen].to_numpy(dtype=float) if chosen in rows.columns else np.array([])
        mean, lo, hi, n = mean_ci(values)
        points.append(CandidatePoint(v, table.shown(v), v == table.reference, search.get(v, math.nan), mean, lo, hi, n))
    return ConfirmInfo(chosen, meta.mode, points, meta.metric_name(chosen))


def confirm_figure(info: ConfirmInfo, *, title: str):
    """Each candidate at (its search value, its confirmed mean with the 95% interval over the
    fresh seeds), the base config as a horizontal line (it has no search value of its own
    where the search did not run it), and the diagonal where the two agree: for a metric to
    maximise, candidates below it were chosen partly for their luck."""
    import plotly.graph_objects as go

    from reports._format import metric_label
    from reports.plots import _layout

    cands = [p for p in info.points if not p.base and math.isfinite(p.search)]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p.search for p in cands],
            y=[p.mean for p in cands],
            mode="markers+text",
            text=[p.shown for p in cands],
            textposition="top center",
            name="candidates: confirmed mean, 95% CI over seeds",
            marker={"size": 10, "color": "rgb(31,119,180)"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [p.hi - p.mean if math.isfinite(p.hi) else 0 for p in cands],
                "arrayminus": [p.mean - p.lo if math.isfinite(p.lo) else 0 for p in cands],
            },
            hovertemplate="%{text}: search %{x:.4f}, confirmed %{y:.4f}",
        )
    )
    values = [v for p in cands for v in (p.search, p.lo, p.hi, p.mean) if math.isfinite(v)]
    for p in info.points:
        if p.base and p.n:
            values.append(p.mean)
            fig.add_hline(y=p.mean, line_dash="dot", line_color="black", annotation_text=f"{p.shown} (confirmed)")
            if math.isfinite(p.search):
                fig.add_trace(
                    go.Scatter(x=[p.search], y=[p.mean], mode="markers", name=p.shown, marker={"color": "black"})
                )
                values.append(p.search)
    if values:
        lo, hi = min(values), max(values)
        pad = (hi - lo) * 0.1 or 0.01
        fig.add_trace(
            go.Scatter(
                x=[lo - pad, hi + pad],
                y=[lo - pad, hi + pad],
                mode="lines",
                name="confirmed = search",
                line={"dash": "dash", "color": "grey"},
            )
        )
    label = info.name or metric_label(info.metric)
    _layout(fig, title, f"search: {label} (one seed)", f"confirmed: {label} (fresh seeds)")
    return fig


def confirm_figures(table: AblationTable, meta: RunInfo, df: pd.DataFrame, out_dir):
    """``fig_confirm_search`` (the search's value against the reruns') and the ablation
    figures of the candidates against the base (``fig_confirm``, ``fig_confirm_metrics``),
    interactive and static."""
    from reports.ablation_plots import ablation_figures
    from reports.plots import Figures, export_static, write_figure

    info = confirm_info(table, meta, df)
    figures = Figures()
    title = f"Confirm: {info.metric} in the search (one seed) against the reruns (fresh seeds)"
    write_figure(confirm_figure(info, title=title), out_dir, "fig_confirm_search", figures, title=title)
    ablation_figures(table, df, out_dir, figures=figures)
    return export_static(figures)


def confirm_tables(df: pd.DataFrame, meta: RunInfo) -> list:
    """A confirm run's comparison table: each candidate against the base, Holm over the
    candidates, rows named by candidate and search trial."""
    table = ablation_tables(df, meta)[0]
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


def confirm_selection(meta: RunInfo, roles: str) -> str:
    return (
        f"Chosen on: the search ranked the candidates on {meta.chosen_by} (validation identities, one seed); "
        f"tested here on {meta.metric} with fresh seeds; reported: {roles}."
    )


@report_for("confirm", tables=confirm_tables, selection=confirm_selection)
def _confirm(r: ReportInput) -> list[Section]:
    tables = with_selection(confirm_tables(r.df, r.meta), r.meta)
    extra = _candidates_section(tables[0], r.meta, r.out, r.note, r.df)

    def figures() -> tuple[str, str]:
        return ("Figures", figures_html(confirm_figures(tables[0], r.meta, r.df, r.out)))

    return grid_sections(r, tables, extra_sections=extra, figures=figures)
