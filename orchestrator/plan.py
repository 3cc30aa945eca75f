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


def _checked_overrides(entry: TrainableEntry, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``--set`` values, refused in one line when a key is not the trainable's."""
    known = set(entry.config_cls.model_fields)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(f"--set {unknown[0]}: unknown key for trainable {entry.name!r} (known: {', '.join(sorted(known))})")
    return overrides


def compile_plan(spec: StudySpec, *, quick: bool = False, overrides: dict[str, Any] | None = None,
                 warn=print) -> list[TrialPlan]:
    """Every (variant, seed) trial with its validated config; bad configs raise UserError."""
    entry = resolve_trainable(spec)
    known = set(entry.config_cls.model_fields)
    overrides = _checked_overrides(entry, overrides)
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


@dataclass(frozen=True)
class SearchPlan:
    """A search study, compiled: the space, the base config (valid), and the ASHA settings."""

    params: list
    base: dict[str, Any]
    """The base config as given (before the trainable's defaults), plus the seed."""
    base_config: dict[str, Any]
    """The base config, validated by the trainable (JSON types): the first trial's config."""
    seed: int
    num_samples: int
    search_seed: int
    max_t: int
    grace_period: int
    reduction_factor: float

    def full_config(self, entry: TrainableEntry, sampled: dict[str, Any]) -> dict[str, Any]:
        """The validated config of a trial from the values Optuna sampled (raises ValidationError)."""
        from orchestrator.search_space import sampled_config

        return entry.config_cls.model_validate(sampled_config(self.params, self.base, sampled)).model_dump(mode="json")


def compile_search(spec, *, quick: bool = False, overrides: dict[str, Any] | None = None) -> SearchPlan:
    """Check a search study before any Ray work: space keys, base config, scheduler."""
    from orchestrator.search_space import parse_space

    entry = resolve_trainable(spec)
    known = set(entry.config_cls.model_fields)
    overrides = _checked_overrides(entry, overrides)
    params = parse_space(spec.space)
    bad = [p.name for p in params if p.name not in known]
    bad += [k for p in params for k, _, _ in p.when if k not in known]
    if bad:
        raise UserError(f"study {spec.name!r}: space names {bad[0]}, not a key of trainable {entry.name!r}")
    q = spec.quick if quick else None
    seed = ((q.seeds if q and q.seeds else None) or spec.seeds)[0]
    base = {**spec.base, **(q.base if q else {}), **overrides, "seed": seed}
    try:
        base_config = entry.config_cls.model_validate(base).model_dump(mode="json")
    except ValidationError as err:
        raise UserError(format_validation_error(err, where="base")) from None
    if base_config.get("eval_every", 1) != 1:
        raise UserError(f"study {spec.name!r}: a search needs eval_every: 1 (ASHA compares trials at every iteration)")
    sched = (q.scheduler if q and q.scheduler else None) or spec.scheduler
    max_t = sched.max_t or int(base_config.get("epochs", 1))
    if sched.grace_period > max_t:
        raise UserError(f"study {spec.name!r}: scheduler.grace_period {sched.grace_period} exceeds max_t {max_t}")
    return SearchPlan(params, base, base_config, seed, (q.num_samples if q and q.num_samples else None) or spec.num_samples,
                      spec.search_seed, max_t, sched.grace_period, sched.reduction_factor)
