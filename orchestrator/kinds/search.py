"""The search: Optuna TPE through Ray Tune's OptunaSearch and a scheduler (ASHA by promotion,
or FIFO), the base config first, every trial with one seed; trials are added to
``results.csv`` as the sampler proposes them. It ranks on validation identities;
``run confirm --from`` reruns the best with fresh seeds (an ablation)."""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from pydantic import Field, field_validator

from orchestrator.kinds.base import Launch, Progress, StudyKind, register_kind
from orchestrator.launch import RunOptions, max_concurrent
from orchestrator.plan import SearchPlan, TrialPlan, compile_search, parse_overrides
from orchestrator.spec import MAX_SAMPLES, Seeds, Strict, StudyBase
from reports.rundir.info import RunInfo
from reports.rundir.names import UNFINISHED


class SchedulerSpec(Strict):
    """How a search spends its iterations (``orchestrator.schedulers``): ``asha`` (default),
    early stopping by promotion (``orchestrator.asha``, Li et al.), in training iterations
    (epochs): at each rung a trial waits, paused, until it is among the best
    ``1/reduction_factor`` of the trials that reached the rung; ``fifo``: every trial runs
    to ``max_t`` (grace period and reduction factor unused)."""

    type: Literal["asha", "fifo"] = Field("asha", description="the scheduler (orchestrator/schedulers.py)")
    max_t: int | None = Field(None, gt=0, description="iterations of a full trial (default: the base config's epochs)")
    grace_period: int = Field(1, gt=0, description="iterations every trial gets before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1, description="1/reduction_factor of the trials go on at each rung (eta)")


class ConfirmSpec(Strict):
    """``run confirm --from DIR``: the best completed configs of the search, and the base
    config, rerun to completion with these seeds and tested against the base."""

    top_k: int = Field(3, gt=0, description="best completed configs to rerun (the base config is always rerun)")
    seeds: Seeds = Field(
        [1, 2, 3, 4, 5],
        min_length=2,
        description="seeds of the reruns; seeds other than the search's keep the luck "
        "that made a config win out of the test that confirms it",
    )


class SearchQuickSpec(Strict):
    """A search's quick form: the checks of the full study's fields (the same types)."""

    seeds: Seeds | None = Field(None, min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    num_samples: int | None = Field(None, gt=0, le=MAX_SAMPLES)
    scheduler: SchedulerSpec | None = None
    confirm: ConfirmSpec | None = None


class SearchSpec(StudyBase):
    """Optuna TPE through Ray Tune's OptunaSearch, ASHA early stopping; the base config first.

    Every trial runs with the first of ``seeds``; ``run confirm`` reruns the best ones with
    several seeds.
    """

    kind: Literal["search"]
    unit: ClassVar[str] = "base"
    space: dict[str, Any] = Field(min_length=1)
    num_samples: int = Field(
        gt=0,
        le=MAX_SAMPLES,
        description="trials to sample (the base config is the first); at "
        "most 10000 (a typo such as 1e9 would never end)",
    )
    search_seed: int = Field(0, ge=0, description="seed of the Optuna sampler")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    top_k: int = Field(5, gt=0, description="rows of the report's top-k table")
    confirm: ConfirmSpec = Field(default_factory=ConfirmSpec)
    # a search's own quick form (samples, scheduler, confirm) in place of the common one
    quick: SearchQuickSpec = Field(default_factory=SearchQuickSpec)  # type: ignore[assignment]

    def _quick_update(self) -> dict[str, Any]:
        q = self.quick
        return {
            **super()._quick_update(),
            "num_samples": q.num_samples or self.num_samples,
            "scheduler": q.scheduler or self.scheduler,
            "confirm": q.confirm or self.confirm,
        }

    def chooses(self) -> str:
        return "a search ranks, samples and stops trials by its metric"

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> "ParsedSpace":
        from reports.rundir.space import SearchSpaceError, parse_space

        try:
            return ParsedSpace(v, parse_space(v))
        except SearchSpaceError as err:
            raise ValueError(str(err)) from None


class ParsedSpace(dict):
    """A spec's ``space`` as written (a mapping, what run.json records), with its parameters
    parsed once, when the spec is validated: ``compile_search`` takes them from here."""

    def __init__(self, raw: dict[str, Any], params: list) -> None:
        super().__init__(raw)
        self.params = tuple(params)


class Search(StudyKind):
    name = "search"
    spec_model = SearchSpec
    group_column = "trial"

    def compile(self, spec, opts: RunOptions, log: Callable[[str], None]) -> SearchPlan:
        return compile_search(spec, quick=opts.quick, overrides=parse_overrides(opts.set))

    def prepared(self, compiled: SearchPlan) -> list[TrialPlan]:
        """The base config (every sampled config shares its data and backbone)."""
        return [TrialPlan(0, "trial000", compiled.seed, compiled.base_config)]

    def facts(self, spec, compiled: SearchPlan, opts: RunOptions) -> dict[str, Any]:
        from orchestrator.schedulers import scheduler_of

        return {
            **super().facts(spec, compiled, opts),
            "space": dict(spec.space),
            "num_samples": compiled.num_samples,
            "top_k": spec.top_k,
            "scheduler": {
                "type": compiled.scheduler,
                "max_t": compiled.max_t,
                "grace_period": compiled.grace_period,
                "reduction_factor": compiled.reduction_factor,
                "rungs": scheduler_of(compiled).rungs(compiled),
            },
        }

    def announce(self, spec, compiled: SearchPlan, opts: RunOptions) -> str:
        from orchestrator.schedulers import scheduler_of

        return (
            f"Study {spec.name!r}{' (quick)' if opts.quick else ''}: search, {compiled.num_samples} trials "
            f"(Optuna TPE, the base config first; {scheduler_of(compiled).describe(compiled)})"
        )

    def provenance(self, shared: dict[int, dict[str, str]]) -> dict[str, str]:
        return shared[0]

    def new_table(self, launch: Launch, compiled: SearchPlan, provenance: Any):
        """An empty table: rows come as the sampler proposes trials."""
        from orchestrator.results import ResultsTable

        table = ResultsTable(launch.run_dir, launch.spec.name, [], {}, group_column=self.group_column)
        table.write()
        return table

    def execute(self, launch: Launch, compiled: SearchPlan, table, provenance: Any, *, restore: bool) -> None:
        from dataclasses import replace

        from orchestrator.execute import execute_search
        from orchestrator.plan import best_epoch_by

        exp = launch.experiment
        if restore and not list((launch.run_dir / exp.dir).glob("search_gen_state-*")):
            # Tune wrote tuner.pkl but never saved its searcher: Tune's own restore would then
            # draw one sample (Tuner.restore does not hand tune.run the num_samples it was
            # given). Nothing of the experiment was saved, so it starts again; trials it had
            # begun come again under the same names and replace their rows (SearchProgress).
            restore = False
            if not provenance:
                from orchestrator.launch import prepare_shared

                shared = prepare_shared(
                    launch.entry, self.prepared(compiled), launch.run_dir, what=launch.spec.unit, log=launch.log
                )
                provenance = self.provenance(shared)
        execute_search(
            study=launch.spec.name,
            entry=launch.entry,
            search=replace(compiled, num_samples=exp.samples) if exp.samples else compiled,
            run_dir=launch.run_dir,
            metric=launch.spec.metric,
            mode=launch.spec.mode,
            provenance=provenance,
            cpus_per_trial=launch.cpus,
            gpus_per_trial=launch.gpus,
            max_concurrent=max_concurrent(launch.opts, launch.spec),
            max_failures=launch.spec.max_failures,
            log=launch.log,
            restore=restore,
            tune_dir=exp.dir,
            continues=exp.continues,
            first=exp.first,
            best_by=best_epoch_by(launch.spec, launch.entry, compiled.base_config),
        )

    def restart_extension(self, launch: Launch, compiled: SearchPlan, table, provenance) -> None:
        """Nothing to add first: a search's rows come as its sampler proposes trials."""

    def extend(self, run_dir, spec, meta: RunInfo, opts: RunOptions, **how: Any):
        from orchestrator.extend import extend_search

        return extend_search(self, run_dir, spec, meta, opts, **how)

    def progress(self, launch: Launch, compiled: SearchPlan, meta: RunInfo, has_table: bool) -> Progress:
        """Tune restores the sampler (every trial Optuna has seen, its random state, the count
        of trials generated); ASHA's rungs are replayed from ``curves.csv``, and trials that
        waited at a rung wait again (``asha.PromotionASHA``)."""
        from reports.rundir.files import read_results

        total = meta.num_samples or compiled.num_samples  # an extended search's: more than its spec's
        df = read_results(launch.run_dir, meta) if has_table else None
        if df is None:
            return Progress(None, 0, total, started=False)
        ended = int((~df["status"].isin(UNFINISHED)).sum())
        return Progress(df, ended, total, started=not df.empty)


register_kind(Search())
