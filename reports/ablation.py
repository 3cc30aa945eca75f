"""The ablation table's numbers: per variant and metric, mean +- std over seeds and the
paired comparison with the reference variant, Holm-adjusted across the whole table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from reports.rundir.names import COMPLETED  # the one status that enters the statistics
from reports.stats import MIN_PAIRS, TESTS, WARN_PAIRS, compare, holm, mean_std

#: Metric names whose last part means lower is better.
LOWER_IS_BETTER = ("loss", "eer", "far", "error", "err", "pred_cv")  # pred_cv: prediction CV (probes)
TEST_NAME = TESTS["paired_t"]


def metric_mode(metric: str, *, primary: str, mode: str) -> str:
    """'max' or 'min': the study's mode for its own metric, otherwise read from the name."""
    if metric == primary:
        return mode
    last = metric.rsplit("/", 1)[-1].split("@")[0]
    return "min" if last in LOWER_IS_BETTER else "max"


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float
    n: int
    diff: float | None = None
    """Mean (paired) difference to the reference (None on the reference row)."""
    n_pairs: int = 0
    """Pairs behind the paired test (0 for Welch's test, which uses ``n`` and the reference's n)."""
    ci_low: float | None = None
    ci_high: float | None = None
    """95% confidence interval of the difference."""
    effect: float | None = None
    """Cohen's d_z (paired) or d (Welch)."""
    p: float | None = None
    p_holm: float | None = None
    best: bool = False


@dataclass(frozen=True)
class AblationTable:
    study: str
    metrics: list[str]
    variants: list[str]
    reference: str
    modes: dict[str, str]
    cells: dict[tuple[str, str], Cell]
    test: str = TEST_NAME
    effect_name: str = "d_z"
    comparisons: int = 0
    excluded: list[dict] = field(default_factory=list)
    """Trials left out of the statistics (not completed), with their status and error."""
    warnings: list[str] = field(default_factory=list)
    row_header: str = "Variant"
    labels: dict[str, str] = field(default_factory=dict)
    """How each row (variant or sensitivity point) is shown; its name where absent."""
    title: str = ""
    """What the table shows, for captions (default: "Ablation of <study>")."""
    key: str = "ablation"
    """File stem and LaTeX label suffix."""
    marks: dict[str, str] = field(default_factory=dict)
    """A symbol after some rows' labels (e.g. "†": not significantly worse than the best)."""
    mark_note: str = ""
    """What the symbol means, for captions."""
    selection: str = ""
    """Which metric chose what (if anything) and which metrics are only reported, for captions."""

    def label(self, row: str) -> str:
        return self.labels.get(row, row) + self.marks.get(row, "")


def _values(done: pd.DataFrame, variant: str, metric: str, group_column: str = "variant") -> pd.Series:
    """One variant's finite values of a metric, indexed by seed (empty when no trial has it)."""
    rows = done[done[group_column] == variant]
    if metric not in rows.columns:
        return pd.Series(dtype=float)
    return rows.set_index("seed")[metric].dropna()


def choose_test(done: pd.DataFrame, variants: list[str], reference: str, group_column: str, test: str) -> str:
    """``auto``: the paired t-test when every row ran the reference's seeds, else Welch's."""
    if test != "auto":
        return test
    seeds = {v: set(done.loc[done[group_column] == v, "seed"]) for v in variants}
    return "paired_t" if all(seeds[v] == seeds[reference] for v in variants) else "welch"


def ablation_table(
    df: pd.DataFrame,
    *,
    study: str,
    variants: list[str],
    metrics: list[str],
    reference: str,
    primary: str,
    mode: str,
    group_column: str = "variant",
    test: str = "auto",
    **display,
) -> AblationTable:
    """Compute the table from ``results.csv`` rows; only completed trials enter it.

    ``group_column`` names the rows' column in results.csv (``variant``, or ``point`` for a
    sensitivity axis, whose rows are the axis points and whose reference is the base point);
    ``display`` sets the AblationTable's presentation fields (labels, title, ...). ``test``:
    ``auto`` (paired t-test over seeds when every row has the reference's seeds, otherwise
    Welch's t-test), ``paired_t``, ``welch`` or ``wilcoxon``; one test for the whole table.
    """
    done = df[df["status"] == COMPLETED]
    excluded = df[(df["status"] != COMPLETED) & df[group_column].isin(variants)][
        ["trial_name", group_column, "seed", "status", "error"]
    ]
    modes = {m: metric_mode(m, primary=primary, mode=mode) for m in metrics}
    test = choose_test(done, variants, reference, group_column, test)
    raw: dict[tuple[str, str], dict] = {}
    for m in metrics:
        ref = _values(done, reference, m, group_column)
        for v in variants:
            vals = _values(done, v, m, group_column)
            mean, std, n = mean_std(vals.tolist())
            entry = {"mean": mean, "std": std, "n": n}
            if v != reference:
                if test == "welch":
                    c = compare(vals.to_numpy(), ref.to_numpy(), test=test)
                else:
                    seeds = sorted(set(vals.index) & set(ref.index))
                    c = compare(vals.loc[seeds].to_numpy(), ref.loc[seeds].to_numpy(), test=test)
                has = c.n_pairs > 0 or (test == "welch" and c.n_a and c.n_b)
                entry.update(
                    diff=c.mean_diff if has else None,
                    n_pairs=c.n_pairs,
                    p=c.p,
                    ci_low=c.ci_low,
                    ci_high=c.ci_high,
                    effect=c.effect,
                )
            raw[(v, m)] = entry
    keys = [k for k in raw if "p" in raw[k]]
    adjusted = holm([raw[k]["p"] for k in keys])
    for k, p in zip(keys, adjusted):
        raw[k]["p_holm"] = p
    for m in metrics:
        means = {v: raw[(v, m)]["mean"] for v in variants if not math.isnan(raw[(v, m)]["mean"])}
        if means:
            best = (max if modes[m] == "max" else min)(means.values())
            for v, value in means.items():
                raw[(v, m)]["best"] = value == best
    cells = {k: Cell(**entry) for k, entry in raw.items()}
    warnings = []
    pairs = [
        c.n_pairs if test != "welch" else min(c.n, cells[(reference, m)].n)
        for (v, m), c in cells.items()
        if v != reference
    ]
    if pairs and min(pairs) < MIN_PAIRS:
        warnings.append(f"some comparisons have fewer than {MIN_PAIRS} seeds on a side: no p-value is shown for them")
    elif pairs and min(pairs) < WARN_PAIRS:
        warnings.append(f"only {min(pairs)} seeds per comparison: p-values rest on very few runs")
    if len(excluded):
        warnings.append(f"{len(excluded)} trial(s) did not complete and are left out of the statistics")
    return AblationTable(
        study,
        metrics,
        variants,
        reference,
        modes,
        cells,
        test=TESTS[test],
        effect_name="d" if test == "welch" else "d_z",
        comparisons=sum(p is not None for p in adjusted),
        excluded=excluded.to_dict("records"),
        warnings=warnings,
        **display,
    )
