"""A fast copy of a frozen model with some fields changed: what `model_copy(update=...)` does, for the hot path.

The journey changes a lead a few times per step and the engine runs tens of thousands of steps a second on
replay; pydantic's `model_copy` copies the instance's extras and private attributes through `copy.copy`, which
these models do not have. Like `model_copy`, the changed values are not validated: callers pass field values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__


def replaced(model: M, changes: Mapping[str, Any]) -> M:
    """`model` with `changes` applied: a new instance sharing every other field's value."""
    copied = object.__new__(type(model))
    values = model.__dict__.copy()
    values.update(changes)
    _set(copied, "__dict__", values)
    _set(copied, "__pydantic_fields_set__", model.__pydantic_fields_set__ | changes.keys())
    _set(copied, "__pydantic_extra__", None)
    _set(copied, "__pydantic_private__", None)
    return copied
