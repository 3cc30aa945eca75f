"""Search spaces as a study spec writes them, checked once, and sampled by Optuna.

    space:
      lr: {loguniform: [1.0e-4, 3.0e-3]}
      lora_rank: {choice: [4, 8, 16]}
      lambda_contrastive: {uniform: [0.0, 0.5]}
      maml_inner_steps: {int: [0, 5]}                     # {int: [lo, hi], step: 2} / {int: [lo, hi], log: true}
      maml_inner_lr: {loguniform: [1.0e-3, 0.1], when: {maml_inner_steps: {gt: 0}}}

A key with ``when`` is sampled only when its condition holds for the values sampled before
it (keys are sampled in the order written) or, for keys not in the space, for the base
config; otherwise it keeps the base config's value and Optuna never sees it, so its
importance and its sampler model are not polluted by settings that did not matter.
Conditions: ``{key: value}`` (equality) or ``{key: {eq|ne|gt|ge|lt|le: value}}`` or
``{key: {in: [values]}}``; several keys must all hold.

``define_by_run(space, base)`` returns the function Ray Tune's ``OptunaSearch`` (or a plain
``optuna`` study) calls with an ``optuna.Trial``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Callable

KINDS = ("choice", "uniform", "loguniform", "int")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
    "in": lambda a, b: a in b,
}


class SearchSpaceError(ValueError):
    """A search space that cannot be sampled (the message names the key)."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    values: tuple = ()
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    when: tuple[tuple[str, str, Any], ...] = ()

    def sample(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.values))
        assert self.low is not None and self.high is not None, (
            f"{self.name}: a range without bounds"
        )  # parse_space sets both
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(
            self.name, float(self.low), float(self.high), step=self.step, log=self.kind == "loguniform"
        )

    def active(self, values: dict[str, Any]) -> bool:
        return all(key in values and _OPS[op](values[key], ref) for key, op, ref in self.when)


def parse_space(raw: Any) -> list[Param]:
    """Check a spec's ``space`` mapping; raises SearchSpaceError naming the first bad key."""
    if not isinstance(raw, dict) or not raw:
        raise SearchSpaceError("space: expected a non-empty mapping of config keys to distributions")
    params = []
    for name, spec in raw.items():
        if not isinstance(spec, dict):
            raise SearchSpaceError(f"space.{name}: expected a mapping such as {{uniform: [0.0, 1.0]}}")
        kinds = [k for k in spec if k in KINDS]
        extra = sorted(set(spec) - set(KINDS) - {"when", "step", "log"})
        if len(kinds) != 1 or extra:
            raise SearchSpaceError(
                f"space.{name}: give exactly one of {', '.join(KINDS)}"
                + (f" (unknown: {', '.join(extra)})" if extra else "")
            )
        kind, arg = kinds[0], spec[kinds[0]]
        when = _parse_when(name, spec.get("when"))
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise SearchSpaceError(f"space.{name}: choice needs a non-empty list of values")
            if len({repr(v) for v in arg}) != len(arg):
                raise SearchSpaceError(f"space.{name}: choice repeats a value")
            params.append(Param(name, kind, values=tuple(arg), when=when))
            continue
        if not (isinstance(arg, list) and len(arg) == 2 and all(_number(v) for v in arg)):
            raise SearchSpaceError(f"space.{name}: {kind} needs [low, high] (two numbers)")
        low, high = arg
        if not low < high:
            raise SearchSpaceError(f"space.{name}: {kind} bounds are inverted or equal ({low} >= {high})")
        log = kind == "loguniform" or bool(spec.get("log", False))
        if log and low <= 0:
            raise SearchSpaceError(f"space.{name}: a log range must lie above 0 (low is {low})")
        if kind == "int" and not all(isinstance(v, int) for v in arg):
            raise SearchSpaceError(f"space.{name}: int bounds must be integers")
        step = spec.get("step")
        if step is not None and (not _number(step) or step <= 0 or log):
            raise SearchSpaceError(f"space.{name}: step must be a positive number, and not with a log range")
        params.append(Param(name, kind, low=low, high=high, step=step, log=log and kind == "int", when=when))
    names = [p.name for p in params]
    for i, p in enumerate(params):
        later = [key for key, _, _ in p.when if key in names[i:]]
        if later:
            raise SearchSpaceError(
                f"space.{p.name}: its condition names {later[0]}, which is sampled after it "
                "(write the condition's key first)"
            )
    return params


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_when(name: str, when: Any) -> tuple[tuple[str, str, Any], ...]:
    if when is None:
        return ()
    if not isinstance(when, dict) or not when:
        raise SearchSpaceError(f"space.{name}.when: expected a mapping such as {{maml_inner_steps: {{gt: 0}}}}")
    out = []
    for key, cond in when.items():
        if isinstance(cond, dict):
            if len(cond) != 1 or next(iter(cond)) not in _OPS:
                raise SearchSpaceError(f"space.{name}.when.{key}: expected one of {', '.join(_OPS)}")
            op, ref = next(iter(cond.items()))
            if op == "in" and not isinstance(ref, list):
                raise SearchSpaceError(f"space.{name}.when.{key}: 'in' needs a list")
            out.append((key, op, ref))
        else:
            out.append((key, "eq", cond))
    return tuple(out)


class DefineByRun:
    """The function Optuna calls per trial (a class, not a closure: Tune pickles its searcher)."""

    def __init__(self, params: list[Param], base: dict[str, Any]) -> None:
        self.params, self.base = list(params), dict(base)

    def __call__(self, trial) -> None:
        values = dict(self.base)
        for p in self.params:
            if p.active(values):
                values[p.name] = p.sample(trial)
        return None  # every value is suggested on the trial itself


def define_by_run(params: list[Param], base: dict[str, Any]) -> Callable:
    """The define-by-run space for ``OptunaSearch(space=...)`` or ``study.optimize``."""
    return DefineByRun(params, base)


def sampled_config(params: list[Param], base: dict[str, Any], sampled: dict[str, Any]) -> dict[str, Any]:
    """The trial's config: the base, then the sampled values of the keys that were active."""
    return {**base, **{p.name: sampled[p.name] for p in params if p.name in sampled}}


def base_point(params: list[Param], base: dict[str, Any]) -> dict[str, Any]:
    """The base config as a point of the space (to evaluate first); keys the base does not set,
    or conditional keys inactive at the base, are left to the sampler."""
    values, point = dict(base), {}
    for p in params:
        if p.name in base and p.active(values):
            point[p.name] = base[p.name]
    return point
