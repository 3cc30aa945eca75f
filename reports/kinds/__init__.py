"""The report of each study kind, one module each, as ``orchestrator.kinds`` holds one module
per kind: its builder (the sections of its page), its comparison tables, their captions and
its sentence of what chose (``base.py``). ``grid.py`` is the page that the kinds whose
trials form a grid over seeds share (ablation, confirm, sensitivity). Adding a kind's report
is adding its module here: every module of this package is imported, and so registers its
report, when the package is."""

from __future__ import annotations

import importlib
import pkgutil

from reports.kinds.base import KIND_REPORTS, KIND_SELECTION, KIND_TABLES, ReportInput, comparison_tables, report_for

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.name not in ("base", "grid"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["KIND_REPORTS", "KIND_SELECTION", "KIND_TABLES", "ReportInput", "comparison_tables", "report_for"]
