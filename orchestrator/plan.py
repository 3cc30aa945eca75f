"""Compiling a study spec into the list of trials to run (before any Ray work)."""

from __future__ import annotations

import difflib
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
    if "seed" in overrides:
        raise UserError(
            "--set seed: each trial's seed comes from the study's seeds (the spec's list, e.g. seeds: [0, 1, 2]); "
            "--set seed would change nothing"
        )
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UserError(
            f"--set {unknown[0]}: unknown key for trainable {entry.name!r} (known: {', '.join(sorted(known))})"
        )
    return overrides


#: Metric namespaces: validation identities (held out of training; every choice is made on
#: them) and test identities (only reported, for what was chosen).
VALIDATION, TEST = "val/", "eval/"


def selects(spec: StudySpec) -> bool:
    """Does the study choose by its metric? A search ranks, samples and promotes by it; a
    sensitivity study marks (recommends) the points not worse than the best, unless
    ``report.recommend: false``. An ablation chooses nothing (its reference is declared).
    Each kind's spec says so itself (``chooses``)."""
    return bool(spec.chooses())


def _nearest(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    return f"; nearest: {', '.join(close)}" if close else f"; it reports e.g. {', '.join(sorted(known)[:3])}"


def validation_counterpart(metric: str, known: set[str]) -> str | None:
    """``val/x`` for a test metric ``eval/x`` where the trainable reports it."""
    if metric.startswith(TEST) and VALIDATION + metric[len(TEST) :] in known:
        return VALIDATION + metric[len(TEST) :]
    return None


def test_counterpart(metric: str, known: set[str]) -> str | None:
    """``eval/x`` for a validation metric ``val/x`` where the trainable reports it."""
    if metric.startswith(VALIDATION) and TEST + metric[len(VALIDATION) :] in known:
        return TEST + metric[len(VALIDATION) :]
    return None


def best_epoch_by(spec: StudySpec, entry: TrainableEntry, config: dict[str, Any]) -> str | None:
    """What each trial's best epoch is chosen by (``"val/x:max"``), for a trainable that keeps
    it: the study metric when it is a validation metric, else its validation counterpart,
    else the first validation metric of the report's; "" when the trial reports none (the
    last epoch is then its model); None for a trainable that keeps no best epoch. Never a
    test metric: the model a user takes out is chosen on validation identities."""
    if not entry.keeps_best:
        return None
    from reports.ablation import metric_mode

    known = set(entry.reported_keys(config))
    counterpart = validation_counterpart(spec.metric, known)
    candidates = [spec.metric, counterpart, *spec.report_metrics()]
    metric = next((m for m in candidates if m and m.startswith(VALIDATION) and m in known), None)
    if metric is None:
        return ""
    declared = {metric: way} if (way := entry.direction(metric)) else None
    mode = (
        spec.mode
        if metric == counterpart
        else metric_mode(metric, primary=spec.metric, mode=spec.mode, directions=declared)
    )
    return f"{metric}:{mode}"


def check_metrics(
    spec: StudySpec, entry: TrainableEntry, configs: list[dict[str, Any]], groups: list[str] | None = None
) -> None:
    """Refuse, before anything runs, a study metric that some trial would not report, a
    report metric that no trial reports, and a study that chooses by a test metric."""
    if entry.metric_keys is None or not configs:
        return
    keysets = [set(entry.reported_keys(c)) for c in configs]
    every, some = set.intersection(*keysets), set.union(*keysets)
    where = f"study {spec.name!r}"
    if spec.metric not in every:
        if spec.metric in some:
            lacking = next((g for g, k in zip(groups or [], keysets) if spec.metric not in k), "some trial")
            raise UserError(
                f"{where}: metric {spec.metric} is not reported by {lacking!s} (of trainable "
                f"{entry.name!r}); the study metric must be one that every trial reports"
            )
        raise UserError(
            f"{where}: metric {spec.metric} is not a metric of trainable {entry.name!r}" + _nearest(spec.metric, every)
        )
    for m in spec.report_metrics():
        if m not in some:
            raise UserError(
                f"{where}: report.metrics names {m}, not a metric of trainable {entry.name!r}" + _nearest(m, some)
            )
    if selects(spec) and not spec.metric.startswith(VALIDATION):
        what = spec.chooses()
        use = validation_counterpart(spec.metric, every) or next(
            (k for k in sorted(every) if k.startswith(VALIDATION)), None
        )
        hint = (
            f": use {use}"
            if use
            else (": this trainable reports no validation metric for this config (give it validation identities)")
        )
        hint += spec.opt_out()
        raise UserError(
            f"{where}: metric {spec.metric} is not a validation metric (val/...); {what}, and a "
            f"choice made on the test identities biases every number reported for it{hint}"
        )


def compile_plan(
    spec: StudySpec,
    *,
    quick: bool = False,
    overrides: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    warn=print,
) -> list[TrialPlan]:
    """Every (variant, seed) trial with its validated config; bad configs raise UserError.
    ``seeds``: the run's seeds where they are no longer the spec's (an extended run's)."""
    entry = resolve_trainable(spec)
    known = set(entry.config_cls.model_fields)
    overrides = _checked_overrides(entry, overrides)
    try:
        spec.check_keys(known, quick=quick, trainable=entry.name)
    except ValueError as err:
        raise UserError(f"study {spec.name!r}: {err}") from None
    base = {**spec.base, **(spec.quick.base if quick else {}), **overrides}
    if seeds is None:
        seeds = (spec.quick.seeds or spec.seeds) if quick else spec.seeds
    try:
        groups = spec.groups(quick=quick, base=base)
    except ValueError as err:
        raise UserError(f"study {spec.name!r}: {err}") from None
    what = spec.unit
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
    check_metrics(spec, entry, [p.config for p in plans], [f"{what} {p.variant!r}" for p in plans])
    return plans


def check_space_values(spec, entry: TrainableEntry, params: list, base_config: dict[str, Any]) -> None:
    """Every value a choice offers, and both bounds of a range, must be a valid value of its
    key (type and range, as the trainable's config says), or the search could only sample
    trials that fail. A value refused only together with other keys (``adaptation: none``
    with a loss weight) is left to the trial: other samples may make it valid."""
    for p in params:
        values = list(p.values) if p.kind == "choice" else [p.low, p.high]
        for v in values:
            try:
                entry.config_cls.model_validate({**base_config, p.name: v})
            except ValidationError as err:
                mine = [e for e in err.errors() if tuple(e.get("loc", ()))[:1] == (p.name,)]
                if mine:
                    what = "offers" if p.kind == "choice" else "has the bound"
                    raise UserError(
                        f"study {spec.name!r}: space.{p.name} {what} {v!r}, not a valid {p.name} for "
                        f"trainable {entry.name!r}: {mine[0]['msg']}"
                    ) from None


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
    scheduler: str = "asha"
    """``scheduler.type``: a key of ``orchestrator.schedulers.SCHEDULERS``."""

    def full_config(self, entry: TrainableEntry, sampled: dict[str, Any]) -> dict[str, Any]:
        """The validated config of a trial from the values Optuna sampled (raises ValidationError)."""
        from reports.rundir.space import sampled_config

        return entry.config_cls.model_validate(sampled_config(self.params, self.base, sampled)).model_dump(mode="json")


def compile_search(spec, *, quick: bool = False, overrides: dict[str, Any] | None = None) -> SearchPlan:
    """Check a search study before any Ray work: space keys, base config, scheduler."""
    entry = resolve_trainable(spec)
    known = set(entry.config_cls.model_fields)
    overrides = _checked_overrides(entry, overrides)
    params = list(spec.space.params)  # parsed once, when the spec was validated
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
    check_space_values(spec, entry, params, base_config)
    check_metrics(spec, entry, [base_config], ["the base config"])
    if base_config.get("eval_every", 1) != 1:
        raise UserError(f"study {spec.name!r}: a search needs eval_every: 1 (ASHA compares trials at every iteration)")
    sched = (q.scheduler if q and q.scheduler else None) or spec.scheduler
    max_t = sched.max_t or entry.full_iterations(base_config)
    if sched.type == "asha" and sched.grace_period > max_t:
        raise UserError(f"study {spec.name!r}: scheduler.grace_period {sched.grace_period} exceeds max_t {max_t}")
    return SearchPlan(
        params,
        base,
        base_config,
        seed,
        (q.num_samples if q and q.num_samples else None) or spec.num_samples,
        spec.search_seed,
        max_t,
        sched.grace_period,
        sched.reduction_factor,
        sched.type,
    )
