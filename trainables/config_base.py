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
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


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


class TrainableConfig(BaseModel):
    """Frozen, unknown keys refused, booleans never read as numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

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
