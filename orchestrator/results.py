"""``results.csv``: one row per planned trial, rewritten atomically as trials progress.

It is the contract between running and reporting: a row exists from the start (status
PENDING), so an interrupted run still lists every trial it planned, and a finished row is
on disk as soon as the trial ends.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.plan import TrialPlan
from reports.rundir.files import read_results, write_checked
from reports.rundir.names import (
    CONFIGS_FILE,
    CURVE_COLUMNS,
    CURVES_FILE,
    HEAD_COLUMNS,
    PAUSED,
    PENDING,
    PROVENANCE_COLUMNS,
    RESULTS_FILE,
    RUNNING,
    WHERE_COLUMNS,
    is_metric_key,
)


class ResultsTable:
    """Rows of a run, keyed by plan index, written to ``<run_dir>/results.csv``."""

    def __init__(
        self,
        run_dir: Path,
        study: str,
        plans: list[TrialPlan],
        provenance: dict[int, dict[str, str]],
        *,
        group_column: str = "variant",
    ) -> None:
        """``group_column``: ``variant`` (ablation) or ``point`` (sensitivity)."""
        self.path = Path(run_dir) / RESULTS_FILE
        self.rows: dict[int, dict[str, Any]] = {}
        self.configs: dict[str, dict[str, Any]] = {}
        self.head = [group_column if c == "variant" else c for c in HEAD_COLUMNS]
        self.study, self.group_column = study, group_column
        for p in plans:
            self.add(p, provenance.get(p.index, {}))

    @classmethod
    def load(
        cls, run_dir: Path, study: str, plans: list[TrialPlan], *, group_column: str = "variant"
    ) -> "ResultsTable":
        """The table as ``results.csv`` holds it (every planned trial must have its row)."""
        table = cls(run_dir, study, plans, {}, group_column=group_column)
        df = read_results(run_dir)  # refused (DamagedRunFile) when truncated or edited
        by_name = {r["trial_name"]: r for r in df.to_dict("records")}
        missing = [p.name for p in plans if p.name not in by_name]
        if missing or len(by_name) != len(plans):
            raise ValueError(f"results.csv does not list the planned trials (e.g. {(missing or list(by_name))[0]})")
        for p in plans:
            table.rows[p.index] = by_name[p.name]
        return table

    def add(self, p: TrialPlan, provenance: dict[str, str]) -> None:
        """A row for a planned trial (searches add theirs as the sampler proposes them)."""
        row: dict[str, Any] = {
            "trial_id": "",
            "trial_name": p.name,
            "study": self.study,
            self.group_column: p.variant,
            "seed": p.seed,
            "status": PENDING,
            "iterations": 0,
            "wall_s": math.nan,
            "error": "",
        }
        row.update({f"config/{k}": _cell(v) for k, v in p.config.items()})
        row.update({"config_hash": p.config_hash, **provenance})
        self.rows[p.index] = row
        self.configs[p.name] = p.config

    def started(self, index: int, trial_id: str) -> None:
        self.rows[index].update(trial_id=trial_id, status=RUNNING)
        self.write()

    def finished(
        self, index: int, *, trial_id: str, status: str, result: dict[str, Any] | None, error: str = ""
    ) -> None:
        row = self.rows[index]
        row.update(trial_id=trial_id, status=status, error=error)
        if result:
            row["iterations"] = int(result.get("training_iteration", 0))
            row["wall_s"] = round(float(result.get("time_total_s", math.nan)), 3)
            row.update({k: v for k, v in result.items() if is_metric_key(k)})
            row.update({k: result[k] for k in WHERE_COLUMNS if result.get(k)})
        self.write()

    def paused(self, index: int, iterations: int) -> None:
        """The trial waits at an ASHA rung (after ``iterations``) until it is promoted or stopped."""
        self.rows[index].update(status=PAUSED, iterations=iterations)
        self.write()

    def mark_unfinished(self, status: str) -> None:
        """Give trials left RUNNING or PAUSED (the run stopped under them) a status of ours."""
        changed = [row for row in self.rows.values() if row["status"] in (RUNNING, PAUSED)]
        for row in changed:
            row["status"] = status
        if changed:
            self.write()

    def frame(self) -> pd.DataFrame:
        if not self.rows:
            return pd.DataFrame(columns=self.head)
        df = pd.DataFrame(list(self.rows.values()))
        config = sorted(c for c in df.columns if c.startswith("config/"))
        metrics = sorted(c for c in df.columns if is_metric_key(c))
        prov = [c for c in PROVENANCE_COLUMNS if c in df.columns]
        extra = ["rung"] if "rung" in df.columns else []
        if extra:
            df["rung"] = df["rung"].astype("Int64")  # an iteration count; empty for trials not stopped
        return df[self.head + extra + config + metrics + prov]

    def write(self) -> None:
        """``results.csv`` and ``configs.json`` (each trial's full config with its JSON types,
        which a CSV cell cannot keep: ``run confirm`` reruns configs from it), each replaced
        atomically with its checksum recorded (``reports.run_files``)."""
        write_checked(self.path.parent, RESULTS_FILE, self.frame().to_csv(index=False, lineterminator="\n"))
        write_checked(self.path.parent, CONFIGS_FILE, json.dumps(self.configs, indent=1))


class CurveLog:
    """``curves.csv``: every reported metric of every iteration, one line per value (long
    format, since trials report different keys), appended as results arrive so that an
    interrupted run keeps its curves. Learning curves and best-so-far plots read it."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / CURVES_FILE
        if not self.path.exists():
            with self.path.open("w", newline="") as f:
                csv.writer(f, lineterminator="\n").writerow(list(CURVE_COLUMNS))

    def drop(self, trial_name: str) -> None:
        """Remove a trial's lines (an attempt that is being replaced)."""
        df = pd.read_csv(self.path, dtype={"trial_name": str})
        tmp = self.path.with_suffix(".csv.tmp")
        df[df["trial_name"] != trial_name].to_csv(tmp, index=False)
        os.replace(tmp, self.path)

    def add(self, trial_name: str, result: dict[str, Any]) -> None:
        it, t, now = int(result.get("training_iteration", 0)), result.get("time_total_s", math.nan), time.time()
        rows = [
            [trial_name, it, round(float(t), 3), round(now, 3), k, v]
            for k, v in result.items()
            if is_metric_key(k) and isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        with self.path.open("a", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(rows)


def _cell(value: Any) -> Any:
    """Lists (e.g. LoRA targets) as one readable cell."""
    if isinstance(value, (list, tuple)):
        return "+".join(str(v) for v in value)
    return value
