"""The confirm report's second table: what each candidate is, what the search saw of it
(one seed, the seed that ranked it) and what the reruns found (fresh seeds)."""

from __future__ import annotations

import math

import pandas as pd

from reports._format import metric_label, num
from reports.ablation import COMPLETED, AblationTable
from reports.stats import mean_std


def _show(v) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _confirmed(df: pd.DataFrame, variant: str, metric: str) -> str:
    """Mean ± std (n) of a metric over a variant's completed reruns."""
    rows = df[(df["variant"] == variant) & (df["status"] == COMPLETED)]
    mean, std, n = mean_std(rows[metric].tolist()) if metric in rows.columns else (math.nan, math.nan, 0)
    return f"{num(mean, 4)} ± {num(std, 4)} (n={n})" if n else "n/a"


def candidates_frame(table: AblationTable, meta: dict, df: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: its search trial and the value it was chosen on (validation,
    one seed), the confirmed mean ± std of that metric and of the test metric (fresh seeds),
    its settings."""
    chosen, tested = meta.get("search_metric", meta["metric"]), meta["metric"]
    columns = {f"confirmed {chosen}": chosen}
    if tested != chosen:
        columns[f"confirmed {tested}"] = tested
    rows = [
        {
            "candidate": table.reference,
            "search trial": f"{meta.get('base_trial', 'trial000')} (base)",
            f"search {chosen}": math.nan if meta.get("base_search_value") is None else float(meta["base_search_value"]),
            **{k: _confirmed(df, table.reference, m) for k, m in columns.items()},
            "settings": "the search's base config",
        }
    ]
    for c in meta.get("candidates", []):
        rows.append(
            {
                "candidate": c["variant"],
                "search trial": c["trial"],
                f"search {chosen}": float(c["search_value"]),
                **{k: _confirmed(df, c["variant"], m) for k, m in columns.items()},
                "settings": ", ".join(f"{k}={_show(v)}" for k, v in sorted(c["changes"].items())),
            }
        )
    return pd.DataFrame(rows)


def candidates_note(meta: dict) -> str:
    chosen, tested = meta.get("search_metric", meta["metric"]), meta["metric"]
    return (
        f"{metric_label(chosen)}: the search's value is one run with seed(s) "
        f"{', '.join(map(str, meta.get('search_seeds', [])))}, on the validation identities the candidates were "
        f"chosen on (the run that ranked it, so biased upwards); confirmed: mean ± std over seeds "
        f"{', '.join(map(str, meta.get('seeds', [])))}"
        + (
            f", and {metric_label(tested)} on the test identities, which took no part in the choice"
            if tested != chosen
            else ""
        )
        + ". Settings: what differs from the base config."
    )
