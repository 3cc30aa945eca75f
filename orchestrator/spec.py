"""The common part of every study spec: what any YAML file in ``search_spaces/`` may say,
validated once. Each study kind adds its own fields in its module (``orchestrator/kinds/``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from orchestrator.errors import one_line

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$"


def _distinct_seeds(v: list[int]) -> list[int]:
    if len(set(v)) != len(v) or any(s < 0 for s in v):
        raise ValueError("seeds must be distinct non-negative integers")
    return v


Seeds = Annotated[list[int], AfterValidator(_distinct_seeds)]

#: The most trials one search may sample; a typo such as 1e9 would never end.
MAX_SAMPLES = 10_000


def _display_name(v: dict[str, str]) -> dict[str, str]:
    """What a table cell and a figure label can hold: one line of printable text."""
    for key, shown in v.items():
        if not shown.strip() or not shown.isprintable() or len(shown) > 60:
            raise ValueError(
                f"report.names: the name of {key!r} ({shown!r}) must be one line of printable text, "
                "1 to 60 characters (no line break or tab)"
            )
    return v


class Strict(BaseModel):
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


class QuickSpec(Strict):
    """How ``--quick`` scales the study down to a smoke run."""

    seeds: Seeds | None = Field(None, min_length=1, description="seeds of the quick run")
    base: dict[str, Any] = Field(default_factory=dict, description="base-config overrides of the quick run")
    variants: list[str] | None = Field(None, min_length=1, description="subset of variants to run (ablation)")
    axes: dict[str, Any] | None = Field(None, min_length=1, description="the axes of the quick run (sensitivity)")


class ResourceSpec(Strict):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_or_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("more than one GPU per trial must be a whole number")
        return v


class ReportSpec(Strict):
    metrics: list[str] | None = Field(
        None, min_length=1, description="metrics in the tables (default: the study metric)"
    )
    test: Literal["auto", "paired_t", "welch", "wilcoxon", "sign_flip"] = Field(
        "auto",
        description="auto: paired t-test over seeds when every row ran the reference's seeds, else Welch's; "
        "sign_flip: the exact sign-flip permutation test over seeds (no normality assumed; p >= 2/2^n)",
    )
    interval: Literal["t", "bootstrap"] = Field(
        "t",
        description="the interval of each difference: t, or bootstrap (BCa over seeds, 9999 resamples, "
        "fixed seed; too narrow under 10 seeds, and the report says so)",
    )
    main_metrics: list[str] | None = Field(
        None,
        min_length=1,
        description="the metrics of the paper's main table, one column wide (default: the study "
        "metric and the next of report.metrics); every metric is in the full table",
    )
    family: Literal["primary", "per_metric", "table"] = Field(
        "primary",
        description="the comparisons Holm's adjustment runs over: primary (the study metric's "
        "comparisons; each other metric is a secondary family of its own), per_metric (every metric "
        "its own family) or table (every comparison of the table together)",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="family-wise error rate of stars, intervals and power")
    min_effect: float | None = Field(
        None,
        gt=0,
        allow_inf_nan=False,
        description="the smallest difference in the study metric that matters (e.g. 0.005): the "
        "report says how many seeds would detect it",
    )
    label: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="prefix of every LaTeX label (default: the run directory's name), so that two "
        "runs' tables can go into one paper",
    )
    names: Annotated[dict[str, str], AfterValidator(_display_name)] = Field(
        default_factory=dict,
        description="how rows are shown in tables and figures, e.g. {da_lora: 'DA-LoRA (full)'}",
    )
    recommend: bool = Field(
        True,
        description="sensitivity studies: mark the points not significantly worse than "
        "the best on the study metric (a recommendation: the metric must be "
        "a validation metric, val/...)",
    )


class TrackingSpec(Strict):
    """The experiment trackers a run also writes to (``orchestrator.tracking``); none by default."""

    backends: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="trackers written per trial, in the run's tracking/ folder: tensorboard, wandb, mlflow "
        "(--track on the command line takes their place)",
    )
    wandb_project: str | None = Field(None, description="the W&B project (default: the study's name)")
    wandb_mode: Literal["auto", "offline", "online"] = Field(
        "auto", description="auto: online when a W&B key is configured, else offline (wandb sync uploads later)"
    )
    mlflow_uri: str | None = Field(
        None, description="the MLflow tracking URI (default: sqlite:/// in the run's tracking/ folder)"
    )

    @field_validator("backends")
    @classmethod
    def _once_each(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each tracker once")
        return v


class StudyBase(Strict):
    name: str = Field(pattern=NAME_PATTERN)
    title: str = Field("", description="what the study shows, for captions (default: its kind)")
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
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    kind: str
    #: What one group of trials is called in messages (an ablation's variant, a sensitivity point).
    unit: ClassVar[str] = "variant"

    @model_validator(mode="after")
    def _main_metrics_are_reported(self) -> "StudyBase":
        unknown = [m for m in self.report.main_metrics or [] if m not in self.report_metrics()]
        if unknown:
            raise ValueError(f"report.main_metrics names metrics not in report.metrics: {unknown}")
        return self

    def report_metrics(self) -> list[str]:
        return list(self.report.metrics or [self.metric])

    def chooses(self) -> str:
        """How the study chooses by its metric, in words ("a search ranks ... by its metric"),
        or "" when it chooses nothing: a study that chooses must choose on validation
        identities (``plan.check_metrics``)."""
        return ""

    def opt_out(self) -> str:
        """How to make the study choose nothing instead, for the refusal's hint ("" if it cannot)."""
        return ""

    def check_keys(self, known: set[str], *, quick: bool, trainable: str) -> None:
        """Refuse (ValueError) kind-specific keys that name no config key of the trainable."""

    def groups(self, *, quick: bool, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(group, overrides of the base config) of every group of trials, for a kind whose
        trials are a fixed grid (``orchestrator.kinds.grid``); a search has none."""
        raise NotImplementedError(f"a {self.kind} study has no fixed groups of trials")

    def quick_form(self) -> "StudyBase":
        """The study as ``--quick`` runs it: the quick seeds and base overrides (and each kind's
        own quick fields) in place of the full study's, ``quick`` emptied. What ``load_run``
        gives for a quick run, so that ``spec.seeds`` are the seeds that ran."""
        return self.model_copy(update=self._quick_update())

    def _quick_update(self) -> dict[str, Any]:
        q = self.quick
        return {
            "seeds": list(q.seeds or self.seeds),
            "base": {**self.base, **q.base},
            "quick": type(q)(),
        }


#: Any study kind's spec; the kinds are in ``orchestrator.kinds``.
StudySpec = StudyBase


def format_validation_error(err: ValidationError, *, where: str) -> str:
    """The first problem of a pydantic error as one line: ``where: key.path: message (got value)``."""
    first = err.errors()[0]
    parts = list(first["loc"])
    loc = ".".join(str(p) for p in parts) or "(top level)"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    got = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") or isinstance(got, dict) else f" (got {got!r})"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return one_line(f"{where}: {loc}: {msg}{shown}{more}")
