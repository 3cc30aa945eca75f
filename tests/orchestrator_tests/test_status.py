"""``status DIR`` from the run directory alone: counts, best so far, seeds done, time left,
and a dead driver told apart from a running one."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.status import status_lines

M = "eval/x/acc"


def _run_dir(tmp_path, rows, **meta):
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    info = {"study": "abl", "kind": "ablation", "metric": M, "mode": "max", "started_at": "t0", **meta}
    (tmp_path / "run.json").write_text(json.dumps(info))
    return tmp_path


def _row(variant, seed, status, value=None, wall=None, name=None):
    return {
        "trial_name": name or f"{variant}_seed{seed}",
        "variant": variant,
        "seed": seed,
        "status": status,
        "iterations": 3 if status == "TERMINATED" else 0,
        "wall_s": wall,
        M: value,
    }


ROWS = [
    _row("a", 0, "TERMINATED", 0.70, 100.0),
    _row("a", 1, "TERMINATED", 0.80, 140.0),
    _row("a", 2, "RUNNING"),
    _row("b", 0, "ERROR", None, 30.0),
    _row("b", 1, "RUNNING"),
    _row("b", 2, "PENDING"),
]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_status_of_a_running_ablation(tmp_path):
    d = _run_dir(tmp_path, ROWS, driver={"pid": os.getpid(), "host": socket.gethostname()})
    pd.DataFrame(
        [
            {"trial_name": "a_seed2", "iteration": 1, "time_total_s": 20.0, "timestamp": 1, "key": M, "value": 0.5},
            {"trial_name": "a_seed2", "iteration": 2, "time_total_s": 50.0, "timestamp": 2, "key": M, "value": 0.6},
        ]
    ).to_csv(d / "curves.csv", index=False)
    lines = status_lines(d)
    assert lines[1] == "trials: 6 in all: 2 finished, 2 running, 1 pending, 1 failed"
    assert lines[2].startswith(f"best so far: {M} = 0.8000 (a, seed 1;")
    assert lines[3:6] == ["seeds done per variant:", "  a  2/3  (seeds 0, 1)", "  b  0/3"]
    # mean wall of ended trials (100, 140, 30) = 90 s; 3 trials left; a_seed2 has 50 s done; 2 at once
    assert lines[6].startswith(
        f"time left: about {(3 * 90 - 50) / 2:.0f} s (3 trials left x 90 s mean wall time, 2 at once"
    )
    assert not any("driver" in ln for ln in lines)


def test_status_says_when_the_driver_is_gone(tmp_path, capsys):
    pid = _dead_pid()
    d = _run_dir(tmp_path, ROWS, driver={"pid": pid, "host": socket.gethostname()}, max_concurrent=1)
    assert main(["status", str(d)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"the driver (pid {pid}) is gone: the 2 trials marked RUNNING are not running" in out[2]
    assert out[-1].startswith("time left: about 90 s (1 trial left")  # only the pending one, one at a time


def test_status_of_a_run_whose_lock_is_free_and_that_names_no_driver(tmp_path):
    """run.json without a driver (written by hand, or by a version that did not record one)
    and a lock nobody holds: the RUNNING trials are said not to run, with no pid to name."""
    d = _run_dir(tmp_path, ROWS)
    (d / ".lock").write_text("")
    lines = status_lines(d)
    assert lines[2] == (
        "the driver is gone: the 2 trials marked RUNNING are not running; "
        f"`python -m orchestrator resume {d}` continues the run"
    )


def test_status_of_a_search_counts_trials_not_yet_proposed(tmp_path):
    rows = [
        {**_row("trial000", 0, "TERMINATED", 0.7, 50.0), "trial": "trial000"},
        {**_row("trial001", 0, "STOPPED", 0.9, 10.0), "trial": "trial001"},
        {**_row("trial002", 0, "RUNNING"), "trial": "trial002"},
        {**_row("trial003", 0, "PAUSED"), "trial": "trial003"},
    ]
    for r in rows:
        del r["variant"]
    lines = status_lines(_run_dir(tmp_path, rows, kind="search", num_samples=10))
    assert lines[1] == (
        "trials: 10 in all: 2 finished (1 of them stopped early by ASHA), 1 running, "
        "1 waiting at an ASHA rung, 6 pending, 0 failed"
    )
    assert lines[2].startswith(f"best so far: {M} = 0.7000 (trial000, seed 0;")  # a stopped trial is never best
    assert "seeds done" not in "\n".join(lines) and "so likely less" in lines[-1]


def test_status_with_nothing_completed_and_nothing_left(tmp_path):
    lines = status_lines(_run_dir(tmp_path, [_row("a", 0, "ERROR", None, 5.0)]))
    assert lines[2] == "best so far: none (no trial has completed)"
    assert lines[-1] == "time left: none (nothing running or pending)"


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: p / "missing", "is not a directory"),
        (lambda p: p, "is not a run directory"),
    ],
)
def test_status_bad_input(tmp_path, capsys, setup, message):
    assert main(["status", str(setup(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("text", ["x,y\n1,2\n", 'trial_name,time_total_s\n"a_seed2,1\n'])
def test_time_left_from_curves_read_by_the_run_directorys_one_reader(tmp_path, text):
    """curves.csv is read through ``read_curves`` (the run directory's one reader): a file
    that is not this tool's, or cannot be parsed, leaves the time left unknown in one line;
    none at all counts no time spent by the running trials."""
    d = _run_dir(tmp_path, ROWS, driver={"pid": os.getpid(), "host": socket.gethostname()})
    # no curves.csv yet: nothing spent; 3 trials x 90 s, 2 at once = 135 s, said in minutes
    assert status_lines(d)[6] == "time left: about 2 min (3 trials left x 90 s mean wall time, 2 at once)"
    (d / "curves.csv").write_text(text)
    assert status_lines(d)[6] == "time left: unknown (curves.csv is unreadable)"
