"""Reports: statistics, tables and pages from a run directory. Never imports Ray or torch.

``reports.rundir`` is the run directory's contract (its names, and its files read and
written with checksums), shared with the orchestrator and the trainables, which write by it.
``build_report`` is imported on first use, so that importing the contract stays light (a
trial worker, the command line refusing bad input) and pulls in no statistics or plotting.
"""

from __future__ import annotations

__all__ = ["build_report", "ReportInputError"]


def __getattr__(name: str):
    if name == "build_report":
        from reports.build import build_report

        return build_report
    if name == "ReportInputError":
        from reports.errors import ReportInputError

        return ReportInputError
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
