"""The plain values a run stores and its pauses ask for: a step's output, a form's fields, the questions
of a tool that asks the user, and what a rejection or a timeout does.

They live here, below both `kern.run`'s records (requirements, run outputs) and `kern.workflow`'s
primitives, so that imports go one way: `kern.workflow.types` and `kern.tools.user_feedback` re-export
them at the reference API's paths, which are the ones to import from.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from kern._json import TOO_BIG_INT, unstorable
from kern.media import AudioList, FileList, ImageList, VideoList
from kern.run.stored import JSONABLE, StoredForm


class _StrEnum(StrEnum):
    """A str enum whose unknown values fail with a message listing the valid ones."""

    @classmethod
    def _missing_(cls, value: object) -> _StrEnum | None:
        if isinstance(value, str):
            for member in cls:
                if value.lower() in (member.value, member.name):
                    return member
        return None

    @classmethod
    def parse(cls, value: Any, field_name: str) -> Any:
        """Convert `value` (member or string) to a member; `None` stays `None`."""
        if value is None or isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ValueError(f"Invalid {field_name} {value!r}. Valid values: {valid}.") from None

    def __str__(self) -> str:
        return self.value


class OnReject(_StrEnum):
    """What a rejection does."""

    skip = "skip"
    cancel = "cancel"
    retry = "retry"
    else_branch = "else"


class OnTimeout(_StrEnum):
    """What happens when nobody answers a pause before its deadline.

    `skip` (the reference API's name) does what `reject` does; it is its own member so that a requirement
    keeps the spelling it was given (`req.on_timeout == "skip"` after a round trip through the store).
    """

    approve = "approve"
    reject = "reject"
    cancel = "cancel"
    skip = "skip"

    @property
    def rejects(self) -> bool:
        """True for `reject` and `skip`: the pause is decided as a rejection."""
        return self in (OnTimeout.reject, OnTimeout.skip)


FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (float, int),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


# Other spellings of the six field types: JSON-schema names, and common long names.
_FIELD_TYPE_ALIASES = {
    "string": "str",
    "text": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


def field_type_name(field_type: Any) -> Any:
    """A field type as one of `FIELD_TYPES`' names: a name ("int"), a JSON-schema name ("integer"), a
    Python type (`int`) or a typing form (`list[str]`, `List[str]`, `Optional[int]`). Anything else is
    returned as given, for the caller to reject."""
    if isinstance(field_type, str):
        lowered = field_type.strip().lower()
        return _FIELD_TYPE_ALIASES.get(lowered, lowered)
    origin = typing.get_origin(field_type)
    if origin in (typing.Union, types.UnionType):  # Optional[int] / int | None: the non-None member
        members = [a for a in typing.get_args(field_type) if a is not type(None)]
        return field_type_name(members[0]) if len(members) == 1 else field_type
    if origin is not None:  # list[str], Dict[str, int], ...
        field_type = origin
    if isinstance(field_type, type):
        for name, accepted in FIELD_TYPES.items():
            if field_type is accepted[0]:
                return name
        return field_type.__name__
    return field_type


@dataclass
class UserInputField:
    """One value a person provides at a user-input pause."""

    name: str
    field_type: str = "str"
    description: str | None = None
    required: bool = True
    allowed_values: Annotated[list[Any] | None, JSONABLE] = None
    value: Annotated[Any, JSONABLE] = None
    # kern's addition: bounds of an int or float field, as pydantic's `Field(ge=..., le=...)` (a form declares
    # them; a value outside is refused naming the field).
    ge: float | None = None
    le: float | None = None

    def __post_init__(self) -> None:
        self.field_type = field_type_name(self.field_type)
        if self.field_type not in FIELD_TYPES:
            raise ValueError(
                f"UserInputField {self.name!r}: field_type {self.field_type!r} is not supported. "
                f"Use one of: {', '.join(FIELD_TYPES)}."
            )
        if (self.ge is not None or self.le is not None) and self.field_type not in ("int", "float"):
            raise ValueError(f"UserInputField {self.name!r}: ge and le bound int and float fields only.")
        if self.ge is not None and self.le is not None and self.ge > self.le:
            raise ValueError(f"UserInputField {self.name!r}: ge={self.ge} is more than le={self.le}.")

    @staticmethod
    def is_missing(value: Any) -> bool:
        """True for a value that gives nothing: None, or a string that is empty or only whitespace (a
        required field left blank in a form is missing, not filled in)."""
        return value is None or (isinstance(value, str) and not value.strip())

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out."""
        return _USER_INPUT_FIELD.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UserInputField:
        return _USER_INPUT_FIELD.load(data)


_USER_INPUT_FIELD = StoredForm(UserInputField)


def coerce_field(field_def: UserInputField, value: Any) -> Any:
    """Coerce a form value (often a string) to the field's type, or raise ValueError naming the field."""
    kind = field_def.field_type
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        try:
            if kind == "int":
                value = int(text)
            elif kind == "float":
                value = float(text)
            elif kind == "bool":
                lowered = text.lower()
                if lowered not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ValueError
                value = lowered in ("true", "yes", "1", "on")
            else:
                raise ValueError
        except ValueError:
            if kind == "int" and text.lstrip("+-").isdigit():  # beyond what Python reads as an int
                raise ValueError(f"{field_def.name}: {unstorable(TOO_BIG_INT)}") from None
            shown = value if len(value) <= 80 else f"{value[:40]}…({len(value):,} characters)"
            raise ValueError(f"{field_def.name}: expected {kind}, got {shown!r}") from None
    if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and kind in ("int", "float"):
        raise ValueError(f"{field_def.name}: expected {kind}, got a bool")
    if not isinstance(value, FIELD_TYPES[kind]):
        raise ValueError(f"{field_def.name}: expected {kind}, got {type(value).__name__} {value!r}")
    if isinstance(value, (int, float)):
        if field_def.ge is not None and value < field_def.ge:
            raise ValueError(f"{field_def.name}: must be at least {field_def.ge:g}, got {value!r}")
        if field_def.le is not None and value > field_def.le:
            raise ValueError(f"{field_def.name}: must be at most {field_def.le:g}, got {value!r}")
    if field_def.allowed_values is not None and value not in field_def.allowed_values:
        allowed = ", ".join(repr(v) for v in field_def.allowed_values)
        raise ValueError(f"{field_def.name}: {value!r} is not allowed; choose one of {allowed}")
    problem = unstorable(value)
    if problem is not None:  # kept, it would make the run unreadable for everyone after
        raise ValueError(f"{field_def.name}: {problem}")
    return value


@dataclass
class StepOutput:
    """What a step produced. An executor may return one, or any plain value (it is wrapped)."""

    content: Annotated[Any, JSONABLE] = None
    step_name: str | None = None
    success: bool = True
    error: str | None = None
    stop: bool = False
    skipped: bool = False
    step_type: str = "Step"
    steps: list[StepOutput] | None = None
    # Documented fields kern does not fill itself; kept (and stored) when an executor sets them.
    step_id: str | None = None
    executor_type: str | None = None  # "agent", "team" or "function"
    executor_name: str | None = None
    step_run_id: str | None = None
    images: ImageList = None  # `kern.media` objects (an agent step: what its run made)
    videos: VideoList = None
    audio: AudioList = None
    files: FileList = None
    metrics: Annotated[Any, JSONABLE] = None
    # True when the step's agent or team paused on a tool call (an executor pause) instead of finishing.
    is_paused: bool = False
    # The reference API's signal from a loop iteration to its workflow; kern's engine pauses for an iteration
    # review itself, so this is accepted and kept on the object, never stored.
    requires_iteration_review_pause: Annotated[bool, Field(exclude=True)] = False

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out."""
        return _STEP_OUTPUT.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepOutput:
        return _STEP_OUTPUT.load(data)


_STEP_OUTPUT = StoredForm(StepOutput)


class AskUserOption(BaseModel):
    """One option the person may pick."""

    label: str = Field(description="The option's text, one to five words.")
    description: str | None = Field(default=None, description="What choosing it means.")
    # Whether the person chose it, once answered (hidden from the model's schema).
    selected: SkipJsonSchema[bool] = False


class AskUserQuestion(BaseModel):
    """One question with predefined options."""

    question: str = Field(description="The question; it ends with a question mark.")
    header: str = Field(description="A short label for the question, at most 12 characters.")
    options: list[AskUserOption] = Field(min_length=1, description="Two to four options.")
    multi_select: bool = Field(default=False, description="True if several options may be chosen.")
    # The person's answer once given (hidden from the model's schema).
    selected_options: SkipJsonSchema[list[str] | None] = None

    @field_validator("header", mode="before")
    @classmethod
    def _no_header(cls, value: Any) -> Any:
        """A stored question without a header (the reference API's form allows None) reads as ""."""
        return "" if value is None else value


__all__ = [
    "FIELD_TYPES",
    "AskUserOption",
    "AskUserQuestion",
    "OnReject",
    "OnTimeout",
    "StepOutput",
    "UserInputField",
    "coerce_field",
    "field_type_name",
]
