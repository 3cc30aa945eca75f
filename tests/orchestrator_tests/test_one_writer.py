"""A run has one writer at a time: while one process holds a run directory (a driver, an
extend, a report), every other command that would write it is refused in one line, exit
status 2, with nothing on disk touched; readers go on; a writer that dies releases the run,
and a driver pid the system has since given to another process does not count as alive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.orchestrator_tests.refusals import check_refused as _check_refused
from tests.orchestrator_tests.refusals import checked_run as _checked_run
from tests.orchestrator_tests.refusals import snapshot as _snapshot

ROOT = Path(__file__).resolve().parents[2]

HOLD = textwrap.dedent(
    """
    import sys, time
    from reports.rundir.lock import run_lock
    with run_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
    """
)


@pytest.fixture
def held(tmp_path):
    """A finished run directory whose lock another live process holds (as a driver would)."""
    _checked_run(tmp_path, None, None)
    run = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run), "run", "ablation"], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{r}"],
        ["resume", "{r}"],
        ["extend", "{r}", "--seeds", "7"],
        ["run", "confirm", "--from", "{r}"],
    ],
    ids=["report", "resume", "extend", "confirm-from"],
)
def test_a_second_writer_is_refused_while_one_holds_the_run(held, argv, capsys, no_ray):
    run, proc = held
    before = _snapshot(run.parent)
    code = main([a.replace("{r}", str(run)) for a in argv])
    _check_refused(code, capsys.readouterr().err, [f"pid {proc.pid}", "is writing this run"])
    assert _snapshot(run.parent) == before
    assert not no_ray


def test_readers_go_on_while_a_writer_holds_the_run(held, capsys):
    run, proc = held
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "Study 'abl'" in out


def test_a_writer_that_dies_releases_the_run(held, capsys):
    """SIGKILL leaves no stale lock: the kernel drops a flock with its process."""
    from reports.rundir.lock import writer_alive

    run, proc = held
    assert writer_alive(run) is True
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert writer_alive(run) is False
    assert main(["report", str(run)]) == 0
    assert (run / "report" / "index.html").is_file()


def test_a_reused_driver_pid_is_not_a_live_driver(tmp_path, capsys):
    """run.json names a pid that is alive now (this test's own: the system gave the dead
    driver's pid to another process), but no process holds the run: status says the driver is
    gone rather than running, and a writer may take the run."""
    from reports.rundir.files import write_checked
    from reports.rundir.lock import run_lock

    _checked_run(tmp_path, None, None)
    run = tmp_path / "r"
    info = json.loads((run / "run.json").read_text())
    info["driver"] = {"pid": os.getpid(), "host": os.uname().nodename}
    write_checked(run, "run.json", json.dumps(info))
    write_checked(
        run,
        "results.csv",
        "trial_name,variant,seed,status,eval/x/acc\na_seed0,a,0,TERMINATED,0.5\na_seed1,a,1,RUNNING,\n",
    )
    with run_lock(run):  # an earlier driver of this run took the lock once, then died
        pass
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "is gone" in out, out


def test_two_reports_at_once_never_share_a_staging_folder(tmp_path):
    """The second of two `report`s started together is refused (it would rebuild the
    first's `.report.partial/` under it); the first's report is whole."""
    _checked_run(tmp_path, None, None)
    run = tmp_path / "r"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "report", str(run)],
            stderr=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes[0] == 0, outs
    if codes[1] == 2:  # the two overlapped: one refused in one line
        err = next(e for (_, e), p in zip(outs, procs) if p.returncode == 2)
        assert len(err.strip().splitlines()) == 1 and "is writing this run" in err
    else:  # the first had finished before the second began
        assert codes[1] == 0
    assert (run / "report" / "index.html").is_file()
    assert not (run / ".report.partial").exists()
