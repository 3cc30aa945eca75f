"""``python kill_driver.py POINT ARGS...``: ``python -m orchestrator ARGS...`` whose driver
SIGKILLs itself at POINT, so that a test can stop a real run exactly there (no clean-up, no
last write; what a power cut or an OOM killer leaves). The run's own code is not changed:
the point is reached by wrapping one of its functions in this process only.

POINT is one of:
  prepare   inside the trainable's preparation (the data read, nothing of it written yet)
  ray       just after Ray started, before a trial ran
  tuner     once Tune has written tuner.pkl, before it saved any state of its own (the
            searcher's, which holds the trials' configs)
  trial     mid-trial: the second trial has reported its first epoch, the first has ended
  rewrite   while results.csv is rewritten, changed, with a trial that ended in it: the new
            table and its checksum record are on disk, the old table is not yet replaced
  report    while the report is being made (every trial has ended)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    if point == "prepare":
        import trainables.da_lora.loop as loop

        loop.write_skipped = lambda *a, **k: die()
    elif point == "ray":
        import orchestrator.ray_runtime as rt

        real = rt.ray_session

        @contextlib.contextmanager
        def session(*a, **k):
            with real(*a, **k) as info:
                die()
                yield info

        rt.ray_session = session
    elif point == "tuner":
        from ray import tune

        tune.Tuner.fit = lambda self, *a, **k: die()
    elif point == "trial":
        from orchestrator.progress import GridProgress

        real = GridProgress.on_trial_result
        seen: list[str] = []

        def on_result(self, iteration, trials, trial, result, **info):
            real(self, iteration, trials, trial, result, **info)
            seen.append(trial.trial_id)
            if len(set(seen)) == 2:
                die()

        GridProgress.on_trial_result = on_result
    elif point == "rewrite":
        import reports.rundir.files as rf

        class CutOs:
            """``os`` for run_files only: dies instead of replacing results.csv by a changed
            table with a finished trial in it."""

            def __getattr__(self, name):
                return getattr(os, name)

            def replace(self, src, dst):
                new = open(src).read()
                if str(dst).endswith("results.csv") and "TERMINATED" in new and new != open(dst).read():
                    die()
                os.replace(src, dst)

        rf.os = CutOs()
    elif point == "report":
        import reports.build as build

        build._write_page = lambda *a, **k: die()
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    from orchestrator.cli import main

    sys.exit(main(sys.argv[2:]))
