"""LaTeX rendering (booktabs). Written by hand rather than with ``DataFrame.to_latex``
because cells mix bold, math and significance markers that pandas would escape."""

from __future__ import annotations

from reports._format import LEGEND, marker, metric_label, num, pvalue, signed
from reports.ablation import AblationTable

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def ablation_latex(table: AblationTable, *, caption_note: str = "") -> str:
    metrics = table.metrics
    n_seeds = max((c.n for c in table.cells.values()), default=0)
    lines = [
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx} (the tabular is scaled to the text width).",
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\setlength{\tabcolsep}{3pt}",
        r"\caption{" + escape(f"{table.title or 'Ablation of ' + table.study}: mean ± std over {n_seeds} seeds; Δ is the mean paired "
                             f"difference to the reference ({table.label(table.reference)}); p from a {table.test}, "
                             f"Holm-adjusted over the {table.comparisons} comparisons of this table; "
                             f"best mean in bold. {LEGEND}. {caption_note}").replace("±", r"$\pm$").replace(
                                 "Δ", r"$\Delta$").replace("<", r"$<$").strip() + "}",
        r"\label{tab:" + escape(f"{table.study}-{table.key}").replace(r"\_", "-") + "}",
        r"\resizebox{\textwidth}{!}{%",
        r"\begin{tabular}{l" + "rr" * len(metrics) + "}",
        r"\toprule",
        " & ".join([escape(table.row_header)] + [r"\multicolumn{2}{c}{" + escape(metric_label(m)) + ("" if table.modes[m] == "max" else r" $\downarrow$") + "}"
                                  for m in metrics]) + r" \\",
        "".join(rf"\cmidrule(lr){{{2 + 2 * i}-{3 + 2 * i}}}" for i in range(len(metrics))),
        " & ".join([""] + [r"mean $\pm$ std & $\Delta$ ($p$)"] * len(metrics)) + r" \\",
        r"\midrule",
    ]
    for v in table.variants:
        cells = [escape(table.label(v)) + (" (ref.)" if v == table.reference else "")]
        for m in metrics:
            c = table.cells[(v, m)]
            mean = num(c.mean)
            mean = rf"\textbf{{{mean}}}" if c.best else mean
            cells.append(f"{mean} $\\pm$ {num(c.std)}" + (f" (n={c.n})" if c.n < n_seeds else ""))
            if v == table.reference:
                cells.append("--")
            else:
                star = marker(c.p_holm)
                cells.append(f"{signed(c.diff)}" + (f"$^{{{star}}}$" if star else "") + f" ({escape(pvalue(c.p_holm))})"
                             .replace("<", "$<$"))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""]
    return "\n".join(lines)
