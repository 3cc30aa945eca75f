"""``python -m orchestrator plan DIR``: what a finished (pilot) run could detect, and how many
seeds a study needs to detect the difference that matters. Read from the run directory
alone, with the statistics the report uses (``reports.ablation``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reports._format import num, signed
from reports.ablation import AblationTable, power_sentence
from reports.errors import ReportInputError
from reports.rundir.names import FINISHED


def _rows(table: AblationTable, effect: float | None) -> pd.DataFrame:
    rows = []
    for m in table.metrics:
        for v in table.variants:
            if v == table.reference:
                continue
            c = table.cells[(v, m)]
            rows.append(
                {
                    "metric": m + (" (secondary)" if table.is_secondary(m) else ""),
                    "comparison": f"{table.shown(v)} vs {table.shown(table.reference)}",
                    "n": c.n_pairs or c.n,
                    "diff": signed(c.diff),
                    "family m": c.family_size,
                    "MDE (80%)": num(c.mde),
                    **({f"seeds for {effect:g}": c.seeds_needed or "n/a"} if effect else {}),
                }
            )
    return pd.DataFrame(rows)


def plan_text(run_dir: Path | str, *, effect: float | None = None) -> str:
    """The power analysis of a finished run as text. ``effect``: the smallest difference that
    matters (default: the spec's ``report.min_effect``), for the seeds needed to detect it."""
    from reports.kinds import comparison_tables
    from reports.kinds.grid import stats_options
    from reports.rundir.files import read_run

    run_dir = Path(run_dir)
    df, meta = read_run(run_dir)
    if effect is not None:
        meta = meta.model_copy(update={"min_effect": effect})
    effect = meta.min_effect
    tables = comparison_tables(df, meta)
    if not tables:
        return (
            f"{run_dir}: a {meta.kind} run compares no variants over seeds (each trial ran one seed); "
            f"plan its confirm run instead: python -m orchestrator run confirm --from {run_dir}, then plan that\n"
        )
    done = df[df["status"].isin(FINISHED)]
    if meta.metric not in df.columns or done[meta.metric].isna().all():
        raise ReportInputError(
            f"{run_dir}: no trial has a value of {meta.metric} yet ({len(done)} of {len(df)} finished), so there is no "
            f"spread to plan from; python -m orchestrator status {run_dir} says where the run stands"
        )
    opts = stats_options(meta)
    lines = []
    for table in tables:
        lines += [
            f"{table.title or meta.kind.capitalize() + ' ' + table.study}: "
            f"{table.test}, family {opts['family']}, "
            f"alpha {table.alpha:g}; MDE: the smallest difference detected with 80% power at alpha/m "
            f"(two-sided), from the observed sd of the differences",
            power_sentence(table) or "No comparison has the spread or the seeds to estimate power from.",
            _rows(table, effect).to_string(index=False),
            "",
        ]
    if not effect:
        lines.append("Add --effect E (the smallest difference that matters) for the seeds needed to detect it.")
    return "\n".join(lines).rstrip() + "\n"
