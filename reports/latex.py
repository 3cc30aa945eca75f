"""LaTeX rendering (booktabs). Written by hand rather than with ``DataFrame.to_latex``
because cells mix bold, math and significance markers that pandas would escape."""

from __future__ import annotations

from reports._format import (
    LEGEND,
    difference_caption,
    family_sentence,
    interval,
    marker,
    metric_label,
    num,
    pvalue,
    signed,
)
from reports.ablation import AblationTable, power_sentence

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "†": r"$^\dagger$",
    "±": r"$\pm$",
}


def escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def _math(text: str) -> str:
    """Escape plain text, then typeset the few symbols the captions use."""
    return escape(text).replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("<", r"$<$").replace("d\\_z", r"$d_z$")


def label_key(text: str) -> str:
    """A LaTeX label's key from a run's names (``_`` read as ``-``: labels stay plain text)."""
    return escape(text).replace(r"\_", "-")


def _label(table: AblationTable, suffix: str = "") -> str:
    return r"\label{tab:" + label_key(f"{table.label_prefix or table.study}-{table.key}{suffix}") + "}"


def _ref(table: AblationTable, suffix: str) -> str:
    return r"Table~\ref{tab:" + label_key(f"{table.label_prefix or table.study}-{table.key}{suffix}") + "}"


def ablation_latex(table: AblationTable, *, caption_note: str = "") -> str:
    """The paper table: per row and metric, mean ± std with significance stars against the
    reference. Differences, their confidence intervals, p-values and effect sizes are in the
    companion table (``comparison_latex``), which the caption points to."""
    metrics = table.metrics
    n_seeds = max((c.n for c in table.cells.values()), default=0)
    caption = (
        f"{table.title or 'Ablation'}: mean ± std over {n_seeds} seeds (n where fewer); "
        f"best mean in bold; stars mark a difference to {table.shown(table.reference)} under a {table.test}, "
        f"{family_sentence(table).removeprefix('p ')} ({LEGEND}). "
        + (f"{table.mark_note} " if table.mark_note else "")
        + (f"{table.selection} " if table.selection else "")
        + caption_note
    )
    lines = [
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (the tabular is scaled to the text width).",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{"
        + _math(caption).strip()
        + " Differences, 95\\% CIs and effect sizes: "
        + _ref(table, "-stats")
        + ".}",
        _label(table),
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        r"\begin{tabular}{l" + "r" * len(metrics) + "}",
        r"\toprule",
        " & ".join(
            [escape(table.row_header)]
            + [escape(metric_label(m)) + ("" if table.modes[m] == "max" else r" $\downarrow$") for m in metrics]
        )
        + r" \\",
        r"\midrule",
    ]
    for v in table.variants:
        cells = [escape(table.label(v)) + (" (ref.)" if v == table.reference else "")]
        for m in metrics:
            c = table.cells[(v, m)]
            mean = rf"\textbf{{{num(c.mean)}}}" if c.best else num(c.mean)
            star = marker(c.p_holm) if v != table.reference else ""
            cells.append(
                f"{mean} $\\pm$ {num(c.std)}"
                + (f"$^{{{star}}}$" if star else "")
                + (f" (n={c.n})" if c.n < n_seeds else "")
            )
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def comparison_latex(table: AblationTable, *, caption_note: str = "") -> str:
    """Every comparison of a table, one per row: mean ± std (n), Δ with its 95% CI, p, effect size."""
    es = r"$d_z$" if table.effect_name == "d_z" else r"$d$"
    caption = (
        f"{table.title or 'Ablation'}, comparisons with "
        f"{table.shown(table.reference)}. "
        f"{difference_caption(table)} {power_sentence(table)} {caption_note}"
    )
    lines = [
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (scaled down only when wider than the text).",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\caption{" + _math(caption).strip() + "}",
        _label(table, "-stats"),
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        r"\begin{tabular}{llrrrrr}",
        r"\toprule",
        f"Metric & {escape(table.row_header)} & mean $\\pm$ std (n) & $\\Delta$ [simult.\\ CI] & $p$ & {es} & MDE \\\\",
        r"\midrule",
    ]
    for i, m in enumerate(table.metrics):
        if i:
            lines.append(r"\addlinespace")
        for v in table.variants:
            c = table.cells[(v, m)]
            mean = rf"\textbf{{{num(c.mean)}}}" if c.best else num(c.mean)
            row = [
                (escape(metric_label(m)) + (" (sec.)" if table.is_secondary(m) else ""))
                if v == table.variants[0]
                else "",
                escape(table.label(v)) + (" (ref.)" if v == table.reference else ""),
                f"{mean} $\\pm$ {num(c.std)} ({c.n})",
            ]
            if v == table.reference:
                row += ["--", "--", "--", "--"]
            else:
                star = marker(c.p_holm)
                row += [
                    f"{signed(c.diff)}" + (f"$^{{{star}}}$" if star else "") + f" {interval(c.sim_low, c.sim_high)}",
                    pvalue(c.p_holm).replace("<", "$<$"),
                    num(c.effect, 2),
                    num(c.mde),
                ]
            lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)


def frame_latex(
    frame,
    *,
    caption: str,
    label: str,
    header: dict[str, str] | None = None,
    digits: int = 4,
    bold: set[tuple[int, str]] = frozenset(),
    formats: dict | None = None,
) -> str:
    """A plain booktabs table of a small frame (text columns left, numbers right); the
    cells in ``bold`` (row position, column) are set in bold; ``formats`` maps a column to
    how its values are written (default: floats with ``digits`` decimals)."""
    from reports._format import num

    cols = list(frame.columns)
    numeric = [frame[c].dtype.kind in "fi" for c in cols]
    head = " & ".join(escape((header or {}).get(c, c)) for c in cols)

    def cell(i: int, c: str, v) -> str:
        text = escape((formats or {}).get(c, lambda x: num(x, digits) if isinstance(x, float) else str(x))(v))
        return r"\textbf{" + text + "}" if (i, c) in bold else text

    body = [
        " & ".join(cell(i, c, v) for c, v in zip(cols, r)) + r" \\" for i, r in enumerate(frame.itertuples(index=False))
    ]
    return "\n".join(
        [
            r"% Needs \usepackage{booktabs} and \usepackage{graphicx}.",
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            r"\caption{" + _math(caption).strip() + "}",
            r"\label{tab:" + label_key(label) + "}",
            r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
            r"\begin{tabular}{" + "".join("r" if n else "l" for n in numeric) + "}",
            r"\toprule",
            head + r" \\",
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}}",
            r"\end{table}",
            "",
        ]
    )
