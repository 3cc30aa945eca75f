"""LaTeX tables (booktabs, numbers in siunitx ``S`` columns): what each table holds, its
caption and how it is split to fit the page. The cells themselves are ``latex_cells``'."""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from typing import Any

from reports._format import (
    LEGEND,
    difference_caption,
    family_sentence,
    interval,
    marker,
    num,
    pvalue,
    signed,
)
from reports.ablation import AblationTable, power_sentence
from reports.latex_cells import (
    CELL_CHARS,
    NUMBER,
    PM,
    ROW_CHARS,
    Num,
    break_lines,
    escape,
    interval_cell,
    math_number,
    prose,
    s_cell,
    s_column,
    wrapped,
)


def label_key(text: str) -> str:
    """A LaTeX label's key from a run's names: letters, digits and ``.:+-`` only (anything
    else, ``_`` included, read as ``-``), so that it is valid in any document (``\\label`` of
    a ``%``, ``#`` or ``\\`` does not compile) and survives hyperref."""
    return re.sub(r"[^A-Za-z0-9.:+-]+", "-", text).strip("-")


def _label(table: AblationTable, suffix: str = "") -> str:
    return r"\label{tab:" + label_key(f"{table.label_prefix or table.study}-{table.key}{suffix}") + "}"


def _ref(table: AblationTable, suffix: str) -> str:
    """``Table~\\ref`` to a companion table where the document has it (its label is known
    from the .aux), else the companion's file name: the main table input on its own never
    prints "Table ??". Plain LaTeX (``\\ifcsname r@label``), no package needed."""
    key = "tab:" + label_key(f"{table.label_prefix or table.study}-{table.key}{suffix}")
    file = f"{table.key}{suffix.replace('-', '_')}.tex"
    return (
        r"\ifcsname r@"
        + key
        + r"\endcsname Table~\ref{"
        + key
        + r"}\else the table of "
        + escape(file)
        + r" in the report\fi"
    )


#: Every table is set in \footnotesize and never scaled (a scaled table reads smaller than
#: the document's footnotes): what does not fit is split instead. Blocks of at most this many
#: metrics fit a one-column ``article``'s text width (345 pt), the narrowest ``table*``.
WIDE_METRICS = 3
#: Metrics per statistics float, and the most rows (metric headings and comparisons) one
#: float holds: it stays shorter than the page in every class (``review``'s 12 pt included).
STATS_METRICS = 3
STATS_ROWS = 16
_SETUP = [r"\centering", r"\footnotesize", r"\setlength{\tabcolsep}{4pt}"]
#: Between a caption and its table's top rule (a caption above a table gets no space below
#: it from the standard classes)
GAP = r"\smallskip"
NEEDS = r"% Needs \usepackage{booktabs,siunitx}. Set in \footnotesize, never scaled; \input it as it is."


def _mean_std(table: AblationTable, v: str, m: str, n_seeds: int, *, stars: bool) -> tuple[Num, Num]:
    """Mean (bold where best) and std, the stars and a count of seeds where fewer after it."""
    c = table.cells[(v, m)]
    star = marker(c.p_holm) if stars and v != table.reference else ""
    post = (f"$^{{{star}}}$" if star else "") + (rf"\,(n={c.n})" if c.n < n_seeds else "")
    return Num(num(c.mean), bold=bool(c.best)), Num(num(c.std), post=post)


def _mean_std_columns(cells: list[tuple[Num, Num]]) -> str:
    return s_column([a for a, _ in cells]) + PM + s_column([b for _, b in cells])


def _mean_std_cells(cell: tuple[Num, Num]) -> str:
    mean, std = cell
    if not NUMBER.match(mean.text):  # no mean (no trial ended): one "n/a" over both columns
        return r"\multicolumn{2}{c}{" + escape(mean.text) + "}"
    return s_cell(mean) + " & " + s_cell(std)


def _header(table: AblationTable, metrics: list[str]) -> list[str]:
    """Two header rows: the metric's domain (or first word), then the measure: long names
    such as ``cross_domain tar@far=1e-3`` would otherwise set a column's width. Each
    metric spans its mean's and its std's columns."""
    tops, bottoms = [], []
    for m in metrics:
        words = table.metric_name(m).rsplit(" ", 1)
        top, bottom = (words[0], words[1]) if len(words) == 2 else ("", words[0])
        tops.append(r"\multicolumn{2}{c}{" + escape(top) + "}")
        bottom = escape(bottom) + ("" if table.modes[m] == "max" else r" $\downarrow$")
        bottoms.append(r"\multicolumn{2}{c}{" + bottom + "}")
    return [" & ".join([""] + tops) + r" \\", " & ".join([escape(table.row_header)] + bottoms) + r" \\"]


