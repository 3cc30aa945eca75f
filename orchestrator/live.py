"""A status line redrawn in place while trials run, on a terminal only.

    ▸ 5/18 done · 2 running (a seed=1 epoch 3/10, b seed=0 epoch 1/10) · 11 pending · about 4 min left

Trials done, running and pending, the epoch each running trial reported last, and the time
left as ``status`` estimates it (``orchestrator.status.seconds_left``: the mean wall time of
the trials that ended times the trials left, less what the running ones have spent, over the
trials at once). Redrawn at most once a second from Tune's loop (a callback), cleared before
each per-trial line is printed so that those lines stay as they were, and cleared when the
trials are done. Off when the output is not a terminal (a CI log, a file, a pipe: nothing is
written there) or ``TERM`` is ``dumb``.

Written by hand: Tune's own progress reporter prints tables (turned off here, ``verbose=0``),
and a progress bar library (tqdm, rich) draws a bar of one count, not several counts with
each running trial's epoch; the line is what both would reduce to.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Any, Callable, TextIO

from ray import tune

from orchestrator.status import duration, seconds_left

CLEAR = "\r\x1b[K"  # back to the line's start, erase to its end


def on_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):  # closed, or not a file
        return False


def status_text(
    *,
    total: int,
    done: int,
    running: list[tuple[str, int, int]],
    pending: int,
    walls: list[float],
    spent: float,
    at_once: int,
) -> str:
    """The line: ``running`` holds (trial, epoch reported, epochs) of each running trial."""
    parts = [f"{done}/{total} done"]
    if running:
        shown = ", ".join(f"{name} epoch {epoch}/{full}" for name, epoch, full in running[:4])
        more = f", +{len(running) - 4}" if len(running) > 4 else ""
        parts.append(f"{len(running)} running ({shown}{more})")
    parts.append(f"{pending} pending")
    left = seconds_left(walls, running=len(running), pending=pending, spent=spent, at_once=at_once)
    parts.append(f"about {duration(left)} left" if left is not None else "time left: after the first trial")
    return "\u25b8 " + " \u00b7 ".join(parts)


class LiveStatus(tune.Callback):
    """The status line of a run, as a Tune callback (listed first, so that it clears the line
    before the progress callbacks print a trial's end).

    ``describe(trial)``: how the line names a trial and the epochs it runs to its end, or None
    for a trial of an earlier experiment; ``total``: the trials of the run."""

    def __init__(
        self,
        describe: Callable[[Any], tuple[str, int] | None],
        total: int,
        max_concurrent: int | None,
        stream: TextIO | None = None,
        interval: float = 1.0,
    ) -> None:
        self.describe, self.total, self.max_concurrent = describe, total, max_concurrent
        self.interval = interval
        self._attach(stream)

    def _attach(self, stream: TextIO | None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.on = on_terminal(self.stream)
        self.shown = False
        self.last = 0.0

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks: not the stream
        return {k: getattr(self, k) for k in ("describe", "total", "max_concurrent", "interval")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._attach(None)

    def clear(self) -> None:
        if self.shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.shown = False

    def text(self, trials: list) -> str:
        done, running, pending, walls, spent = 0, [], 0, [], 0.0
        for trial in trials:
            described = self.describe(trial)
            if described is None:
                continue
            name, full = described
            result = trial.last_result or {}
            if trial.status in ("TERMINATED", "ERROR"):
                done += 1
                if result.get("time_total_s") is not None:
                    walls.append(float(result["time_total_s"]))
            elif trial.status == "RUNNING":
                running.append((name, int(result.get("training_iteration", 0)), full))
                spent += float(result.get("time_total_s", 0.0) or 0.0)
            else:  # PENDING, or PAUSED at an ASHA rung
                pending += 1
        pending += max(0, self.total - done - len(running) - pending)  # a search's trials not sampled yet
        at_once = max(1, len(running), self.max_concurrent or 0) if not running else len(running)
        return status_text(
            total=self.total, done=done, running=running, pending=pending, walls=walls, spent=spent, at_once=at_once
        )

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if not self.on or now - self.last < self.interval:
            return
        self.last = now
        width = shutil.get_terminal_size((100, 24)).columns - 1
        line = self.text(trials)
        self.stream.write(CLEAR + (line if len(line) <= width else line[: width - 1] + "\u2026"))
        self.stream.flush()
        self.shown = True

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.clear()  # the trial's own line comes next (the progress callback's)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.clear()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.clear()
