"""Reports: statistics, tables and pages from a run directory. Never imports Ray or torch."""

from reports.build import build_report
from reports.errors import ReportInputError

__all__ = ["build_report", "ReportInputError"]