def _row_name(table: AblationTable, v: str) -> str:
    name = wrapped(table.label(v), ROW_CHARS)
    return rf"\textit{{{name}}}" if v == table.reference else name


def _grid(table: AblationTable, metrics: list[str], n_seeds: int) -> list[str]:
    cells = {(v, m): _mean_std(table, v, m, n_seeds, stars=True) for v in table.variants for m in metrics}
    spec = "".join(_mean_std_columns([cells[(v, m)] for v in table.variants]) for m in metrics)
    lines = [r"\begin{tabular}{@{}l" + spec + "@{}}", r"\toprule", *_header(table, metrics), r"\midrule"]
    for v in table.variants:
        row = [_row_name(table, v)] + [_mean_std_cells(cells[(v, m)]) for m in metrics]
        lines.append(" & ".join(row) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}"]


def main_metrics(table: AblationTable) -> list[str]:
    """The main table's metrics: ``table.main`` where set, else the study metric and the
    next report metric (two columns fit a two-column page's column)."""
    if table.main:
        return [m for m in table.main if m in table.metrics]
    rest = [m for m in table.metrics if m != table.primary]
    return [m for m in [table.primary, *rest[:1]] if m in table.metrics]


def _grid_caption(table: AblationTable, n_seeds: int, caption_note: str) -> str:
    return (
        f"{table.title or 'Ablation'}: mean ± std over {n_seeds} seeds (n where fewer); "
        f"best mean in bold; the reference, {table.shown(table.reference)}, in italics; stars mark a "
        f"difference to it under a {table.test}, {family_sentence(table).removeprefix('p ')} ({LEGEND}). "
        + (f"{table.mark_note} " if table.mark_note else "")
        + (f"{table.selection} " if table.selection else "")
        + caption_note
    )


def ablation_latex(table: AblationTable, *, caption_note: str = "") -> str:
    """The paper's main table (``table``, one column wide): per row, mean ± std of the main
    metrics with significance stars against the reference. Every metric is in
    ``ablation_full_latex`` (``table*``); differences, intervals, p-values, effect sizes and
    detectable differences in ``comparison_latex``; the caption points to both."""
    metrics = main_metrics(table)
    n_seeds = max((c.n for c in table.cells.values()), default=0)
    more = [m for m in table.metrics if m not in metrics]
    pointers = (
        (f" All {len(table.metrics)} metrics: " + _ref(table, "-full") + "." if more else "")
        + " Differences, simultaneous CIs, effect sizes and detectable differences: "
        + _ref(table, "-stats")
        + "."
    )
    return "\n".join(
        [
            NEEDS,
            r"\begin{table}[t]",
            *_SETUP,
            r"\caption{" + prose(_grid_caption(table, n_seeds, caption_note)).strip() + pointers + "}",
            _label(table),
            GAP,
            *_grid(table, metrics, n_seeds),
            r"\end{table}",
            "",
        ]
    )


def ablation_full_latex(table: AblationTable, *, caption_note: str = "") -> str:
    """Every metric of the table (``table*``, the text width): blocks of WIDE_METRICS metrics,
    one under the other, each with its header."""
    n_seeds = max((c.n for c in table.cells.values()), default=0)
    blocks = [table.metrics[i : i + WIDE_METRICS] for i in range(0, len(table.metrics), WIDE_METRICS)]
    body: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            body.append(r"\par\medskip")
        body += _grid(table, block, n_seeds)
    return "\n".join(
        [
            NEEDS,
            r"\begin{table*}[t]",
            *_SETUP,
            r"\caption{" + prose(_grid_caption(table, n_seeds, caption_note)).strip() + "}",
            _label(table, "-full"),
            GAP,
            *body,
            r"\end{table*}",
            "",
        ]
    )


