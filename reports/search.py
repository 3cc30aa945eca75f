"""The search report's table: the top-k trials that ran to completion, with their settings.

Trials ASHA stopped early are listed apart with the rung they reached; they never enter
a ranking or a test (a stopped trial's metric is from fewer epochs than a finished one's).
"""

from __future__ import annotations

import pandas as pd

from reports._format import metric_label, num
from reports.ablation import COMPLETED
from reports.latex import escape


def top_k(df: pd.DataFrame, meta: dict) -> pd.DataFrame:
    """Completed trials, best first, at most ``top_k``: trial, metric and the searched keys."""
    metric, k = meta["metric"], int(meta.get("top_k", 5))
    done = df[df["status"] == COMPLETED]
    if metric not in done.columns:
        return pd.DataFrame(columns=["rank", "trial", metric])
    done = done.dropna(subset=[metric]).sort_values(metric, ascending=meta["mode"] == "min", kind="stable")
    cols = [f"config/{key}" for key in meta.get("space", []) if f"config/{key}" in done.columns]
    out = done[["trial", metric, *cols]].head(k).rename(columns={c: c.removeprefix("config/") for c in cols})
    out.insert(0, "rank", range(1, len(out) + 1))
    return out.reset_index(drop=True)


def top_k_markdown(table: pd.DataFrame, meta: dict) -> str:
    head = "| " + " | ".join(str(c) for c in table.columns) + " |"
    rows = ["| " + " | ".join(num(v, 4) if isinstance(v, float) else str(v) for v in r) + " |"
            for r in table.itertuples(index=False)]
    note = (f"Top {len(table)} of the trials that ran to completion, by {meta['metric']} ({meta['mode']}); "
            "trials stopped early by ASHA are not ranked.")
    return "\n".join([head, "|" + "---|" * len(table.columns), *rows, "", note]) + "\n"


def top_k_latex(table: pd.DataFrame, meta: dict, *, caption_note: str = "") -> str:
    cols = list(table.columns)
    header = " & ".join(escape(metric_label(c)) if c == meta["metric"] else escape(c) for c in cols)
    body = [" & ".join(escape(num(v, 4) if isinstance(v, float) else str(v)) for v in r) + r" \\"
            for r in table.itertuples(index=False)]
    caption = escape(f"Search {meta['study']}: the top {len(table)} trials that ran to completion, by "
                     f"{meta['metric']} ({meta['mode']}); trials stopped early by ASHA are not ranked. {caption_note}")
    return "\n".join([
        r"% Needs \usepackage{booktabs} and \usepackage{graphicx}.",
        r"\begin{table}[t]", r"\centering", r"\small", r"\caption{" + caption.strip() + "}",
        r"\label{tab:" + escape(f"{meta['study']}-top-k").replace(r"\_", "-") + "}",
        r"\resizebox{\ifdim\width>\textwidth\textwidth\else\width\fi}{!}{%",
        r"\begin{tabular}{" + "l" * 2 + "r" * (len(cols) - 2) + "}", r"\toprule", header + r" \\", r"\midrule",
        *body, r"\bottomrule", r"\end{tabular}}", r"\end{table}", ""])
