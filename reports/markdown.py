"""Markdown and CSV renderings of the report tables."""

from __future__ import annotations

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


def ablation_markdown(table: AblationTable) -> str:
    header = [table.row_header.lower()] + [
        f"{table.metric_name(m)} {'(lower is better) ' if table.modes[m] == 'min' else ''}"
        f"{'(secondary) ' if table.is_secondary(m) else ''}mean ± std | Δ [simult. CI] (p), effect; MDE; P(better)"
        for m in table.metrics
    ]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * (1 + 2 * len(table.metrics))]
    for v in table.variants:
        row = [table.label(v) + (" (ref.)" if v == table.reference else "")]
        for m in table.metrics:
            c = table.cells[(v, m)]
            mean = f"**{num(c.mean)}**" if c.best else num(c.mean)
            row.append(f"{mean} ± {num(c.std)} (n={c.n})")
            row.append(
                "—"
                if v == table.reference
                else f"{signed(c.diff)}{marker(c.p_holm)} {interval(c.sim_low, c.sim_high)}{c.ci_mark} ({pvalue(c.p_holm)}), "
                f"{effect(c.effect, table.effect_name)}; MDE {num(c.mde)}; P {num(c.p_better, 2)}"
            )
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    out.append(difference_caption(table) + " " + P_BETTER_NOTE)
    if power_sentence(table):
        out += ["", power_sentence(table)]
    out += [f"\n> **Warning:** {w}" for w in table.warnings]
    return "\n".join(out) + "\n"


def ablation_frame(table: AblationTable) -> pd.DataFrame:
    """Long form, one row per (variant, metric), every number unrounded."""
    rows = []
    for v in table.variants:
        for m in table.metrics:
            c = table.cells[(v, m)]
            rows.append(
                {
                    table.row_header.lower(): table.labels.get(v, v),
                    "shown_as": table.shown(v),
                    "metric": m,
                    "reference": v == table.reference,
                    "n": c.n,
                    "mean": c.mean,
                    "std": c.std,
                    "diff_to_reference": c.diff,
                    "ci95_low": c.ci_low,
                    "ci95_high": c.ci_high,
                    "effect_size": c.effect,
                    "effect_size_name": table.effect_name if v != table.reference else "",
                    "n_pairs": c.n_pairs,
                    "p": c.p,
                    "p_holm": c.p_holm,
                    "family": c.family,
                    "family_size": c.family_size,
                    "secondary": c.secondary,
                    "sim_ci_low": c.sim_low,
                    "sim_ci_high": c.sim_high,
                    "sim_ci_level": 1 - table.alpha / c.family_size if c.family_size else None,
                    "mde": c.mde,
                    "min_effect": table.min_effect if v != table.reference else None,
                    "seeds_needed": c.seeds_needed,
                    "p_better": c.p_better,
                    "best": c.best,
                    "mark": table.marks.get(v, ""),
                    "test": table.test if v != table.reference else "",
                    "interval": table.interval if v != table.reference else "",
                }
            )
    return pd.DataFrame(rows)


def frame_markdown(
    frame: pd.DataFrame,
    note: str = "",
    digits: int = 4,
    bold: set[tuple[int, str]] = frozenset(),
    formats: dict | None = None,
) -> str:
    """A plain Markdown table of a small frame, then a note; cells in ``bold`` (row position, column) in bold."""
    head = "| " + " | ".join(str(c) for c in frame.columns) + " |"

    def cell(i: int, c: str, v) -> str:
        text = (formats or {}).get(c, lambda x: num(x, digits) if isinstance(x, float) else str(x))(v)
        return f"**{text}**" if (i, c) in bold else text

    rows = [
        "| " + " | ".join(cell(i, c, v) for c, v in zip(frame.columns, r)) + " |"
        for i, r in enumerate(frame.itertuples(index=False))
    ]
    return "\n".join([head, "|" + "---|" * len(frame.columns), *rows, *([""] + [note] if note else [])]) + "\n"
