"""Finding and reading study specs: a shipped name or a path to a YAML file."""

from __future__ import annotations

from pathlib import Path

import yaml

import search_spaces
from orchestrator.errors import UserError, one_line
from orchestrator.kinds import parse_spec
from orchestrator.spec import StudySpec


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a mapping key written twice (a variant, a base key...):
    PyYAML lets the last one win silently, and a study would then run something else than
    its file seems to say."""


def _unique_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is written twice (first at line {seen[key] + 1})", key_node.start_mark
                )
        except TypeError:  # an unhashable key: SafeLoader reports it itself
            break
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(text: str, path: Path):
    """The YAML document in ``text``; a parse error or a repeated key as one line naming the place."""
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise UserError(f"{path}: YAML does not parse{where}: {problem}") from None


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
        if path.is_dir():
            raise UserError(f"study {study} is a directory; give the path of its YAML spec (or a shipped study's name)")
        if not path.is_file():
            raise UserError(f"study file {study} does not exist")
        return path
    raise UserError(
        f"unknown study {study!r}; shipped studies: {', '.join(shipped) or 'none'} (or give a path to a YAML spec)"
    )


def load_study(study: str) -> tuple[StudySpec, str]:
    """The validated spec and its YAML text."""
    path = locate(study)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(
            f"{path}: not a UTF-8 text file (byte {err.start}: {err.reason}); a study spec is YAML text"
        ) from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the study file ({err.strerror})") from None
    return parse_spec(read_yaml(text, path), source=str(path)), text
