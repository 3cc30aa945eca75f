"""Orchestrator: study specs in, Ray Tune trials run, ``results.csv`` and a report out."""

import os as _os

# Tune's settings, here because a package's ``__init__`` runs before any of its modules,
# whatever order an import sorter gives them (Tune reads both when a run starts): results
# travel through our own results table, so Tune's per-trial JSON/CSV/TensorBoard loggers
# are pure overhead; the legacy output engine with verbose=0 keeps Ray's console noise away
# from the user's progress lines.
_os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
_os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Usage reporting off, unless the user turned it on: Ray's usage stats (sent by the head a
# run starts; on by default, ray/_common/usage/usage_lib.py) and MLflow's telemetry (the
# trackers, orchestrator/tracking.py). W&B reports nothing offline, its default here.
_os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
_os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


__all__ = ["Run", "__version__", "load_run", "run_study"]


def __getattr__(name: str):
    """``run_study``, ``load_run`` and ``Run`` (``orchestrator.api``), imported on first use so
    that ``import orchestrator`` (and the command line) stays light."""
    if name in ("Run", "load_run", "run_study"):
        from orchestrator import api

        return getattr(api, name)
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("orchestrator")
        except PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
