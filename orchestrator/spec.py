"""The study specification: what a YAML file in ``search_spaces/`` may say, validated once."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from orchestrator.errors import UserError, one_line

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuickSpec(_Strict):
    """How ``--quick`` scales the study down to a smoke run."""

    seeds: list[int] | None = Field(None, min_length=1, description="seeds of the quick run")
    base: dict[str, Any] = Field(default_factory=dict, description="base-config overrides of the quick run")
    variants: list[str] | None = Field(None, min_length=1, description="subset of variants to run")


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
    metrics: list[str] | None = Field(None, min_length=1, description="metrics in the tables (default: the study metric)")


class StudySpec(_Strict):
    """A component ablation: every variant of the base config, each run with every seed."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["ablation"]
    description: str = ""
    trainable: str
    metric: str = Field(description="the metric that ranks variants, e.g. eval/cross_domain/acc")
    mode: Literal["max", "min"]
    seeds: list[int] = Field(min_length=1)
    base: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(min_length=1)
    reference: str = Field(description="the variant every other one is compared with")
    report: ReportSpec = Field(default_factory=ReportSpec)
    quick: QuickSpec = Field(default_factory=QuickSpec)
    resources: ResourceSpec = Field(default_factory=ResourceSpec)
    max_concurrent: int | None = Field(None, gt=0)
    max_failures: int = Field(0, ge=0, description="retries of a failed trial from its last checkpoint")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError("seeds must be distinct non-negative integers")
        return v

    @field_validator("variants")
    @classmethod
    def _variant_names(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        import re

        bad = [name for name in v if not re.match(NAME_PATTERN, name)]
        if bad:
            raise ValueError(f"variant names must match {NAME_PATTERN}: {bad}")
        return {name: dict(overrides or {}) for name, overrides in v.items()}

    @model_validator(mode="after")
    def _references(self) -> "StudySpec":
        if self.reference not in self.variants:
            raise ValueError(f"reference {self.reference!r} is not one of the variants {list(self.variants)}")
        unknown = [v for v in (self.quick.variants or []) if v not in self.variants]
        if unknown:
            raise ValueError(f"quick.variants names unknown variants {unknown}")
        if self.quick.variants and self.reference not in self.quick.variants:
            raise ValueError("quick.variants must include the reference variant")
        return self

    def report_metrics(self) -> list[str]:
        return list(self.report.metrics or [self.metric])


def format_validation_error(err: ValidationError, *, where: str) -> str:
    """The first problem of a pydantic error as one line: ``where: key.path: message (got value)``."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
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
    try:
        return StudySpec.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where=source)) from None
