"""Finding and reading study specs: a shipped name or a path to a YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

import search_spaces
from orchestrator.errors import UserError, one_line
from orchestrator.spec import StudySpec, parse_spec


def describe_shipped() -> list[tuple[str, str]]:
    """(name, one-line description) of every shipped study."""
    out = []
    for name, path in search_spaces.shipped().items():
        data = yaml.safe_load(path.read_text()) or {}
        out.append((name, one_line(data.get("description", ""))))
    return out


def locate(study: str) -> Path:
    shipped = search_spaces.shipped()
    if study in shipped:
        return shipped[study]
    path = Path(study)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"study file {study} does not exist")
        return path
    raise UserError(f"unknown study {study!r}; shipped studies: {', '.join(shipped) or 'none'} (or give a path to a YAML spec)")


def load_study(study: str) -> tuple[StudySpec, str]:
    """The validated spec and its YAML text."""
    path = locate(study)
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: YAML does not parse{where}: {problem}") from None
    return parse_spec(data, source=str(path)), text
