"""``status DIR``: where a run stands, from its directory alone (no Ray, no torch).

It reads ``results.csv`` (rewritten atomically as trials start and end), ``curves.csv``
and ``run.json``, so it answers while the run goes on in another process, and after the
driver died: ``run.json`` names the driver's process, and a run whose driver is gone while
trials still read RUNNING is said to be dead, not running.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from reports.rundir.info import RunInfo
from reports.rundir.names import FAILED, FINISHED, INTERRUPTED, PAUSED, PENDING, RUNNING, STOPPED, TERMINATED


def _driver_alive(meta: RunInfo, run_dir: Path | None = None) -> bool | None:
    """Whether the run's writer is at work: the run directory's lock is held (a driver that
    died, however, released it; a pid the system gave to another process since does not
    count). For a run made before runs were locked: True/False when this machine ran the
    driver and its pid is alive; None when it cannot tell (another host)."""
    from reports.rundir.lock import writer_alive

    held = writer_alive(run_dir) if run_dir is not None else None
    if held is not None:
        return held
    driver = meta.driver
    if not driver.pid or driver.host != socket.gethostname():
        return None
    try:
        os.kill(driver.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _stops_early(meta: RunInfo) -> bool:
    """Whether the run's scheduler stops trials early (run.json records it; FIFO does not).
    A run made before run.json recorded its scheduler is a search with ASHA, or no search."""
    if meta.scheduler is None:
        return meta.kind == "search"
    return meta.scheduler.type != "fifo"


def status_lines(run_dir: Path) -> list[str]:
    from reports.rundir.files import read_run

    run_dir = Path(run_dir)
    df, meta = read_run(run_dir)  # one line (ReportInputError) when missing, damaged or edited
    kind, metric, mode = meta.kind, meta.metric, meta.mode
    group = meta.group
    counts = df["status"].value_counts().to_dict()
    total = (
        meta.num_samples if meta.num_samples is not None else len(df)
    )  # a search records how many trials it will have
    unproposed = max(0, total - len(df))  # a search adds its rows as the sampler proposes trials
    alive = _driver_alive(meta, run_dir)
    running = int(counts.get(RUNNING, 0))
    pending = int(counts.get(PENDING, 0)) + unproposed
    lines = [
        f"Study {meta.study!r} ({kind}{', quick' if meta.quick else ''}) in {run_dir}, started {meta.started_at or '?'}"
    ]
    parts = [f"{sum(int(counts.get(s, 0)) for s in FINISHED)} finished"]
    if counts.get(STOPPED):
        parts[-1] += f" ({int(counts[STOPPED])} of them stopped early by ASHA)"
    parts += [f"{running} running"]
    if counts.get(PAUSED):
        parts.append(f"{int(counts[PAUSED])} waiting at an ASHA rung")
    parts += [f"{pending} pending", f"{sum(int(counts.get(s, 0)) for s in FAILED)} failed"]
    if counts.get(INTERRUPTED):
        parts.append(f"{int(counts[INTERRUPTED])} interrupted")
    lines.append(f"trials: {total} in all: " + ", ".join(parts))
    if running and alive is False:
        pid = meta.driver.pid
        lines.append(
            f"the driver{f' (pid {pid})' if pid else ''} is gone: the {running} trials marked RUNNING are not "
            f"running; `python -m orchestrator resume {run_dir}` continues the run"
        )
    done = df[df["status"] == TERMINATED]
    if metric in df.columns and done[metric].notna().any():
        best = done.loc[done[metric].idxmax() if mode == "max" else done[metric].idxmin()]
        lines.append(
            f"best so far: {metric} = {best[metric]:.4f} ({best[group]}, seed {best['seed']}; "
            f"trials that ran to completion)"
        )
    else:
        lines.append("best so far: none (no trial has completed)")
    if group != "trial":  # a search's trials have one seed each
        lines.append(f"seeds done per {group}:")
        width = max((len(str(g)) for g in df[group]), default=0)
        for g, rows in df.groupby(group, sort=False):
            seeds = sorted(rows.loc[rows["status"] == TERMINATED, "seed"].tolist())
            lines.append(
                f"  {str(g):<{width}}  {len(seeds)}/{len(rows)}"
                + (f"  (seeds {', '.join(map(str, seeds))})" if seeds else "")
            )
    lines.append(_time_left(df, meta, run_dir, running=running if alive is not False else 0, pending=pending))
    return lines


def _time_left(df, meta: RunInfo, run_dir: Path, *, running: int, pending: int) -> str:
    """Mean wall time of the trials that ended, times what is left, over the trials at once."""
    import pandas as pd

    wall = df["wall_s"] if "wall_s" in df.columns else pd.Series(dtype=float)  # a table written by hand
    ended = pd.to_numeric(wall[df["status"].isin(FINISHED + FAILED)], errors="coerce").dropna()
    if not running and not pending:
        return "time left: none (nothing running or pending)"
    if ended.empty:
        return "time left: unknown until a trial ends"
    mean = float(ended.mean())
    at_once = max(1, running, (meta.max_concurrent or 0) if not running else running)
    spent = 0.0
    if running:
        from reports.rundir.files import DamagedRunFile, read_curves

        try:  # the run directory's one reader of curves.csv (an empty frame when there is none yet)
            c = read_curves(run_dir, need=("trial_name", "time_total_s"))
        except DamagedRunFile:  # appended as results arrive; not checksummed
            return "time left: unknown (curves.csv is unreadable)"
        names = set(df.loc[df["status"] == RUNNING, "trial_name"])
        spent = float(c[c["trial_name"].isin(names)].groupby("trial_name")["time_total_s"].max().sum())
    left = seconds_left(list(ended), running=running, pending=pending, spent=spent, at_once=at_once)
    n = running + pending
    return (
        f"time left: about {duration(left or 0.0)} ({n} trial{'s' if n != 1 else ''} left x {duration(mean)} mean wall time, "
        f"{at_once} at once{'; a search stops some early, so likely less' if _stops_early(meta) else ''})"
    )


def seconds_left(walls: list[float], *, running: int, pending: int, spent: float, at_once: int) -> float | None:
    """The estimate of the time left (``status``, and the live line while a run goes on): the
    mean wall time of the trials that ended (``walls``) times the trials running and pending,
    less the time the running ones have spent, over the trials at once; None before a trial
    ended, 0 when nothing is left."""
    if not running and not pending:
        return 0.0
    if not walls:
        return None
    mean = sum(walls) / len(walls)
    return max(0.0, (running + pending) * mean - spent) / max(1, at_once)


def print_status(run_dir: Path) -> None:
    for line in status_lines(run_dir):
        print(line)


__all__ = ["duration", "print_status", "seconds_left", "status_lines"]
