"""One writer at a time per run directory.

Every command that writes into a run directory (``run``, ``resume``, ``extend``,
``report``) holds its lock for the command's whole life; a second writer is refused in one
line naming the one at work. ``run confirm --from DIR`` reads a search that must not change
under it, so it refuses a search that has a writer. Readers (``status``, ``plan``,
``load_run``) take no lock: every file they read is replaced atomically.

The lock is ``fcntl.flock`` on ``DIR/.lock`` through ``filelock`` (the kernel releases it
when the holding process dies, however it dies, so a crashed driver never leaves a run
locked, and a driver pid the system has since given to another process does not count as a
live driver). The holder writes who it is into the same file, for the refusal's message;
that text is read only while the lock is held.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from reports.rundir.files import RunDirError
from reports.rundir.names import LOCK_FILE


class RunLocked(RunDirError):
    """Another process is writing the run directory (one line, exit status 2)."""


def _lock(run_dir: Path):
    from filelock import FileLock

    # one instance per path in this process, re-entrant: `run` holds it and builds the report,
    # whose own acquire only counts up
    return FileLock(str(Path(run_dir) / LOCK_FILE), is_singleton=True)


def holder(run_dir: Path) -> dict[str, Any]:
    """Who last took the lock (pid, host, command, since); {} when unknown."""
    try:
        data = json.loads((Path(run_dir) / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe(info: dict[str, Any]) -> str:
    if not info:
        return "another process"
    command = " ".join(["python -m orchestrator", *info.get("command", [])[1:]])[:120]
    return f"`{command}` (pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')})"


def _flock_holders(path: Path) -> list[int] | None:
    """The pids holding a flock on ``path``, from Linux's ``/proc/locks`` (None where it does
    not exist): asked without taking the lock, so asking never gets in a writer's way."""
    try:
        st = path.stat()
        text = Path("/proc/locks").read_text()
    except FileNotFoundError:
        return [] if not path.exists() else None
    except OSError:
        return None
    pids = []
    for line in text.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a blocked waiter's line has "->"
        if len(parts) >= 6 and "->" not in parts and parts[1] == "FLOCK":
            maj, minor, ino = parts[5].split(":")
            if int(ino) == st.st_ino and int(maj, 16) == os.major(st.st_dev) and int(minor, 16) == os.minor(st.st_dev):
                pids.append(int(parts[4]))
    return pids


def writer_alive(run_dir: Path) -> bool | None:
    """Whether a process holds the run's lock now: True/False, None when the run has no lock
    file (made before runs were locked) or this system cannot tell without taking it."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return None
    pids = _flock_holders(path)
    if pids is None:
        return None
    return bool(pids)


def refuse_if_written(run_dir: Path, what: str) -> None:
    """A reader that needs the run to stay as it is (``run confirm --from``): refused in one
    line while a writer holds the run."""
    if writer_alive(run_dir):
        raise RunLocked(
            f"{what}: {describe(holder(run_dir))} is writing this run; wait until it ends "
            f"(python -m orchestrator status {run_dir})"
        )


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the ``with`` block, or refuse in one line when
    another process holds it. Re-entrant in one process."""
    from filelock import Timeout

    run_dir = Path(run_dir)
    lock = _lock(run_dir)
    first = not lock.is_locked
    try:
        lock.acquire(blocking=False)
    except Timeout:
        raise RunLocked(
            f"{run_dir}: {describe(holder(run_dir))} is writing this run; a second command may not write it "
            f"at the same time (see python -m orchestrator status {run_dir}; resume it once that process has ended)"
        ) from None
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot lock the run directory ({err.strerror or err})") from None
    try:
        if first:
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": list(sys.argv),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            try:
                (run_dir / LOCK_FILE).write_text(json.dumps(me))
            except OSError:
                pass  # the record only names the holder in a refusal; the lock itself holds
        yield
    finally:
        lock.release()
