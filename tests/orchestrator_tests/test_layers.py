"""The arrows between the packages run one way: ``reports.rundir`` (the run directory's
contract) imports nothing else of the project, ``reports`` imports neither the orchestrator
nor Ray, torch or the trainables, the trainables import of the reports only the contract,
and Tune's settings hold whatever order modules are imported in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(package: str) -> dict[str, set[str]]:
    """Module file -> what it imports (at any depth of the code): each top-level name, and
    ``reports.<module>`` for the modules of reports."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            modules = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and not node.level
                else []
            )
            for m in modules:
                parts = m.split(".")
                names.add(parts[0])
                if parts[0] == "reports" and len(parts) > 1:
                    names.add(".".join(parts[:2]))
        out[str(path.relative_to(ROOT))] = names
    return out


REPORT_MODULES = {f"reports.{p.stem}" for p in (ROOT / "reports").glob("*.py") if p.stem != "__init__"}


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("reports/rundir", {"orchestrator", "trainables", "ray", "torch", "plotly", *REPORT_MODULES}),
        ("reports", {"orchestrator", "trainables", "ray", "torch"}),
        ("trainables", {"orchestrator", *REPORT_MODULES}),
    ],
)
def test_imports_run_one_way(package, forbidden):
    wrong = {f: sorted(names & forbidden) for f, names in _imports(package).items() if names & forbidden}
    assert not wrong, wrong
    assert REPORT_MODULES and "reports.build" in REPORT_MODULES


def test_the_contract_imports_no_statistics_or_plotting():
    """What a trial worker or a refusing command line loads of the reports: the contract alone."""
    code = (
        "import sys, reports.rundir.files, reports.rundir.names; "
        "print(sorted(m for m in sys.modules if m.startswith(('reports.', 'scipy', 'plotly', 'ray', 'torch'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (
        proc.stdout.strip()
        == "['reports.rundir', 'reports.rundir.files', 'reports.rundir.info', 'reports.rundir.names']"
    )


SETTINGS = (
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS",
    "RAY_AIR_NEW_OUTPUT",
    "RAY_USAGE_STATS_ENABLED",
    "MLFLOW_DISABLE_TELEMETRY",
)


def test_tune_settings_do_not_depend_on_import_order():
    """Ray Tune imported first, then any orchestrator module: its loggers stay off, and so do
    Ray's usage stats and MLflow's telemetry (each library's documented switch)."""
    code = "import ray.tune, os; import orchestrator.execute; print(*(os.environ[k] for k in %r))" % (SETTINGS,)
    env = {k: v for k, v in __import__("os").environ.items() if k not in SETTINGS}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1", "0", "0", "true"]
    # and what the libraries make of them: Ray's usage stats and MLflow's telemetry read as off
    check = (
        "import orchestrator, ray._common.usage.usage_lib as u, mlflow.telemetry.utils as m; "
        "print(u.usage_stats_enabled(), m.is_telemetry_disabled())"
    )
    env.pop("CI", None)  # MLflow turns its telemetry off in CI on its own
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]
