"""The ablation: every variant of the base config x every seed, each compared with the
declared reference variant (it chooses nothing: the reference is given)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.kinds.base import register_kind
from orchestrator.kinds.grid import GridKind
from orchestrator.spec import NAME_PATTERN, StudyBase


class AblationSpec(StudyBase):
    """A component ablation: every variant of the base config, each run with every seed."""

    kind: Literal["ablation"]
    unit: ClassVar[str] = "variant"
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
        unnamed = [v for v in self.report.names if v not in self.variants]
        if unnamed:
            raise ValueError(f"report.names names unknown variants {unnamed}; the variants: {list(self.variants)}")
        return self

    def _quick_update(self) -> dict[str, Any]:
        keep = self.quick.variants or list(self.variants)
        return {
            **super()._quick_update(),
            "variants": {v: o for v, o in self.variants.items() if v in keep},
            "report": self.report.model_copy(
                update={"names": {v: n for v, n in self.report.names.items() if v in keep}}
            ),
        }

    def groups(self, *, quick: bool, base: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(variant, overrides) of every variant the run includes."""
        names = [v for v in self.variants if not quick or not self.quick.variants or v in self.quick.variants]
        return [(v, self.variants[v]) for v in names]


class Ablation(GridKind):
    name = "ablation"
    spec_model = AblationSpec
    group_column = "variant"

    def facts(self, spec, compiled, opts) -> dict[str, Any]:
        return {**super().facts(spec, compiled, opts), "reference": spec.reference}


register_kind(Ablation())
