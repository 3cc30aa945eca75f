"""``run STUDY``: validate, prepare shared assets, run the trials on Ray, write the report.

What happens is the study kind's (``orchestrator.kinds``); what every kind shares (options,
their checks, the Ray session, the shared preparation, ``run.json``) is in ``launch.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator.errors import UserError
from orchestrator.launch import (  # noqa: F401  (re-exported: the command line, the API and benchmarks use them)
    RunOptions,
    check_address,
    check_options,
    prepare_shared,
    write_run_info,
)
from orchestrator.studies import load_study

CONFIRM = "confirm"


def run_study(opts: RunOptions, log: Callable[[str], None] = print) -> Path:
    """Everything ``python -m orchestrator run`` does; returns the run directory."""
    from orchestrator.kinds import kind_of

    if opts.study == CONFIRM:
        from orchestrator.confirm import confirm_study

        confirm, text, extra = confirm_study(opts, log)  # an ablation of the search's best configs
        return kind_of(confirm.kind).run(confirm, text, opts, log, info=extra)
    if opts.from_dir is not None:
        raise UserError(f"--from belongs to `run {CONFIRM}` (got study {opts.study!r})")
    spec, text = load_study(opts.study)
    return kind_of(spec.kind).run(spec, text, opts, log)
