"""Number formatting shared by every renderer."""

from __future__ import annotations

import math

from reports.rundir.names import metric_label  # noqa: F401  (the renderers' import)

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


def interval(lo: float | None, hi: float | None, digits: int = 3) -> str:
    """``[-0.012, +0.034]``; ``[CI n/a]`` when none could be computed (too few pairs, or no
    spread: a zero-width interval would claim a certainty that the data cannot give)."""
    if lo is None or hi is None or math.isnan(lo) or math.isnan(hi):
        return "[CI n/a]"
    return f"[{signed(lo, digits)}, {signed(hi, digits)}]"


def effect(value: float | None, name: str) -> str:
    """``d_z=1.23``; ``d_z=n/a`` when undefined (no spread)."""
    return f"{name}={num(value, 2)}"


def family_sentence(table) -> str:
    """Which comparisons each adjusted p (and star) is adjusted over, in words."""
    if table.family_rule == "table":
        return f"p Holm-adjusted over all {table.families.get('table', 0)} comparisons of the table"
    sizes = sorted(set(table.families.values()))
    if not sizes:  # the reference alone: nothing is compared
        return "p: no comparison (the table has the reference only)"
    each = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]} to {sizes[-1]}"
    if table.family_rule == "per_metric":
        return f"p Holm-adjusted within each metric's comparisons with the reference ({each} each)"
    secondary = [m for m in table.metrics if m != table.primary]
    return (
        f"p Holm-adjusted within each metric's comparisons with the reference: "
        f"{table.metric_name(table.primary)} is the primary family ({table.families.get(table.primary, 0)} comparisons)"
        + ("; the other metrics are secondary, each adjusted over its own comparisons" if secondary else "")
    )


def interval_sentence(table) -> str:
    """What the interval next to each difference is."""
    from reports.stats import INVERTED, TESTS

    level = f"{1 - table.alpha:.0%}"
    test = getattr(table, "test", "")
    if getattr(table, "bootstrap", False):
        how = "the bootstrap (BCa, over seeds) interval"
    elif test in INVERTED:
        how = f"the interval inverted from the {TESTS[test]} (every shift it does not reject)"
    else:
        how = "the t interval"
    text = (
        f"[{level} simultaneous CI]: {how} at 1 - {table.alpha:g}/m for the m comparisons of its "
        f"family (Bonferroni; the unadjusted 95% interval is in the CSV). Holm's p is never less powerful "
        f"than Bonferroni, so p < {table.alpha:g} may come with an interval that touches 0"
    )
    cells = getattr(table, "cells", {})
    if any(getattr(c, "ci_mark", "") for c in cells.values()):
        text += (
            f"; ‡: the interval excludes 0 but the test's Holm p is not below {table.alpha:g}: the "
            "interval is not the test's own, and the test decides"
        )
    return text


#: What the P column of the Markdown and HTML tables is.
P_BETTER_NOTE = (
    "P: the probability of improvement, the share of pairs of seeds (one of the row, one of the "
    "reference) where the row's value is the better one, ties counting half."
)


def difference_caption(table) -> str:
    """The sentence under every rendering of a comparison table (what the numbers are)."""
    what = "mean paired difference" if table.effect_name == "d_z" else "difference of means"
    es = (
        "Cohen's d_z (mean difference / sd of the differences)"
        if table.effect_name == "d_z"
        else "Cohen's d (difference / pooled sd)"
    )
    return (
        f"Δ: {what} to {table.shown(table.reference)}; {interval_sentence(table)}; "
        f"p: {table.test}, {family_sentence(table)}; effect size: {es}; "
        f"MDE: the smallest difference detected with 80% power at {table.alpha:g}/m, two-sided; best mean in bold; {LEGEND}."
        + (f" {table.mark_note}" if table.mark_note else "")
        + (f" {table.fold_note}." if getattr(table, "fold_note", "") else "")
        + (f" {table.selection}" if getattr(table, "selection", "") else "")
    )
