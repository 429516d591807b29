"""How runs are stored: the JSON form of run outputs, their pauses and step outputs, written and read by
pydantic.

The stored types are plain dataclasses (`WorkflowRunOutput`, `RunOutput`, `StepRequirement`,
`RunRequirement`, `ToolExecution`, `StepOutput`, `UserInputField`). The JSON form of each is what a pydantic
`TypeAdapter` over it dumps (`mode="json"`, fields that are None left out) and validates; their
`to_dict()` / `from_dict()` are one-line wrappers over these adapters. What a type stores beyond its fields,
or reads from rows of an older form, is said next to the type, in its `__get_pydantic_core_schema__`
(see `custom_form`).

Values that belong to the user (a run's input and content, session state, additional data, a tool's
arguments, a reviewer's edit, ...) are written with `to_jsonable` (`JSONABLE` in a field's annotation):
pydantic models and dataclasses as dicts, enums as their value, sets as lists, anything else JSON cannot
hold as its `str()`. They are read back as that JSON.

Each adapter is built once, on first use (the types refer to each other across modules, so not all of
them exist when the first is defined; about 0.1 s for the first run), and then called straight on
pydantic-core's serializer and validator: no per-call construction. The serializer reads each dataclass
from its instance dict (`_read_instance_dicts`), which is what makes it faster than the hand-written
`to_dict` it replaced; docs/storage.md has the whole picture.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

from pydantic import PlainSerializer, TypeAdapter, ValidationError
from pydantic_core import CoreConfig, CoreSchema, SchemaSerializer, core_schema

from kern._json import to_jsonable

T = TypeVar("T")

# Infinity and NaN stay floats (`json` writes them as it always did), not null.
_CONFIG = CoreConfig(ser_json_inf_nan="constants")

# In `Annotated[<type>, JSONABLE]`: the field's value is written as `to_jsonable` gives it.
JSONABLE = PlainSerializer(to_jsonable)

DumpExtra = Callable[[Any, core_schema.SerializerFunctionWrapHandler], Any]
LoadExtra = Callable[[Any, core_schema.ValidatorFunctionWrapHandler], Any]


class StoredForm(Generic[T]):
    """The stored form of one type: `dump(value)` gives its JSON-ready dict, `load(data)` the value back.

    Built on first use; after that both are pydantic-core's own calls."""

    def __init__(self, tp: type[T]) -> None:
        self._type = tp
        self.dump: Callable[[T], dict[str, Any]] = self._first_dump
        self.load: Callable[[Any], T] = self._first_load

    def _first_dump(self, value: T) -> dict[str, Any]:
        self._build()
        return self.dump(value)

    def _first_load(self, data: Any) -> T:
        self._build()
        return self.load(data)

    def _build(self) -> None:
        # pydantic resolves each stored type's annotations in the module that defines it, which imports
        # every name they use (this module, below them all, imports none of them).
        adapter = TypeAdapter(self._type)
        serializer = SchemaSerializer(_read_instance_dicts(copy.deepcopy(adapter.core_schema)), _CONFIG)
        self.dump = functools.partial(serializer.to_python, mode="json", exclude_none=True)
        validate = adapter.validator.validate_python

        def load(data: Any) -> T:
            try:
                return cast(T, validate(data))
            except ValidationError:
                # A row written by hand or by another tool may hold null where kern writes a list or a dict
                # (the hand-written reader took that as the default): read such a field as absent.
                if not isinstance(data, dict) or None not in data.values():
                    raise
                return cast(T, validate({key: value for key, value in data.items() if value is not None}))

        self.load = load


def custom_form(schema: CoreSchema, *, dump: DumpExtra | None = None, load: LoadExtra | None = None) -> CoreSchema:
    """A type's stored form with its own steps around pydantic's: `dump(value, handler)` and
    `load(data, handler)` call `handler` for the fields and add what the type needs around it.

    For a type's `__get_pydantic_core_schema__`: `custom_form(handler(source), dump=..., load=...)`. The
    schema's reference moves to the wrapper, so every use of the type (nested, recursive) gets both."""
    ref = cast(dict[str, Any], schema).pop("ref", None)
    serialization = (
        core_schema.wrap_serializer_function_ser_schema(dump, schema=cast(CoreSchema, dict(schema)))
        if dump is not None
        else None
    )
    if load is not None:
        return core_schema.no_info_wrap_validator_function(load, schema, ref=ref, serialization=serialization)
    # Dump only: the type's own schema, with the serializer and the reference.
    wrapped: dict[str, Any] = dict(schema)
    if ref is not None:
        wrapped["ref"] = ref
    if serialization is not None:
        wrapped["serialization"] = serialization
    return cast(CoreSchema, wrapped)


def _read_instance_dicts(schema: CoreSchema) -> CoreSchema:
    """`schema` with every dataclass serialized from its instance dict (`vars(obj)`) as a typed dict of
    its fields. pydantic-core otherwise reads a plain dataclass field by field with getattr into a new
    dict and then serializes that dict: 2.5 times the time for a `StepRequirement`. The stored types keep
    every field in their instance dict (`_Parsed` fields too); other keys are left out, but for those a
    class names in `STORED_EXTRA_KEYS`."""

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, dict):
            for value in list(node.values()):
                walk(value)
            if node.get("type") == "dataclass" and "serialization" not in node:
                fields = {
                    f["name"]: core_schema.typed_dict_field(
                        f["schema"], serialization_exclude=f.get("serialization_exclude")
                    )
                    for f in node["schema"]["fields"]
                }
                for key in getattr(node["cls"], "STORED_EXTRA_KEYS", ()):
                    fields[key] = core_schema.typed_dict_field(core_schema.any_schema())
                node["serialization"] = core_schema.plain_serializer_function_ser_schema(
                    vars, return_schema=core_schema.typed_dict_schema(fields, total=False)
                )

    walk(schema)
    return schema


__all__ = ["JSONABLE", "StoredForm", "custom_form"]
