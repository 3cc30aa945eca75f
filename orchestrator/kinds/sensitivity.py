"""The sensitivity study: one factor at a time around the base config, every axis point x
every seed, each compared with the base point; it marks (recommends) the points not worse
than the best, on validation identities, unless ``report.recommend: false``."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.kinds.base import register_kind
from orchestrator.kinds.grid import GridKind
from orchestrator.plan import parse_overrides
from orchestrator.spec import NAME_PATTERN, StudyBase


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


class SensitivitySpec(StudyBase):
    """One factor at a time around the base config: every axis value x every seed.

    ``axes`` maps an axis name to a list of values of the config key of that name, or to a
    mapping ``{key: [values], key2: [values]}`` whose grid is the axis (e.g. two loss
    weights). The base config's value must be on every axis: each point is compared with it.
    """

    kind: Literal["sensitivity"]
    unit: ClassVar[str] = "point"
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

    @model_validator(mode="after")
    def _names_name_points(self) -> "SensitivitySpec":
        """``report.names`` renames points (a table's row), by the point's name as results.csv
        has it: ``lr=0.001`` (``k1=v1,k2=v2`` on a grid axis), or ``base``."""
        known = {BASE_POINT}
        for name, grid in self.axes.items():
            for combo in itertools.product(*grid.values()):
                known.add(",".join(f"{k}={_show(v)}" for k, v in zip(grid, combo)))
        unnamed = sorted(set(self.report.names) - known)
        if unnamed:
            raise ValueError(
                f"report.names names {unnamed[0]!r}, not a point of this study (points are named "
                f"like {sorted(known - {BASE_POINT})[0]!r}, or {BASE_POINT!r})"
            )
        return self

    def chooses(self) -> str:
        return (
            "a sensitivity study marks the points not worse than the best by its metric"
            if self.report.recommend
            else ""
        )

    def opt_out(self) -> str:
        return " (or report.recommend: false to mark nothing)"

    def _quick_update(self) -> dict[str, Any]:
        return {**super()._quick_update(), **({"axes": self.quick.axes} if self.quick.axes is not None else {})}

    def check_keys(self, known: set[str], *, quick: bool, trainable: str) -> None:
        for axis, grid in ((self.quick.axes if quick and self.quick.axes else self.axes) or {}).items():
            bad = sorted(set(grid) - known)
            if bad:
                raise ValueError(f"axis {axis!r} names {bad[0]}, not a key of trainable {trainable!r}")

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


class Sensitivity(GridKind):
    name = "sensitivity"
    spec_model = SensitivitySpec
    group_column = "point"

    def facts(self, spec, compiled, opts) -> dict[str, Any]:
        """Each axis with its points (label, values, trial group, whether it is the base)."""
        base = {**spec.base, **(spec.quick.base if opts.quick else {}), **parse_overrides(opts.set)}
        axes: dict[str, list] = {}
        for point in spec.points(quick=opts.quick, base=base):
            axes.setdefault(point.axis, []).append(
                {"label": point.label, "values": point.values, "point": point.group, "base": point.is_base}
            )
        return {**super().facts(spec, compiled, opts), "axes": axes, "reference": BASE_POINT}


register_kind(Sensitivity())
