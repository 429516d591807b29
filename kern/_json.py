"""Turning step content into JSON the store can keep."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any


def to_jsonable(value: Any) -> Any:
    """Return a JSON-compatible copy of `value`.

    Pydantic models and dataclasses become dicts, enums their value, sets lists; anything else that
    JSON cannot hold is kept as its `str()`, so a run never fails because its output is exotic.
    """
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return to_jsonable(dump(mode="json"))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value
