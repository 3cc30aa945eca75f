"""Study kinds as strategies, one module each (``ablation``, ``sensitivity``, ``search``):
its spec model (the fields it adds to ``orchestrator.spec.StudyBase``) and its
``StudyKind`` (how it compiles, its grouping column, what ``run.json`` records of it, how it
starts and resumes; ``base.py``). Its report sections are registered by the same name in
``reports.sections``. Adding a kind is adding its module here: every module of this package
is imported, and so registers its kind, when the package is.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import UserError
from orchestrator.kinds.base import KINDS, Launch, Progress, StudyKind, register_kind
from orchestrator.spec import StudyBase, format_validation_error

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    if _info.name not in ("base", "grid"):
        importlib.import_module(f"{__name__}.{_info.name}")


def kind_of(name: str) -> StudyKind:
    try:
        return KINDS[name]
    except KeyError:
        raise KeyError(f"unknown study kind {name!r}; known: {', '.join(KINDS)}") from None


def parse_spec(data: Any, *, source: str) -> StudyBase:
    """The validated spec of a study of any registered kind; bad input as one line (UserError)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a study spec must be a YAML mapping, got {type(data).__name__}")
    if data.get("kind") not in KINDS:
        raise UserError(f"{source}: kind: expected one of {', '.join(KINDS)} (got {data.get('kind')!r})")
    try:
        return KINDS[data["kind"]].spec_model.model_validate(data)
    except ValidationError as err:
        raise UserError(format_validation_error(err, where=source)) from None


__all__ = ["KINDS", "Launch", "Progress", "StudyKind", "kind_of", "parse_spec", "register_kind"]
