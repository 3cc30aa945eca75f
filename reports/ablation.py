"""The ablation table's numbers: per variant and metric, mean +- std over seeds and the
comparison with the reference variant, Holm-adjusted within its family (by default the study
metric's comparisons are the primary family and each other metric is a secondary family of
its own), with the family's simultaneous interval and the smallest detectable difference."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import pandas as pd

from reports.rundir.names import COMPLETED, direction_by_name  # COMPLETED: the one status that enters the statistics
from reports.stats import (
    BOOTSTRAP_MIN_SEEDS,
    INTERVALS,
    MIN_PAIRS,
    TESTS,
    TOL,
    WARN_PAIRS,
    compare,
    holm,
    mean_std,
    prob_better,
    sign_flip_floor,
)
from reports.stats_power import POWER, detectable_effect, seeds_for

TEST_NAME = TESTS["paired_t"]

#: How comparisons are grouped for multiplicity control (``report.family``):
#: primary: the study metric's comparisons with the reference are one family, the primary
#:   one; every other metric is a family of its own, labelled secondary;
#: per_metric: every metric a family of its own, none labelled secondary;
#: table: every comparison of the table in one family.
FAMILIES = ("primary", "per_metric", "table")

#: Tests whose p cannot go below 2 / 2^n with n pairs (every difference of one sign): with
#: few seeds no comparison can reach the family's level, whatever the difference.
SIGN_TESTS = ("sign_flip", "wilcoxon")
#: Marks a simultaneous interval that excludes 0 beside a p that is not significant.
DISAGREE = "‡"

#: Metric names that are a spread over a benchmark's folds within one trial, not a metric of
#: the trial: the note under their tables says so.
FOLD_SPREAD = "acc_std"
FOLD_NOTE = (
    "acc_std is the sd of the accuracy over a benchmark's 10 folds within one trial; the folds "
    "share one model, and each fold's threshold is chosen on the nine others (which overlap), "
    "so it is neither a spread over seeds nor a standard error"
)


def metric_mode(metric: str, *, primary: str, mode: str, directions: Mapping[str, str] | None = None) -> str:
    """'max' or 'min': the study's mode for its own metric, otherwise the direction the
    trainable declared (``run.json``'s ``metric_directions``), else read from the name (a
    metric the run recorded none for)."""
    if metric == primary:
        return mode
    return (directions or {}).get(metric) or direction_by_name(metric)


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
    """p Holm-adjusted over the comparison's family."""
    best: bool = False
    family: str = ""
    """The family the comparison is adjusted in: its metric, or "table"."""
    family_size: int = 0
    """How many comparisons with a p-value its family has (m)."""
    secondary: bool = False
    sim_low: float | None = None
    sim_high: float | None = None
    """Simultaneous interval over the family at 1 - alpha/m (Bonferroni): the t interval, the
    interval inverted from the table's rank or sign test, or the bootstrap interval."""
    ci_mark: str = ""
    """"‡" where the simultaneous interval excludes 0 while the Holm p is not significant (a
    bootstrap interval is not the test's own; the test decides)."""
    mde: float | None = None
    """The smallest |difference| the test detects with 80% power at alpha/m (two-sided),
    given the observed sd of the differences (or pooled sd) and n."""
    seeds_needed: int | None = None
    """Seeds needed to detect ``min_effect`` with 80% power at alpha/m (None: not declared,
    no spread, or more than 1000)."""
    p_better: float | None = None
    """P(this row better than the reference): over every pair of their seeds' values, the
    share where this row's is better (by the metric's mode), ties half (``stats.prob_better``)."""


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
    """Each row's key in the CSV (a sensitivity point's settings, a candidate with its trial);
    its name where absent."""
    display: dict[str, str] = field(default_factory=dict)
    """How rows are shown in tables and figures (``report.names``); the label where absent."""
    metric_names: dict[str, str] = field(default_factory=dict)
    """What columns and axes call each metric (``run.json``'s ``metric_names``, as the trainable
    declared them); ``metric_label`` of the key where absent."""
    title: str = ""
    """What the table shows, for captions (default: "Ablation")."""
    key: str = "ablation"
    """File stem and LaTeX label suffix."""
    main: list[str] = field(default_factory=list)
    """The paper's main table's metrics (``report.main_metrics``; default: see ``latex.main_metrics``)."""
    label_prefix: str = ""
    """The LaTeX labels' prefix (``report.label`` or the run directory's name; default: the study)."""
    marks: dict[str, str] = field(default_factory=dict)
    """A symbol after some rows' labels (e.g. "†": not significantly worse than the best)."""
    mark_note: str = ""
    """What the symbol means, for captions."""
    selection: str = ""
    """Which metric chose what (if anything) and which metrics are only reported, for captions."""
    primary: str = ""
    """The study metric."""
    family_rule: str = "primary"
    """``report.family`` (FAMILIES)."""
    alpha: float = 0.05
    """The family-wise error rate the stars, simultaneous intervals and power are stated at."""
    families: dict[str, int] = field(default_factory=dict)
    """Every family (a metric, or "table") and its number of comparisons."""
    min_effect: float | None = None
    """``report.min_effect``: the smallest difference that matters, in the metric's units."""
    interval: str = INTERVALS["t"]
    """How the intervals of the differences are made (``report.interval``), in words."""

    @property
    def bootstrap(self) -> bool:
        return self.interval == INTERVALS["bootstrap"]

    @property
    def fold_note(self) -> str:
        """The note on fold spreads, where the table shows one."""
        return FOLD_NOTE if any(m.rsplit("/", 1)[-1] == FOLD_SPREAD for m in self.metrics) else ""

    def shown(self, row: str) -> str:
        """The row as tables show it: its display name, else its label."""
        return self.display.get(row) or self.labels.get(row, row)

    def label(self, row: str) -> str:
        return self.shown(row) + self.marks.get(row, "")

    def metric_name(self, metric: str) -> str:
        """The metric as columns and axes show it: its declared name, else from its key."""
        from reports.rundir.names import metric_label

        return self.metric_names.get(metric) or metric_label(metric)

    def is_secondary(self, metric: str) -> bool:
        return self.family_rule == "primary" and metric != self.primary


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
    family: str = "primary",
    alpha: float = 0.05,
    min_effect: float | None = None,
    interval: str = "t",
    directions: Mapping[str, str] | None = None,
    **display,
) -> AblationTable:
    """Compute the table from ``results.csv`` rows; only completed trials enter it.

    ``group_column`` names the rows' column in results.csv (``variant``, or ``point`` for a
    sensitivity axis, whose rows are the axis points and whose reference is the base point);
    ``display`` sets the AblationTable's presentation fields (labels, title, ...). ``test``:
    ``auto`` (paired t-test over seeds when every row has the reference's seeds, otherwise
    Welch's t-test), ``paired_t``, ``welch``, ``wilcoxon`` or ``sign_flip``; one test for the
    whole table. ``family``: how the comparisons are grouped for Holm's adjustment (FAMILIES);
    ``alpha``: the family-wise level; ``min_effect``: the difference that matters, for the
    seeds needed; ``interval``: ``t`` or ``bootstrap`` (stats.INTERVALS), for every interval
    of the table (the unadjusted and the simultaneous one). ``directions``: which way each
    metric is better (``run.json``'s ``metric_directions``; the study's ``mode`` for its own).
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    done = df[df["status"] == COMPLETED]
    excluded = df[(df["status"] != COMPLETED) & df[group_column].isin(variants)][
        ["trial_name", group_column, "seed", "status", "error"]
    ]
    modes = {m: metric_mode(m, primary=primary, mode=mode, directions=directions) for m in metrics}
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
                    c = compare(vals.to_numpy(), ref.to_numpy(), test=test, interval=interval)
                else:
                    seeds = sorted(set(vals.index) & set(ref.index))
                    c = compare(vals.loc[seeds].to_numpy(), ref.loc[seeds].to_numpy(), test=test, interval=interval)
                has = c.n_pairs > 0 or (test == "welch" and c.n_a and c.n_b)
                entry.update(
                    diff=c.mean_diff if has else None,
                    n_pairs=c.n_pairs,
                    p=c.p,
                    ci_low=c.ci_low,
                    ci_high=c.ci_high,
                    effect=c.effect,
                    p_better=prob_better(vals.to_numpy(), ref.to_numpy(), mode=modes[m]),
                    family="table" if family == "table" else m,
                    secondary=family == "primary" and m != primary,
                    _c=c,
                )
            raw[(v, m)] = entry
    keys = [k for k in raw if "p" in raw[k]]
    families: dict[str, int] = {}
    for name in dict.fromkeys(raw[k]["family"] for k in keys):
        members = [k for k in keys if raw[k]["family"] == name]
        adjusted = holm([raw[k]["p"] for k in members])
        families[name] = sum(p is not None for p in adjusted)
        level = alpha / max(families[name], 1)  # Bonferroni: each comparison at alpha / m
        for k, p in zip(members, adjusted):
            c = raw[k].pop("_c")
            sim = c.interval(1 - level)
            d = detectable_effect(c.n_pairs or c.n_a, None if test != "welch" else c.n_b, level, test=test)
            if test in SIGN_TESTS and sign_flip_floor(c.n_pairs) > level:
                d = None  # no difference, however large, reaches the level with this few seeds
            # no spread of the differences (every seed the same): no t-test, so neither an MDE
            # nor a seed count exists (a sd of 1e-16, float noise, would claim 1e-15 detectable)
            spread = c.sd is not None and c.sd > TOL
            standardised = min_effect / c.sd if min_effect and spread else None
            excludes = sim[0] is not None and sim[1] is not None and (sim[0] > 0 or sim[1] < 0)
            raw[k].update(
                ci_mark=DISAGREE if excludes and not (p is not None and p < alpha) else "",
                p_holm=p,
                family_size=families[name],
                sim_low=sim[0],
                sim_high=sim[1],
                mde=d * c.sd if d is not None and spread else None,
                seeds_needed=seeds_for(standardised, paired=test != "welch", alpha=level, test=test)
                if standardised
                else None,
            )
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
    if test in SIGN_TESTS and pairs:
        level = alpha / max(min((m for m in families.values() if m), default=1), 1)  # the largest level
        if sign_flip_floor(min(pairs)) > level:
            warnings.append(
                f"with {min(pairs)} seeds the {TESTS[test]} cannot give p below {sign_flip_floor(min(pairs)):.3g}, "
                f"above the per-comparison level {level:.3g}: no comparison can be significant, and no "
                f"detectable difference is stated"
            )
    if interval == "bootstrap" and pairs and min(pairs) < BOOTSTRAP_MIN_SEEDS:
        warnings.append(
            f"bootstrap intervals from {min(pairs)} seeds: under {BOOTSTRAP_MIN_SEEDS} they are too narrow "
            f"(a resample cannot reach beyond the values there are), so they cover less often than stated; "
            f"the t interval is the safer one here"
        )
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
        comparisons=families.get(primary if family != "table" else "table", 0),
        excluded=excluded.to_dict("records"),
        warnings=warnings,
        primary=primary,
        family_rule=family,
        alpha=alpha,
        families=families,
        min_effect=min_effect,
        interval=INTERVALS[interval],
        **display,
    )


def power_sentence(table: AblationTable) -> str:
    """What the study could detect in its metric, in words: the smallest difference its
    comparisons with the reference detect with 80% power at the family's per-comparison
    level, and, where ``min_effect`` is declared, the seeds that would detect it.

    The figures are the medians over the study metric's comparisons (the typical
    comparison), with the range; the per-comparison values are in the tables."""
    import statistics

    m = table.primary
    cells = [table.cells[(v, m)] for v in table.variants if v != table.reference and (v, m) in table.cells]
    mdes = [c.mde for c in cells if c.mde is not None]
    if not mdes:
        return ""
    n = max(c.n_pairs or c.n for c in cells)
    size = max(c.family_size for c in cells)
    level = f"{table.alpha:g}/{size}" if size > 1 else f"{table.alpha:g}"
    median = statistics.median(mdes)
    spread = f" ({min(mdes):.3g} to {max(mdes):.3g} over the {len(mdes)} comparisons)" if len(mdes) > 1 else ""
    text = (
        f"With {n} seeds this study can detect differences in {m} of about {median:.3g} and above{spread} "
        f"with {POWER:.0%} power ({table.test}{', simulated' if table.test in SIGN_TESTS else ''}, two-sided, "
        f"alpha {level} per comparison)"
    )
    if table.min_effect:
        needed = sorted(c.seeds_needed for c in cells if c.seeds_needed is not None)
        if needed:
            k = int(statistics.median_low(needed))
            text += f"; {k} seeds would detect {table.min_effect:g} (the declared smallest difference that matters)"
        else:
            text += f"; no number of seeds up to 1000 detects {table.min_effect:g} at the observed spread"
    return text + "."


def headline(table: AblationTable) -> str:
    """The answer first, in words: the best row on the study metric, its comparison with
    the reference (difference, simultaneous interval, adjusted p, whether significant at the
    family's level), and what the study could detect."""
    from reports._format import interval, pvalue, signed

    m = table.primary
    means = {v: table.cells[(v, m)].mean for v in table.variants if (v, m) in table.cells and table.cells[(v, m)].n}
    if not means:
        return ""
    best = (max if table.modes[m] == "max" else min)(means, key=means.get)
    ref = table.reference
    text = f"Best on {m}: {table.shown(best)} ({means[best]:.3f})"
    others = [v for v in table.variants if v != ref and table.cells[(v, m)].p_holm is not None]
    if best == ref:
        text += ", the reference itself"
        if others:
            close = (max if table.modes[m] == "max" else min)(others, key=lambda v: means.get(v, math.nan))
            c = table.cells[(close, m)]
            text += (
                f"; the closest, {table.shown(close)}, differs by {signed(c.diff)} "
                f"{interval(c.sim_low, c.sim_high)}, p = {pvalue(c.p_holm)}"
            )
    elif best in others:
        c = table.cells[(best, m)]
        verdict = "significant" if c.p_holm is not None and c.p_holm < table.alpha else "not significant"
        text += (
            f", {signed(c.diff)} against {table.shown(ref)} {interval(c.sim_low, c.sim_high)}, "
            f"p = {pvalue(c.p_holm)} ({verdict} at {table.alpha:g}, Holm over {c.family_size})"
        )
    power = power_sentence(table)
    return text + "." + (f" {power}" if power else "")
