"""The study specification: what a YAML file in ``search_spaces/`` may say, validated once."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.errors import UserError, one_line

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


def _distinct_seeds(v: list[int]) -> list[int]:
    if len(set(v)) != len(v) or any(s < 0 for s in v):
        raise ValueError("seeds must be distinct non-negative integers")
    return v


Seeds = Annotated[list[int], AfterValidator(_distinct_seeds)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any) -> Any:
        """``num_samples: true`` is not 1 (pydantic's lax mode would take it so)."""
        from trainables.config_base import admits_bool  # (pydantic only)

        if isinstance(data, dict):
            for key, value in data.items():
                field = cls.model_fields.get(key)
                if isinstance(value, bool) and field is not None and not admits_bool(field.annotation):
                    raise ValueError(f"{key}: got the boolean {str(value).lower()} where a number is expected")
        return data


class QuickSpec(_Strict):
    """How ``--quick`` scales the study down to a smoke run."""

    seeds: list[int] | None = Field(None, min_length=1, description="seeds of the quick run")
    base: dict[str, Any] = Field(default_factory=dict, description="base-config overrides of the quick run")
    variants: list[str] | None = Field(None, min_length=1, description="subset of variants to run (ablation)")
    axes: dict[str, Any] | None = Field(None, min_length=1, description="the axes of the quick run (sensitivity)")


class ResourceSpec(_Strict):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_or_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("more than one GPU per trial must be a whole number")
        return v


class ReportSpec(_Strict):
    metrics: list[str] | None = Field(
        None, min_length=1, description="metrics in the tables (default: the study metric)"
    )
    test: Literal["auto", "paired_t", "welch", "wilcoxon"] = Field(
        "auto", description="auto: paired t-test over seeds when every row ran the reference's seeds, else Welch's"
    )
    recommend: bool = Field(
        True,
        description="sensitivity studies: mark the points not significantly worse than "
        "the best on the study metric (a recommendation: the metric must be "
        "a validation metric, val/...)",
    )


class _StudyBase(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    trainable: str
    metric: str = Field(description="the metric that ranks variants, e.g. eval/cross_domain/acc")
    mode: Literal["max", "min"]
    seeds: Seeds = Field(min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    report: ReportSpec = Field(default_factory=ReportSpec)
    quick: QuickSpec = Field(default_factory=QuickSpec)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    max_concurrent: int | None = Field(None, gt=0)
    max_failures: int = Field(0, ge=0, description="retries of a failed trial from its last checkpoint")

    def report_metrics(self) -> list[str]:
        return list(self.report.metrics or [self.metric])


class AblationSpec(_StudyBase):
    """A component ablation: every variant of the base config, each run with every seed."""

    kind: Literal["ablation"]
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    reference: str = Field(description="the variant every other one is compared with")

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [name for name in v if not re.match(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"variant names must match {NAME_PATTERN}: {bad}")
        return {name: dict(overrides or {}) for name, overrides in v.items()}

    @model_validator(mode="after")
    def _references(self) -> "AblationSpec":
        if self.reference not in self.variants:
            raise ValueError(f"reference {self.reference!r} is not one of the variants {list(self.variants)}")
        unknown = [v for v in (self.quick.variants or []) if v not in self.variants]
        if unknown:
            raise ValueError(f"quick.variants names unknown variants {unknown}")
        if self.quick.variants and self.reference not in self.quick.variants:
            raise ValueError("quick.variants must include the reference variant")
        if self.quick.axes is not None:
            raise ValueError("quick.axes belongs to sensitivity studies")
        return self

    def groups(self, *, quick: bool, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(variant, overrides) of every variant the run includes."""
        names = [v for v in self.variants if not quick or not self.quick.variants or v in self.quick.variants]
        return [(v, self.variants[v]) for v in names]


@dataclass(frozen=True)
class AxisPoint:
    """One point of a sensitivity axis: the values it sets and the trial group that runs it."""

    axis: str
    values: dict[str, Any]
    group: str
    is_base: bool

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={_show(v)}" for k, v in self.values.items())


def _show(v: Any) -> str:
    return "none" if v is None else str(v)


BASE_POINT = "base"


class SensitivitySpec(_StudyBase):
    """One factor at a time around the base config: every axis value x every seed.

    ``axes`` maps an axis name to a list of values of the config key of that name, or to a
    mapping ``{key: [values], key2: [values]}`` whose grid is the axis (e.g. two loss
    weights). The base config's value must be on every axis: each point is compared with it.
    """

    kind: Literal["sensitivity"]
    axes: dict[str, Any] = Field(min_length=1)

    @field_validator("axes")
    @classmethod
    def _axes(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {name: _parse_axis(name, values) for name, values in v.items()}

    @model_validator(mode="after")
    def _quick_axes(self) -> "SensitivitySpec":
        if self.quick.variants is not None:
            raise ValueError("quick.variants belongs to ablation studies; use quick.axes")
        if self.quick.axes is not None:
            object.__setattr__(self.quick, "axes", {n: _parse_axis(n, v) for n, v in self.quick.axes.items()})
            unknown = sorted(set(self.quick.axes) - set(self.axes))
            if unknown:
                raise ValueError(f"quick.axes names unknown axes {unknown}")
        return self

    def points(self, *, quick: bool, base: dict[str, Any]) -> list[AxisPoint]:
        """Every axis point, axis by axis; points equal to the base share the group ``base``."""
        axes = self.quick.axes if quick and self.quick.axes is not None else self.axes
        out = []
        for name, grid in axes.items():
            keys = list(grid)
            missing = [k for k in keys if k not in base]
            if missing:
                raise ValueError(
                    f"axis {name!r}: the base config must set {missing[0]} (one of the axis values), "
                    "so that every point can be compared with the base"
                )
            combos = list(itertools.product(*(grid[k] for k in keys)))
            base_combo = tuple(base[k] for k in keys)
            if base_combo not in combos:
                raise ValueError(f"axis {name!r}: the base value {dict(zip(keys, base_combo))} is not on the axis")
            for combo in combos:
                values = dict(zip(keys, combo))
                is_base = combo == base_combo
                group = BASE_POINT if is_base else ",".join(f"{k}={_show(v)}" for k, v in values.items())
                out.append(AxisPoint(name, values, group, is_base))
        return out

    def groups(self, *, quick: bool, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(point, overrides) of every distinct point, the base first."""
        out: dict[str, dict[str, Any]] = {BASE_POINT: {}}
        for p in self.points(quick=quick, base=base):
            if not p.is_base:
                out.setdefault(p.group, p.values)
        return list(out.items())


def _parse_axis(name: str, values: Any) -> dict[str, list]:
    if not re.match(NAME_PATTERN, name):
        raise ValueError(f"axis names must match {NAME_PATTERN}: {name!r}")
    grid = {name: values} if isinstance(values, list) else values
    if not isinstance(grid, dict) or not grid:
        raise ValueError(f"axis {name!r}: expected a list of values or a mapping key -> list of values")
    for key, vals in grid.items():
        if not isinstance(vals, list) or not vals:
            raise ValueError(f"axis {name!r}: {key} needs a non-empty list of values")
        if len({json.dumps(v, sort_keys=True) for v in vals}) != len(vals):
            raise ValueError(f"axis {name!r}: {key} repeats a value")
    return {k: list(v) for k, v in grid.items()}


class SchedulerSpec(_Strict):
    """How a search spends its iterations (``orchestrator.schedulers``): ``asha`` (default),
    early stopping by promotion (``orchestrator.asha``, Li et al.), in training iterations
    (epochs): at each rung a trial waits, paused, until it is among the best
    ``1/reduction_factor`` of the trials that reached the rung; ``fifo``: every trial runs
    to ``max_t`` (grace period and reduction factor unused)."""

    type: Literal["asha", "fifo"] = Field("asha", description="the scheduler (orchestrator/schedulers.py)")
    max_t: int | None = Field(None, gt=0, description="iterations of a full trial (default: the base config's epochs)")
    grace_period: int = Field(1, gt=0, description="iterations every trial gets before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1, description="1/reduction_factor of the trials go on at each rung (eta)")


class ConfirmSpec(_Strict):
    """``run confirm --from DIR``: the best completed configs of the search, and the base
    config, rerun to completion with these seeds and tested against the base."""

    top_k: int = Field(3, gt=0, description="best completed configs to rerun (the base config is always rerun)")
    seeds: Seeds = Field(
        [1, 2, 3, 4, 5],
        min_length=2,
        description="seeds of the reruns; seeds other than the search's keep the luck "
        "that made a config win out of the test that confirms it",
    )


class SearchQuickSpec(_Strict):
    seeds: list[int] | None = Field(None, min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    num_samples: int | None = Field(None, gt=0)
    scheduler: SchedulerSpec | None = None
    confirm: ConfirmSpec | None = None


class SearchSpec(_StudyBase):
    """Optuna TPE through Ray Tune's OptunaSearch, ASHA early stopping; the base config first.

    Every trial runs with the first of ``seeds``; ``run confirm`` reruns the best ones with
    several seeds.
    """

    kind: Literal["search"]
    space: dict[str, Any] = Field(min_length=1)
    num_samples: int = Field(
        gt=0,
        le=10_000,
        description="trials to sample (the base config is the first); at "
        "most 10000 (a typo such as 1e9 would never end)",
    )
    search_seed: int = Field(0, ge=0, description="seed of the Optuna sampler")
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    top_k: int = Field(5, gt=0, description="rows of the report's top-k table")
    confirm: ConfirmSpec = Field(default_factory=ConfirmSpec)
    quick: SearchQuickSpec = Field(default_factory=SearchQuickSpec)

    @field_validator("space")
    @classmethod
    def _space(cls, v: dict[str, Any]) -> dict[str, Any]:
        from reports.rundir.space import SearchSpaceError, parse_space

        try:
            parse_space(v)
        except SearchSpaceError as err:
            raise ValueError(str(err)) from None
        return v


StudySpec = Annotated[Union[AblationSpec, SensitivitySpec, SearchSpec], Field(discriminator="kind")]
_STUDY_ADAPTER = TypeAdapter(StudySpec)
STUDY_KINDS = ("ablation", "sensitivity", "search")


def format_validation_error(err: ValidationError, *, where: str) -> str:
    """The first problem of a pydantic error as one line: ``where: key.path: message (got value)``."""
    first = err.errors()[0]
    parts = list(first["loc"])
    if parts and parts[0] in STUDY_KINDS:  # the union's tag, not a key the user wrote
        parts = parts[1:]
    loc = ".".join(str(p) for p in parts) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return one_line(f"{where}: {loc}: {msg}{shown}{more}")


def parse_spec(data: Any, *, source: str) -> StudySpec:
    if not isinstance(data, dict):
        raise UserError(f"{source}: a study spec must be a YAML mapping, got {type(data).__name__}")
    if data.get("kind") not in STUDY_KINDS:
        raise UserError(f"{source}: kind: expected one of {', '.join(STUDY_KINDS)} (got {data.get('kind')!r})")
    try:
        return _STUDY_ADAPTER.validate_python(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where=source)) from None
