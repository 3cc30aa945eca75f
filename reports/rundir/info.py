"""``run.json`` as a typed model: what a run records of its study, read as attributes.

The orchestrator writes it (``write_run_info``: the one writer) when a run starts, when it is
resumed and when it is extended; ``status``, ``report``, ``resume``, ``confirm``, ``export``
and the Python API read it (``reports.rundir.files.read_run_info``). Every field is declared
here once, with its type and the value a run made before the field existed is read with, so
that no reader keeps a default of its own. Fields a later version adds are kept as they are
(``extra="allow"``), so that an older tool rewriting the file does not drop them.

pydantic validates the shapes (a field edited to another type is refused in one line by the
reader, not a traceback deep in the report); the few facts that span fields (a reference
that is one of the variants) are checked by ``read_run_info``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

Direction = Literal["max", "min"]


def _number(value: Any) -> float:
    """A JSON number (pydantic's float would also take ``true`` and ``"0.5"``, which this tool never writes)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a number")
    return float(value)


Number = Annotated[float, BeforeValidator(_number)]


class _Record(BaseModel):
    """A part of run.json: typed where readers use it, anything else kept as written."""

    model_config = ConfigDict(
        extra="allow", populate_by_name=True, validate_assignment=True, ser_json_inf_nan="constants"
    )


class Driver(_Record):
    """The process that runs (or ran) the study: ``status`` asks whether it still lives."""

    pid: StrictInt | None = None
    host: StrictStr | None = None


class Resources(_Record):
    """What each trial was given (``--cpus-per-trial``, ``--gpus-per-trial``, or the spec's)."""

    cpus_per_trial: Number | None = None
    gpus_per_trial: Number | None = None


class Scheduler(_Record):
    """A search's scheduler: ASHA's budget and its rungs (the report's figures draw them)."""

    type: StrictStr = "asha"
    max_t: StrictInt | None = None
    grace_period: StrictInt | None = None
    reduction_factor: Number | None = None
    rungs: list[StrictInt] | None = None
    """None: a run made before the rungs were recorded (computed from the three fields above)."""


class AxisPoint(_Record):
    """One point of a sensitivity axis: its label, the values it sets, its group, whether it is the base."""

    label: StrictStr
    values: dict[str, Any] = {}
    point: StrictStr
    base: StrictBool = False


class Candidate(_Record):
    """A configuration a confirm run took from its search: its variant, trial and search value."""

    variant: StrictStr
    trial: StrictStr
    search_value: Number
    changes: dict[str, Any] = {}


class Extension(_Record):
    """What one ``extend`` added: its Tune folder, its spec file, and (a grid) its trials or
    (a search) the samples it added and the experiment whose sampler it continued."""

    tune_dir: StrictStr
    spec: StrictStr | None = None
    trials: list[StrictStr] | None = None
    seeds: list[StrictInt] = []
    groups: list[StrictStr] = []
    samples: StrictInt | None = None
    continues: StrictStr | None = None
    first: StrictInt = 0
    at: StrictStr | None = None
    command: list[StrictStr] = []


class Resumed(_Record):
    """One ``resume``: when, and how many trials it had left."""

    at: StrictStr
    trials_left: StrictInt


class RunInfo(_Record):
    """``run.json``. The first four fields are required (a file without them is not a run of
    this tool); every other one has the value runs made before it was recorded are read with."""

    study: StrictStr
    kind: StrictStr
    metric: StrictStr
    mode: Direction

    trainable: StrictStr = ""
    title: StrictStr | None = None
    description: StrictStr | None = None
    label: StrictStr | None = None
    """The LaTeX label prefix, recorded when the run started (``names.run_label`` of its folder otherwise)."""

    # what the report states and tests
    report_metrics: list[StrictStr] = []
    """Every metric the report tabulates; ``[metric]`` for a run made before it was recorded."""
    main_metrics: list[StrictStr] = []
    test: StrictStr = "auto"
    family: StrictStr = "table"
    alpha: Number = Field(0.05, gt=0, lt=1)
    min_effect: Number | None = Field(None, gt=0, allow_inf_nan=False)
    interval: StrictStr = "t"
    names: dict[str, StrictStr] = {}
    metric_directions: dict[str, Direction] = {}
    """Which way each metric is better, as the trainable declared it; for a run made before it
    was recorded (or a metric it records none for) by the old rule of names."""
    metric_names: dict[str, StrictStr] = {}
    """What tables and figures call each metric, as the trainable declared it (a run made before
    it was recorded, or a metric it records none for: ``metric_label``'s rule of the key)."""
    recommend: StrictBool = True
    selects: StrictBool = False
    synthetic: StrictBool | None = None
    """Whether every trial read the embedded synthetic data (None: a run made before it was recorded)."""
    best_epoch_by: StrictStr | None = None
    """Which metric chose each trial's kept epoch ("" the last epoch; None: none kept)."""

    # the trials
    variants: list[StrictStr] | None = None
    reference: StrictStr | None = None
    seeds: list[StrictInt] | None = None
    group_column: StrictStr | None = None
    axes: dict[str, list[AxisPoint]] | None = None
    space: dict[str, Any] | None = None
    num_samples: StrictInt | None = None
    top_k: StrictInt = 5
    scheduler: Scheduler | None = None

    # a confirm run: what it took from its search
    from_dir: StrictStr | None = Field(None, alias="from")
    search_study: StrictStr | None = None
    base_trial: StrictStr | None = None
    base_search_value: Number | None = None
    search_seeds: list[StrictInt] = []
    candidates: list[Candidate] = []
    search_metric: StrictStr | None = None

    # how it ran
    quick: StrictBool = False
    overrides: list[StrictStr] = []
    resources: Resources = Resources()
    max_concurrent: StrictInt | None = None
    command: list[StrictStr] = []
    started_at: StrictStr | None = None
    driver: Driver = Driver()
    resumed: list[Resumed] = []
    extensions: list[Extension] = []
    tracking: dict[str, Any] = {}
    """The experiment trackers the trials are written to (the spec's ``tracking`` with
    ``--track`` in place of its backends); empty: none."""

    @model_validator(mode="after")
    def _defaults_from_fields(self) -> RunInfo:
        """A run made before ``report_metrics`` or ``metric_directions`` were recorded: its study
        metric alone, each direction by the old rule of names (``names.direction_by_name``)."""
        from reports.rundir.names import direction_by_name

        if not self.report_metrics:
            self.__dict__["report_metrics"] = [self.metric]
        recorded = self.metric_directions
        wanted = dict.fromkeys([self.metric, *self.report_metrics])
        if any(m not in recorded for m in wanted):
            self.__dict__["metric_directions"] = {**{m: direction_by_name(m) for m in wanted}, **recorded}
        return self

    # derived facts every reader asks the same way
    @property
    def chosen_by(self) -> str:
        """The metric a confirm run's configs were chosen by (its search's), else the study metric."""
        return self.search_metric or self.metric

    @property
    def group(self) -> str:
        """The column of results.csv that names a trial's group (recorded, else the kind's)."""
        from reports.rundir.names import group_column

        return self.group_column or group_column(self.kind)

    @property
    def latest_extension(self) -> Extension | None:
        return self.extensions[-1] if self.extensions else None

    def direction(self, metric: str) -> Direction:
        """``max`` or ``min`` for a metric of the run (the old rule of names for one it never reported)."""
        from reports.rundir.names import direction_by_name

        return self.metric_directions.get(metric) or direction_by_name(metric)  # type: ignore[return-value]

    def metric_name(self, metric: str) -> str:
        """What a table or figure calls ``metric``: the trainable's name, else from the key."""
        from reports.rundir.names import metric_label

        return self.metric_names.get(metric) or metric_label(metric)

    def label_prefix(self, run_dir: Path) -> str:
        """The LaTeX label prefix: as recorded, else from the run folder's name."""
        from reports.rundir.names import run_label

        return self.label or run_label(Path(run_dir).name)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, by_alias=True)


def write_run_info(run_dir: Path, info: RunInfo) -> None:
    """The one writer of ``run.json``: replaced atomically, its digest recorded
    (``files.write_checked``)."""
    from reports.rundir.files import write_checked
    from reports.rundir.names import RUN_FILE

    write_checked(run_dir, RUN_FILE, RunInfo.model_validate(info.model_dump(by_alias=True)).to_json())


__all__ = [
    "AxisPoint",
    "Candidate",
    "Driver",
    "Extension",
    "Resources",
    "Resumed",
    "RunInfo",
    "Scheduler",
    "write_run_info",
]
