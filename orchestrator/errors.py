"""The one exception type that means "the user's input is wrong": one line, exit status 2."""

from __future__ import annotations

import errno

# a file system with no room left (or a quota reached): the run cannot go on, and no trial is to blame
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class UserError(Exception):
    """Bad input (study, spec, option, data). The CLI prints ``error: <message>`` and exits 2."""


def one_line(text: str) -> str:
    """Collapse whitespace so a message stays on one line."""
    return " ".join(str(text).split())


class RunStopped(Exception):
    """The run cannot go on (its disk is full): the CLI prints ``error: <message>`` and exits 1.
    What was written before stays intact and ``resume`` continues once the cause is gone."""


def is_disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in DISK_FULL


def stopped_for_full_disk(run_dir, where: str) -> RunStopped:
    return RunStopped(
        f"no space left on the disk of {run_dir} ({where}); the run stopped, and what it wrote before "
        f"is intact: free some space, then `python -m orchestrator resume {run_dir}` continues it"
    )
