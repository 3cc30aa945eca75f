"""What the kinds whose trials are a fixed grid share (ablation, sensitivity, and confirm
runs, which are ablations): every group x every seed, planned up front, run to completion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from orchestrator.errors import UserError
from orchestrator.kinds.base import Launch, Progress, StudyKind
from orchestrator.launch import RunOptions, max_concurrent
from orchestrator.plan import TrialPlan, compile_plan, parse_overrides
from orchestrator.spec import StudyBase
from reports.rundir.info import RunInfo
from reports.rundir.names import PENDING, UNFINISHED


class GridKind(StudyKind):
    def compile(self, spec: StudyBase, opts: RunOptions, log: Callable[[str], None]) -> list[TrialPlan]:
        """The grid; ``opts.seeds`` are an extended run's seeds (else the spec's)."""
        return compile_plan(spec, quick=opts.quick, overrides=parse_overrides(opts.set), seeds=opts.seeds, warn=log)

    def in_run_order(self, compiled: list[TrialPlan], meta: RunInfo) -> list[TrialPlan]:
        """The run's first trials in the grid's order, then each extension's in the order it
        added them, numbered so: a Tune experiment's ``_trial`` indices stay what it was given."""
        added = [name for ext in meta.extensions for name in ext.trials or []]
        if not added:
            return compiled
        by_name = {p.name: p for p in compiled}
        lost = [n for n in added if n not in by_name]
        if lost:
            raise UserError(
                f"run.json lists trial {lost[0]!r} as added by an extension, but the run's spec has no such trial; "
                "spec files and run.json no longer describe this run"
            )
        order = [p for p in compiled if p.name not in set(added)] + [by_name[n] for n in added]
        return [replace(p, index=i) for i, p in enumerate(order)]

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
        from orchestrator.plan import best_epoch_by

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
            trials=[
                p.index for p in compiled if launch.experiment.trials is None or p.name in launch.experiment.trials
            ],
            tune_dir=launch.experiment.dir,
            best_by_of=lambda config: best_epoch_by(launch.spec, launch.entry, config),
            provenance=provenance or {},
            full_of=launch.entry.full_iterations,
        )

    def progress(self, launch: Launch, compiled: list[TrialPlan], meta: RunInfo, has_table: bool) -> Progress:
        from orchestrator.results import ResultsTable

        if not has_table:
            return Progress(None, 0, len(compiled), started=False)
        added = set(launch.experiment.trials or ())
        try:
            table = ResultsTable.load(launch.run_dir, launch.spec.name, compiled, group_column=self.group_column)
        except ValueError as err:
            # an extension whose driver stopped after run.json named its trials but before
            # results.csv had their rows: the earlier trials as they are, the added ones to start
            if added:
                try:
                    table = ResultsTable.load(
                        launch.run_dir,
                        launch.spec.name,
                        [p for p in compiled if p.name not in added],
                        group_column=self.group_column,
                    )
                except ValueError:
                    pass
                else:
                    for p in compiled:
                        if p.name in added:
                            table.add(p, {})
                    left = sum(r["status"] in UNFINISHED for r in table.rows.values())
                    return Progress(table, len(compiled) - left, len(compiled), started=True)
            raise UserError(f"{launch.run_dir}: {err}; spec.yaml and run.json no longer describe this run") from None
        left = sum(r["status"] in UNFINISHED for r in table.rows.values())
        started = any(r["status"] != PENDING for r in table.rows.values())
        return Progress(table, len(compiled) - left, len(compiled), started=started)

    def restart_extension(self, launch: Launch, compiled: list[TrialPlan], table, provenance) -> None:
        for p in compiled:
            if p.name in set(launch.experiment.trials or ()):
                table.add(p, provenance.get(p.index, {}))
        table.write()

    def extend(self, run_dir: Path, spec: StudyBase, meta: RunInfo, opts: RunOptions, **how: Any) -> Path:
        from orchestrator.extend import extend_grid

        return extend_grid(self, run_dir, spec, meta, opts, **how)
