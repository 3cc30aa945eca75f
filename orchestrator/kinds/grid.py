"""What the kinds whose trials are a fixed grid share (ablation, sensitivity, and confirm
runs, which are ablations): every group x every seed, planned up front, run to completion."""

from __future__ import annotations

from typing import Any, Callable

from orchestrator.errors import UserError
from orchestrator.kinds.base import Launch, Progress, StudyKind
from orchestrator.launch import RunOptions, max_concurrent
from orchestrator.plan import TrialPlan, compile_plan, parse_overrides
from orchestrator.spec import StudyBase
from reports.rundir.names import PENDING, UNFINISHED


class GridKind(StudyKind):
    def compile(self, spec: StudyBase, opts: RunOptions, log: Callable[[str], None]) -> list[TrialPlan]:
        return compile_plan(spec, quick=opts.quick, overrides=parse_overrides(opts.set), warn=log)

    def prepared(self, compiled: list[TrialPlan]) -> list[TrialPlan]:
        return compiled

    def announce(self, spec: StudyBase, compiled: list[TrialPlan], opts: RunOptions) -> str:
        return (
            f"Study {spec.name!r}{' (quick)' if opts.quick else ''}: {len(compiled)} trials "
            f"({len({p.variant for p in compiled})} {spec.unit}s x {len({p.seed for p in compiled})} seeds)"
        )

    def new_table(self, launch: Launch, compiled: list[TrialPlan], provenance: dict[int, dict[str, str]]):
        """Every trial planned, PENDING."""
        from orchestrator.results import ResultsTable

        table = ResultsTable(launch.run_dir, launch.spec.name, compiled, provenance, group_column=self.group_column)
        table.write()
        return table

    def execute(self, launch: Launch, compiled: list[TrialPlan], table, provenance: Any, *, restore: bool) -> None:
        from orchestrator.execute import execute

        execute(
            study=launch.spec.name,
            trainable=launch.entry.fn,
            plans=compiled,
            table=table,
            run_dir=launch.run_dir,
            metric=launch.spec.metric,
            cpus_per_trial=launch.cpus,
            gpus_per_trial=launch.gpus,
            max_concurrent=max_concurrent(launch.opts, launch.spec),
            max_failures=launch.spec.max_failures,
            log=launch.log,
            restore=restore,
        )

    def progress(self, launch: Launch, compiled: list[TrialPlan], meta: dict[str, Any], has_table: bool) -> Progress:
        from orchestrator.results import ResultsTable

        if not has_table:
            return Progress(None, 0, len(compiled), started=False)
        try:
            table = ResultsTable.load(launch.run_dir, launch.spec.name, compiled, group_column=self.group_column)
        except ValueError as err:
            raise UserError(f"{launch.run_dir}: {err}; spec.yaml and run.json no longer describe this run") from None
        left = sum(r["status"] in UNFINISHED for r in table.rows.values())
        started = any(r["status"] != PENDING for r in table.rows.values())
        return Progress(table, len(compiled) - left, len(compiled), started=started)
