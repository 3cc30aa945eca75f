"""Errors of report inputs (no run directory, no results): one line, exit status 2."""


class ReportInputError(ValueError):
    """The run directory cannot be reported on; the message says why."""
