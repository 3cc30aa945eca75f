"""``report/index.html``: one self-contained page gathering the run's tables and context."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from reports._format import (
    P_BETTER_NOTE,
    difference_caption,
    effect,
    interval,
    marker,
    num,
    pvalue,
    signed,
)
from reports.ablation import AblationTable, power_sentence

_CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border-bottom:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}.best{font-weight:bold}.warn{background:#fff3cd;padding:.5em 1em;border-left:4px solid #e0a800}
.synthetic{background:#e7f1ff;padding:.5em 1em;border-left:4px solid #0b5ed7}pre{background:#f6f8fa;padding:1em;overflow-x:auto}
code{background:#f6f8fa}.scroll{max-width:100%;overflow-x:auto}
.headline{font-size:1.15em;background:#eef6ee;padding:.6em 1em;border-left:4px solid #2e7d32}
img{max-width:100%;height:auto}"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def ablation_html(table: AblationTable) -> str:
    head = "".join(
        f"<th colspan=2>{_e(table.metric_name(m))}{' ↓' if table.modes[m] == 'min' else ''}"
        f"{' <small>(secondary)</small>' if table.is_secondary(m) else ''}</th>"
        for m in table.metrics
    )
    sub = "".join("<th>mean ± std</th><th>Δ [simult. CI] (p), effect; MDE; P(better)</th>" for _ in table.metrics)
    rows = []
    for v in table.variants:
        cells = [f"<td>{_e(table.label(v))}{' (ref.)' if v == table.reference else ''}</td>"]
        for m in table.metrics:
            c = table.cells[(v, m)]
            cls = " class=best" if c.best else ""
            cells.append(f"<td{cls}>{num(c.mean)} ± {num(c.std)} <small>(n={c.n})</small></td>")
            cells.append(
                "<td>—</td>"
                if v == table.reference
                else f"<td>{signed(c.diff)}{marker(c.p_holm)} <small>{interval(c.sim_low, c.sim_high)}{c.ci_mark} "
                f"({_e(pvalue(c.p_holm))}), {_e(effect(c.effect, table.effect_name))}; MDE {num(c.mde)}; P {num(c.p_better, 2)}</small></td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = _e(difference_caption(table) + " " + P_BETTER_NOTE)
    warnings = "".join(f"<p class=warn>Warning: {_e(w)}</p>" for w in table.warnings)
    power = power_sentence(table)
    return (
        (f"<p class=power>{_e(power)}</p>" if power else "")
        + f"<div class=scroll><table><tr><th>{_e(table.row_header.lower())}</th>{head}</tr><tr><th></th>{sub}</tr>"
        f"{''.join(rows)}</table></div>"
        f"<p><small>{caption}</small></p>{warnings}"
    )


def frame_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p>None.</p>"
    return "<div class=scroll>" + df.to_html(index=False, border=0, na_rep="", escape=True) + "</div>"


def folded(content: str, what: str) -> str:
    """Context a reader opens when needed (the page opens on the answer)."""
    return f"<details><summary>Show {_e(what)}</summary>{content}</details>"


def page(*, title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{_e(h)}</h2>\n{content}\n" for h, content in sections)
    return (
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>\n{body}</body></html>\n"
    )


def figures_html(figures, notes: str = "") -> str:
    """The figures of a page (``reports.plots.Figures`` after their static export): each as its
    PNG linking to the interactive page, with its PDF and PNG; the export's error first."""
    items = "".join(
        f"<figure><a href='{stem}.html'><img src='{stem}.png' alt='{_e(title)}' width=640 "
        f"onerror=\"this.replaceWith('(no static image: open the interactive figure)')\"></a>"
        f"<figcaption>{_e(title)}: <a href='{stem}.html'>interactive</a> · <a href='{stem}.pdf'>PDF</a> · "
        f"<a href='{stem}.png'>PNG</a></figcaption></figure>"
        for stem, title in figures.written.items()
    )
    warn = f"<p class=warn>{_e(figures.static_error)}</p>" if figures.static_error else ""
    return warn + items + notes
