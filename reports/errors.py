"""Errors of report inputs (no run directory, no results): one line, exit status 2."""

from reports.rundir.files import RunDirError


class ReportInputError(RunDirError):
    """The run directory cannot be reported on; the message says why."""
