"""The confirm report's second table: what each candidate is, what the search saw of it
(one seed, the seed that ranked it) and what the reruns found (fresh seeds)."""

from __future__ import annotations

import math

import pandas as pd

from reports._format import metric_label, num
from reports.ablation import AblationTable


def _show(v) -> str:
    if isinstance(v, list):
        return "+".join(map(str, v))
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def candidates_frame(table: AblationTable, meta: dict) -> pd.DataFrame:
    """One row per candidate: its search trial and value, the confirmed mean ± std, its settings."""
    m = meta["metric"]
    rows = []
    base = table.cells[(table.reference, m)]
    rows.append({"candidate": table.reference, "search trial": f"{meta.get('base_trial', 'trial000')} (base)",
                 "search value": math.nan if meta.get("base_search_value") is None else float(meta["base_search_value"]),
                 "confirmed": f"{num(base.mean, 4)} ± {num(base.std, 4)} (n={base.n})", "settings": "the search's base config"})
    for c in meta.get("candidates", []):
        cell = table.cells.get((c["variant"], m))
        confirmed = f"{num(cell.mean, 4)} ± {num(cell.std, 4)} (n={cell.n})" if cell else "n/a"
        rows.append({"candidate": c["variant"], "search trial": c["trial"], "search value": float(c["search_value"]),
                     "confirmed": confirmed,
                     "settings": ", ".join(f"{k}={_show(v)}" for k, v in sorted(c["changes"].items()))})
    return pd.DataFrame(rows)


def candidates_note(meta: dict) -> str:
    return (f"{metric_label(meta['metric'])}: the search's value is one run with seed(s) "
            f"{', '.join(map(str, meta.get('search_seeds', [])))} (the run that ranked it, so biased upwards); "
            f"confirmed: mean ± std over seeds {', '.join(map(str, meta.get('seeds', [])))}. "
            "Settings: what differs from the base config.")
