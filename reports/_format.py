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
