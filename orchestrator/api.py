"""The Python API, for notebooks and scripts: run a study, load a run directory.

    import orchestrator
    run = orchestrator.run_study("ablation", quick=True, out="runs/abl")
    run.results.groupby("group")["eval/cross_domain/acc"].mean()
    orchestrator.load_run("runs/abl").curves

``run_study`` does what ``python -m orchestrator run`` does (the same checks, one
``UserError`` with the one-line message for bad input) and returns the loaded run.
``load_run`` reads a run directory through the same checked readers as ``status`` and
``report`` (a damaged file raises ``RunDirError``); ``reports.build_report(dir)`` rebuilds a
report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from reports.rundir.files import read_curves, read_run
from reports.rundir.info import RunInfo
from reports.rundir.names import REPORT_DIR, spec_file


@dataclass(frozen=True)
class Run:
    """A run directory, loaded.

    Attributes:
        path: the run directory.
        info: ``run.json`` (study, kind, metric, mode, seeds, options, ...).
        spec: the spec as run (``spec.yaml``; an extended run's latest spec file), validated;
            for a ``--quick`` run its quick form (``quick_form``: the quick seeds, base,
            variants or axes, samples), with the seeds run.json records; None when the
            directory has none.
        results: ``results.csv``, one row per trial, with a ``group`` column (the variant,
            point or trial, whatever the study kind calls it) and the ``config/<key>`` columns
            typed from ``configs.json`` (nullable ``Int64``, ``boolean``, ``Float64``, strings;
            lists stay lists), not guessed back from the CSV.
        curves: ``curves.csv`` (long format: trial_name, iteration, time_total_s, timestamp,
            key, value); empty when the run has none.
    """

    path: Path
    info: RunInfo
    spec: Any
    results: pd.DataFrame
    curves: pd.DataFrame

    @property
    def group_column(self) -> str:
        """The name results.csv gives the group column for this study kind."""
        return self.info.group

    @property
    def report(self) -> Path:
        """``report/index.html`` (it exists once the run has finished or ``report`` ran)."""
        return self.path / REPORT_DIR / "index.html"

    def result_grid(self):
        """Ray Tune's own view of the run (``ray.tune.ResultGrid``, read from Tune's state in
        the run's latest experiment folder, ``tune/``): each trial's real config, its last
        result (``done`` False for a trial ASHA stopped), checkpoint and per-epoch
        ``metrics_dataframe``. Read only, from any working directory (Tune takes an absolute
        path); needs no Ray running. ``results.csv`` stays the run's record: its status column
        says what Tune's cannot (STOPPED, DIVERGED, INTERRUPTED)."""
        from ray import tune

        from reports.rundir.names import experiment_dir

        def trainable(config: dict[str, Any]) -> None:  # Tune checks the name; nothing runs
            raise RuntimeError("a run read through result_grid() does not train")

        trainable.__name__ = trainable.__qualname__ = self.info.study  # how the run named it
        folder = (self.path / experiment_dir(self.info)).resolve()
        return tune.Tuner.restore(str(folder), trainable=trainable).get_results()


def load_run(path: str | Path) -> Run:
    """The run directory at ``path`` as a ``Run`` (see its attributes)."""
    from orchestrator.studies import load_study

    path = Path(path)
    results, info = read_run(path)  # config columns typed from configs.json
    column = info.group
    results.insert(
        results.columns.get_loc(column) + 1 if column in results.columns else 0,
        "group",
        results[column] if column in results.columns else pd.NA,
    )
    curves = read_curves(path)
    spec = load_study(str(path / spec_file(info)))[0] if (path / spec_file(info)).is_file() else None
    if spec is not None and info.quick:
        spec = spec.quick_form()  # the study as it ran: the quick seeds, base and variants
    if spec is not None and info.seeds and info.kind != "search":
        spec = spec.model_copy(update={"seeds": list(info.seeds)})  # --seeds, or an extension's
    return Run(path=path, info=info, spec=spec, results=results, curves=curves)


def run_study(
    study: str | Path,
    *,
    out: str | Path | None = None,
    quick: bool = False,
    set: dict[str, Any] | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    cpus_per_trial: float | None = None,
    gpus_per_trial: float | None = None,
    log: Callable[[str], None] = print,
) -> Run:
    """Run ``study`` (a shipped name or a spec path) as ``python -m orchestrator run`` does,
    and return the loaded run. ``set`` overrides base-config values (``--set``)."""
    from collections.abc import Mapping

    from orchestrator.errors import UserError
    from orchestrator.run import RunOptions
    from orchestrator.run import run_study as _run

    expected = {
        "study": (study, (str, Path), "a study name or a spec path"),
        "out": (out, (str, Path, type(None)), "a directory path"),
        "quick": (quick, (bool,), "True or False"),
        "set": (set, (Mapping, type(None)), "a mapping of config keys to values, e.g. {'lr': 0.1}"),
        "address": (address, (str, type(None)), "HOST:PORT"),
        "max_concurrent": (max_concurrent, (int, type(None)), "a whole number"),
        "cpus_per_trial": (cpus_per_trial, (int, float, type(None)), "a number"),
        "gpus_per_trial": (gpus_per_trial, (int, float, type(None)), "a number"),
    }
    for name, (value, types, what) in expected.items():  # one line, as the command line's errors
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise UserError(f"run_study({name}=...): expected {what}, got {type(value).__name__} {value!r:.60}")
    if any(not isinstance(k, str) for k in (set or {})):
        raise UserError(f"run_study(set=...): keys must be config key names (strings), got {list(set or {})!r:.60}")
    pairs = [f"{k}={json.dumps(v)}" for k, v in (set or {}).items()]  # JSON is YAML: read back as given
    opts = RunOptions(
        study=str(study),
        out=Path(out) if out is not None else None,
        quick=quick,
        set=pairs,
        address=address,
        max_concurrent=max_concurrent,
        cpus_per_trial=cpus_per_trial,
        gpus_per_trial=gpus_per_trial,
    )
    return load_run(_run(opts, log))


__all__ = ["Run", "load_run", "run_study"]
