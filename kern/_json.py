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


# Python refuses to read back an integer of more than 4,300 digits (`sys.get_int_max_str_digits`); the
# store keeps a margin below that, whatever the limit of the process that writes.
_MAX_INT_DIGITS = 4000
TOO_BIG_INT = 10**_MAX_INT_DIGITS  # the smallest integer the store refuses


def unstorable(value: Any) -> str | None:
    """What in `value` the store could write but not read back (or PostgreSQL would refuse), or None.

    An integer of more than 4,000 digits, and a NaN or infinite float (JSON has neither), anywhere in
    nested lists and dicts. Values a person gives are checked with this before they are kept, so one
    answer never makes a run unreadable."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        too_big = abs(value) >= TOO_BIG_INT
        return f"an integer of more than {_MAX_INT_DIGITS:,} digits cannot be stored" if too_big else None
    if isinstance(value, float):
        return None if value - value == 0.0 else f"{value!r} cannot be stored (JSON has no NaN or infinity)"
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        problem = unstorable(item)
        if problem is not None:
            return problem
    return None
