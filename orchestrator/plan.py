"""Compiling a study spec into the list of trials to run (before any Ray work)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from orchestrator.errors import UserError
from orchestrator.spec import StudySpec, format_validation_error
from trainables import TrainableEntry, get_trainable


@dataclass(frozen=True)
class TrialPlan:
    """One trial: a variant (ablation) or point (sensitivity) of the base config, with one seed."""

    index: int
    variant: str
    """The trial's group: its variant (ablation) or point (sensitivity, e.g. ``lora_rank=16``)."""
    seed: int
    config: dict[str, Any]
    """The trainable's full, validated config (JSON types)."""

    @property
    def name(self) -> str:
        """``<variant>_seed<k>``; a point's ``=`` and ``,`` become ``-`` and ``+`` (safe in file names)."""
        return f"{self.variant.replace('=', '-').replace(',', '+')}_seed{self.seed}"

    @property
    def config_hash(self) -> str:
        return config_hash(self.config)


def config_hash(config: dict[str, Any]) -> str:
    """Hash of a config without its seed: trials that differ only in seed share it."""
    payload = json.dumps({k: v for k, v in config.items() if k != "seed"}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["lr=1e-3", "lora_targets=[qkv, proj]"]`` -> dict, values read as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            raise UserError(f"--set {pair!r}: the value does not parse") from None
    return out


def resolve_trainable(spec: StudySpec) -> TrainableEntry:
    try:
        return get_trainable(spec.trainable)
    except KeyError as err:
        raise UserError(str(err.args[0])) from None


def compile_plan(spec: StudySpec, *, quick: bool = False, overrides: dict[str, Any] | None = None,
                 warn=print) -> list[TrialPlan]:
    """Every (variant, seed) trial with its validated config; bad configs raise UserError."""
    entry = resolve_trainable(spec)
    known = set(entry.config_cls.model_fields)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(f"--set {unknown[0]}: unknown key for trainable {entry.name!r} (known: {', '.join(sorted(known))})")
    if spec.kind == "sensitivity":
        for axis, grid in ((spec.quick.axes if quick and spec.quick.axes else spec.axes) or {}).items():
            bad = sorted(set(grid) - known)
            if bad:
                raise UserError(f"study {spec.name!r}: axis {axis!r} names {bad[0]}, not a key of trainable "
                                f"{entry.name!r}")
    base = {**spec.base, **(spec.quick.base if quick else {}), **overrides}
    seeds = (spec.quick.seeds or spec.seeds) if quick else spec.seeds
    try:
        groups = spec.groups(quick=quick, base=base)
    except ValueError as err:
        raise UserError(f"study {spec.name!r}: {err}") from None
    what = "variant" if spec.kind == "ablation" else "point"
    plans: list[TrialPlan] = []
    for group, changes in groups:
        shadowed = sorted(set(overrides) & set(changes))
        if shadowed:
            warn(f"note: {what} {group!r} sets {', '.join(shadowed)} itself; --set does not change it there")
        for seed in seeds:
            raw = {**base, **changes, "seed": seed}
            try:
                cfg = entry.config_cls.model_validate(raw)
            except ValidationError as err:
                raise UserError(format_validation_error(err, where=f"{what} {group!r}")) from None
            plans.append(TrialPlan(len(plans), group, seed, cfg.model_dump(mode="json")))
    return plans
