"""Number formatting shared by every renderer."""

from __future__ import annotations

import math

#: (threshold, marker) for Holm-adjusted p-values.
SIGNIFICANCE = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
LEGEND = "* p<0.05, ** p<0.01, *** p<0.001"


def marker(p: float | None) -> str:
    if p is None:
        return ""
    for threshold, mark in SIGNIFICANCE:
        if p < threshold:
            return mark
    return ""


def setting(v) -> object:
    """A config value as a table shows it: a list (LoRA targets, encoders) as ``a + b``,
    anything else as it is (``typed_configs`` keeps lists as lists)."""
    if isinstance(v, (list, tuple)):
        return " + ".join(str(x) for x in v)
    return v


def num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def signed(x: float | None, digits: int = 3) -> str:
    if x is None or math.isnan(x):
        return "n/a"
    return f"{x:+.{digits}f}"


def pvalue(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}"


def metric_label(metric: str) -> str:
    """``eval/cross_domain/acc`` -> ``cross_domain acc`` (the namespace is implied)."""
    parts = metric.split("/")
    if parts[0] in ("eval", "train") and len(parts) > 1:
        parts = parts[1:]
    return " ".join(parts)


def interval(lo: float | None, hi: float | None, digits: int = 3) -> str:
    """``[-0.012, +0.034]``; ``[CI n/a]`` when none could be computed (too few pairs, or no
    spread: a zero-width interval would claim a certainty that the data cannot give)."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "[CI n/a]"
    return f"[{signed(lo, digits)}, {signed(hi, digits)}]"


def effect(value: float | None, name: str) -> str:
    """``d_z=1.23``; ``d_z=n/a`` when undefined (no spread)."""
    return f"{name}={num(value, 2)}"


def difference_caption(table) -> str:
    """The sentence under every rendering of a comparison table (what the numbers are)."""
    what = "mean paired difference" if table.effect_name == "d_z" else "difference of means"
    es = (
        "Cohen's d_z (mean difference / sd of the differences)"
        if table.effect_name == "d_z"
        else "Cohen's d (difference / pooled sd)"
    )
    return (
        f"Δ: {what} to {table.labels.get(table.reference, table.reference)}, with its 95% confidence interval (not adjusted for multiplicity); p: {table.test}, "
        f"Holm-adjusted over {table.comparisons} comparisons; effect size: {es}; best mean in bold; {LEGEND}."
        + (f" {table.mark_note}" if table.mark_note else "")
        + (f" {table.selection}" if getattr(table, "selection", "") else "")
    )
