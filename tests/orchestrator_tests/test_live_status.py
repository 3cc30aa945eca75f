"""The live status line: what it says (counts, epochs, the time left as ``status`` estimates
it), drawn in place on a terminal, and nothing of it where the output is not one."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest

from orchestrator.live import CLEAR, LiveStatus, status_text
from orchestrator.status import seconds_left


def test_seconds_left_is_the_mean_wall_time_times_the_trials_left_less_what_runs_over_the_trials_at_once():
    # 2 ended (10 s, 20 s: mean 15); 1 running for 5 s and 3 pending: (4 x 15 - 5) / 2 at once
    assert seconds_left([10.0, 20.0], running=1, pending=3, spent=5.0, at_once=2) == pytest.approx((4 * 15 - 5) / 2)
    assert seconds_left([], running=1, pending=3, spent=0.0, at_once=1) is None  # nothing ended yet
    assert seconds_left([10.0], running=0, pending=0, spent=0.0, at_once=1) == 0.0
    assert seconds_left([10.0], running=1, pending=0, spent=30.0, at_once=1) == 0.0  # over its mean: not negative


def test_the_line_counts_trials_and_names_each_running_ones_epoch():
    line = status_text(
        total=6,
        done=2,
        running=[("a seed=0", 3, 10), ("b seed=1", 1, 10)],
        pending=2,
        walls=[60.0, 60.0],
        spent=30.0,
        at_once=2,
    )
    # (4 x 60 - 30) / 2 = 105 s
    assert (
        line
        == "\u25b8 2/6 done \u00b7 2 running (a seed=0 epoch 3/10, b seed=1 epoch 1/10) \u00b7 2 pending \u00b7 about 105 s left"
    )
    first = status_text(total=3, done=0, running=[("a seed=0", 0, 2)], pending=2, walls=[], spent=0.0, at_once=1)
    assert first.endswith("time left: after the first trial")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _trial(status: str, index: int, iteration: int = 0, total: float = 0.0):
    return SimpleNamespace(
        status=status, config={"_trial": index}, last_result={"training_iteration": iteration, "time_total_s": total}
    )


def test_the_line_is_drawn_in_place_on_a_terminal_cleared_for_each_trials_line_and_never_written_elsewhere(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    labels = {0: ("a seed=0", 2), 1: ("b seed=0", 2), 2: ("c seed=0", 2)}
    trials = [_trial("TERMINATED", 0, 2, 40.0), _trial("RUNNING", 1, 1, 10.0), _trial("PENDING", 2)]
    term = _Terminal()
    live = LiveStatus(lambda t: labels[t.config["_trial"]], 3, None, stream=term, interval=0.0)
    live.on_step_end(1, trials)
    expected = status_text(
        total=3, done=1, running=[("b seed=0", 1, 2)], pending=1, walls=[40.0], spent=10.0, at_once=1
    )
    assert term.getvalue() == CLEAR + expected
    live.on_trial_complete(1, trials, trials[1])  # the progress callback prints the trial's line next
    assert term.getvalue() == CLEAR + expected + CLEAR
    live.on_trial_complete(1, trials, trials[1])  # nothing drawn since: nothing to clear
    assert term.getvalue().count(CLEAR) == 2
    log = io.StringIO()  # a CI log, a file, a pipe
    quiet = LiveStatus(lambda t: labels[t.config["_trial"]], 3, None, stream=log, interval=0.0)
    quiet.on_step_end(1, trials)
    quiet.on_experiment_end(trials)
    assert log.getvalue() == ""
    monkeypatch.setenv("TERM", "dumb")
    assert not LiveStatus(lambda t: None, 3, None, stream=_Terminal()).on


# A run on a terminal draws the line in place, and one logged to a file writes nothing of it:
# both are checked on the runs of test_tracking.py (the grid's output goes to a pseudo-terminal,
# the search's to a buffer), which need no study of their own.