def comparison_latex(table: AblationTable, *, caption_note: str = "") -> str:
    """Every comparison of a table, one per row: mean ± std, Δ with its simultaneous CI, p,
    effect size and MDE; metrics as row headings, STATS_METRICS metrics per ``table*`` (the
    first float carries the study metric, the primary family)."""
    es = r"$d_z$" if table.effect_name == "d_z" else r"$d$"
    n_seeds = max((c.n for c in table.cells.values()), default=0)
    ordered = [table.primary, *[m for m in table.metrics if m != table.primary]]
    ordered = [m for m in ordered if m in table.metrics]
    chunks = _stats_floats(table, ordered)
    out = [NEEDS]
    for k, chunk in enumerate(chunks):
        caption = (
            f"{table.title or 'Ablation'}, comparisons with {table.shown(table.reference)}"
            + (f" (continued, {k + 1} of {len(chunks)})" if k else "")
            + ". "
            + (f"{difference_caption(table)} {power_sentence(table)} {caption_note}" if not k else "")
        )
        # the float's cells first: each column's format is computed from all of them
        body: list[tuple[str | None, Any]] = []  # (variant, its cells); None: a metric's heading
        for m, variants, part in chunk:
            name = escape(table.metric_name(m)) + (r" $\downarrow$" if table.modes[m] == "min" else "")
            kind = "secondary" if table.is_secondary(m) else ("primary" if m == table.primary else "")
            kind += (", " if kind else "") + "continued" if part else ""
            body.append((None, name + (f" ({kind})" if kind else "")))
            for v in variants:
                c = table.cells[(v, m)]
                if v == table.reference:
                    stats = [Num("--"), "--", Num("--"), Num("--"), Num("--")]
                elif c.diff is None:
                    stats = [Num("n/a"), "n/a", Num("n/a"), Num("n/a"), Num("n/a")]
                else:
                    star = marker(c.p_holm)
                    stats = [
                        Num(signed(c.diff), post=f"$^{{{star}}}$" if star else ""),
                        interval(c.sim_low, c.sim_high) + c.ci_mark if c.sim_low is not None else "[CI n/a]",
                        Num(pvalue(c.p_holm)),
                        Num(num(c.effect, 2)),
                        Num(num(c.mde)),
                    ]
                body.append((v, [_mean_std(table, v, m, n_seeds, stars=False), *stats]))
        rows = [r for v, r in body if v is not None]
        spec = (
            "@{}l"
            + _mean_std_columns([r[0] for r in rows])
            + s_column([r[1] for r in rows])
            + "l"  # the interval: signed, fixed decimals, so its digits align left
            + "".join(s_column([r[k] for r in rows]) for k in (3, 4, 5))
            + "@{}"
        )
        lines = [
            r"\begin{table*}[t]",
            *_SETUP,
            r"\caption{" + prose(caption).strip() + "}",
            _label(table, "-stats" + (f"-{k + 1}" if k else "")),
            GAP,
            r"\begin{tabular}{" + spec + "}",
            r"\toprule",
            f"{escape(table.row_header)} & \\multicolumn{{2}}{{c}}{{mean $\\pm$ std}} & {{$\\Delta$}} & "
            f"[simult.\\ CI] & {{$p$}} & {{{es}}} & {{MDE}} \\\\",
        ]
        for variant, r in body:
            if variant is None:
                lines += [r"\midrule", rf"\multicolumn{{8}}{{@{{}}l}}{{\emph{{{r}}}}} \\"]
                continue
            cells = [_row_name(table, variant), _mean_std_cells(r[0]), s_cell(r[1]), interval_cell(r[2])]
            lines.append(" & ".join(cells + [s_cell(x) for x in r[3:]]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table*}", ""]
        out += lines
    return "\n".join(out)


def _stats_floats(table: AblationTable, metrics: list[str]) -> list[list[tuple[str, list[str], int]]]:
    """The statistics table cut into floats of at most STATS_METRICS metrics and STATS_ROWS
    lines (a metric's heading, and each row as many lines as its label takes). A metric is
    never split between floats unless its rows alone exceed a float; then it continues in
    the next, the reference first again. Each float is a list of (metric, its rows there,
    part: 0 for the first)."""

    def height(v: str) -> int:
        return len(break_lines(table.label(v), ROW_CHARS))

    floats: list[list[tuple[str, list[str], int]]] = [[]]
    used = 0
    for m in metrics:
        part, rows = 0, list(table.variants)
        while rows:
            need = 1 + sum(height(v) for v in rows)
            full = len({x for x, _, _ in floats[-1]}) >= STATS_METRICS
            # a metric that does not fit what is left starts the next float whole: its rows are
            # split only when they alone are taller than a float
            if floats[-1] and (used + need > STATS_ROWS or full):
                floats.append([])
                used = 0
            # as many of the metric's rows as fit what is left of this float
            take: list[str] = []
            h = 1
            for v in rows:
                progress = any(t != table.reference for t in take) or table.reference not in rows
                if take and progress and used + h + height(v) > STATS_ROWS:
                    break
                take.append(v)
                h += height(v)
            floats[-1].append((m, take, part))
            used += h
            rows = [v for v in rows if v not in take]
            if rows:
                rows = [table.reference, *rows] if table.reference not in rows else rows
                floats.append([])
                used, part = 0, part + 1
    return [f for f in floats if f]


#: The narrowest text width a ``table*`` meets (one-column ``article``, 345 pt), less a margin.
TEXT_PT = 330.0
#: About the width of a character of \footnotesize (8 pt Computer Modern), and a column's
#: padding with \tabcolsep at 4 pt. Estimates for splitting a frame's columns into blocks;
#: the tests compile the result in every document class to prove it fits.
CHAR_PT, PAD_PT = 4.2, 8.0


def _column_blocks(widths: list[float], keep: int, limit: float = TEXT_PT) -> list[list[int]]:
    """Columns in blocks that each fit ``limit`` points; the first ``keep`` (the row's key)
    start every block."""
    head, rest = list(range(keep)), list(range(keep, len(widths)))
    base = sum(widths[i] for i in head)
    blocks: list[list[int]] = []
    current: list[int] = []
    for i in rest:
        if current and base + sum(widths[j] for j in current) + widths[i] > limit:
            blocks.append(head + current)
            current = []
        current.append(i)
    return blocks + [head + current] if current or not blocks else blocks


def frame_latex(
    frame,
    *,
    caption: str,
    label: str,
    header: dict[str, str] | None = None,
    digits: int = 4,
    bold: AbstractSet[tuple[int, str]] = frozenset(),
    formats: dict | None = None,
    keep: int = 1,
) -> str:
    """A plain booktabs table of a small frame (text columns left, numbers right), as a
    ``table*`` in \footnotesize: columns that do not fit the text width go into further
    blocks, one under the other, each starting with the first ``keep`` columns (the row's
    key). The cells in ``bold`` (row position, column) are set in bold; ``formats`` maps a
    column to how its values are written (default: floats with ``digits`` decimals)."""
    from reports._format import num

    cols = list(frame.columns)
    numeric = [frame[c].dtype.kind in "fi" for c in cols]
    heads = [escape((header or {}).get(c, c)) for c in cols]

    def raw(c: str, v) -> str:
        return str((formats or {}).get(c, lambda x: num(x, digits) if isinstance(x, float) else str(x))(v))

    texts = [[raw(c, v) for c, v in zip(cols, r)] for r in frame.itertuples(index=False)]
    # a numeric column of plain numbers is an ``S`` column; one written otherwise (``2.3e-05``)
    # is right-aligned in math mode
    aligned = [
        numeric[j] and all(NUMBER.match(row[j]) or row[j] in ("n/a", "nan", "") for row in texts)
        for j in range(len(cols))
    ]
    specs = [
        s_column([Num(row[j]) for row in texts]) if aligned[j] else ("r" if numeric[j] else "l")
        for j in range(len(cols))
    ]
    cells = [
        [
            s_cell(Num(t, bold=(i, cols[j]) in bold))
            if aligned[j]
            else (math_number(t) if numeric[j] else wrapped(t, CELL_CHARS))
            for j, t in enumerate(row)
        ]
        for i, row in enumerate(texts)
    ]
    heads = [h if not aligned[j] else "{" + h + "}" for j, h in enumerate(heads)]
    widths = [
        max([len(str((header or {}).get(c, c)))] + [max(map(len, break_lines(row[j], CELL_CHARS))) for row in texts])
        * CHAR_PT
        + PAD_PT
        for j, c in enumerate(cols)
    ]
    body: list[str] = []
    for k, block in enumerate(_column_blocks(widths, min(keep, len(cols)))):
        if k:
            body.append(r"\par\medskip")
        body += [
            r"\begin{tabular}{@{}" + "".join(specs[j] for j in block) + "@{}}",
            r"\toprule",
            " & ".join(heads[j] for j in block) + r" \\",
            r"\midrule",
            *[
                " & ".join(
                    (r"\textbf{" + row[j] + "}") if (i, cols[j]) in bold and not aligned[j] else row[j] for j in block
                )
                + r" \\"
                for i, row in enumerate(cells)
            ],
            r"\bottomrule",
            r"\end{tabular}",
        ]
    return "\n".join(
        [
            NEEDS,
            r"\begin{table*}[t]",
            *_SETUP,
            r"\caption{" + prose(caption).strip() + "}",
            r"\label{tab:" + label_key(label) + "}",
            GAP,
            *body,
            r"\end{table*}",
            "",
        ]
    )
