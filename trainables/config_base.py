"""The base of every trainable's config: frozen, unknown keys refused, and no boolean taken
for a number.

pydantic's lax mode turns ``true`` into 1 for an ``int`` field (``lora_rank: true`` would
train rank 1) and into 1.0 for a ``float``; its strict mode would also refuse what YAML and
JSON legitimately give (an ``int`` for a ``float``, a list for a tuple). So only booleans
are refused, where the field does not admit a boolean itself.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator


def admits_bool(annotation: Any) -> bool:
    """Whether a field of this type may hold ``True`` / ``False`` as itself."""
    if annotation is bool or annotation is Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return any(isinstance(a, bool) for a in args)
    if origin in (Union, types.UnionType):
        return any(admits_bool(a) for a in args)
    return origin is not None and origin not in (tuple, list, dict)  # e.g. Annotated: leave to pydantic


def refuse_bool_for_number(model: type[BaseModel], value: Any, info: ValidationInfo) -> Any:
    field = model.model_fields.get(info.field_name)
    if isinstance(value, bool) and field is not None and not admits_bool(field.annotation):
        raise ValueError(f"got the boolean {str(value).lower()} where a number is expected")
    return value


#: Values of a path field that name no file: the embedded data and backbone.
NOT_PATHS = ("synthfaces", "standin", "standin:untrained")
#: Reference prefixes a path may carry (``hf:<dir>``, ``timm:<dir>``, ``onnx:<file>``).
PATH_PREFIXES = ("hf:", "timm:", "onnx:")


def absolute_path(value: Any) -> Any:
    """``value`` (a path, a mapping or list of paths) with each relative path that exists from
    this process's working directory made absolute; anything else as it is. Trials run in
    their own working directory (Ray Tune's trial folder, another node): a path relative to
    where the study was started would not be found there."""
    if isinstance(value, dict):
        return {k: absolute_path(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(absolute_path(v) for v in value)
    if not isinstance(value, str) or value in NOT_PATHS:
        return value
    prefix = next((p for p in PATH_PREFIXES if value.startswith(p)), "")
    path = Path(value[len(prefix) :]).expanduser()
    if path.is_absolute() or not path.exists():
        return prefix + str(path) if path.is_absolute() else value
    return prefix + str(path.resolve())


class TrainableConfig(BaseModel):
    """Frozen, unknown keys refused, booleans never read as numbers, and the keys that name
    files (``PATH_FIELDS``) made absolute where they are given (the driver's working
    directory), so that a trial finds them from its own."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _absolute_paths(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: absolute_path(v) if k in cls.PATH_FIELDS else v for k, v in data.items()}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_bool_for_number(cls, value, info)

    @property
    def synthetic_data(self) -> bool:
        """Whether the trial trains on synthfaces, the embedded synthetic data: every
        trainable names it by the value ``"synthfaces"`` in its data field(s). Recorded in
        run.json, so that the report says so without guessing from the files present."""
        return any(v == SYNTHFACES for v in self.model_dump().values() if isinstance(v, str))


SYNTHFACES = "synthfaces"
