"""Values that flow through a workflow and the human-review configuration of its primitives."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, field_validator

from kern._json import to_jsonable
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
    """What happens when nobody answers a pause before its deadline (`skip` is an alias of `reject`)."""

    approve = "approve"
    reject = "reject"
    cancel = "cancel"

    @classmethod
    def _missing_(cls, value: object) -> OnTimeout | None:
        if isinstance(value, str) and value.lower() == "skip":
            return cls.reject
        return super()._missing_(value)  # type: ignore[return-value]


class OnError(_StrEnum):
    """What a failing step does: end the run (`fail`, the default), be skipped, or pause for a person."""

    fail = "fail"
    skip = "skip"
    pause = "pause"


class StepType(_StrEnum):
    """The kind of primitive a step, requirement or output belongs to (`step_type` values)."""

    FUNCTION = "Function"
    STEP = "Step"
    STEPS = "Steps"
    LOOP = "Loop"
    PARALLEL = "Parallel"
    CONDITION = "Condition"
    ROUTER = "Router"
    WORKFLOW = "Workflow"


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

    def __post_init__(self) -> None:
        self.field_type = field_type_name(self.field_type)
        if self.field_type not in FIELD_TYPES:
            raise ValueError(
                f"UserInputField {self.name!r}: field_type {self.field_type!r} is not supported. "
                f"Use one of: {', '.join(FIELD_TYPES)}."
            )

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
    images: Annotated[list[Any] | None, JSONABLE] = None
    videos: Annotated[list[Any] | None, JSONABLE] = None
    audio: Annotated[list[Any] | None, JSONABLE] = None
    files: Annotated[list[Any] | None, JSONABLE] = None
    metrics: Annotated[Any, JSONABLE] = None

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out."""
        return _STEP_OUTPUT.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepOutput:
        return _STEP_OUTPUT.load(data)


_STEP_OUTPUT = StoredForm(StepOutput)


@dataclass
class StepInput:
    """What an executor receives.

    `additional_data` holds the run's `additional_data` plus, after a pause, `user_input`,
    `rejection_feedback` and `previous_output` (the output a reviewer rejected).
    """

    input: Any = None
    previous_step_content: Any = None
    previous_step_outputs: dict[str, StepOutput] = field(default_factory=dict)
    additional_data: dict[str, Any] = field(default_factory=dict)
    session_state: dict[str, Any] | None = None
    run_id: str | None = None
    session_id: str | None = None
    user_id: str | None = None

    def get_step_output(self, step_name: str) -> StepOutput | None:
        """The output of an earlier step of this run, by name."""
        return self.previous_step_outputs.get(step_name)

    def get_step_content(self, step_name: str) -> Any:
        """The content of an earlier step of this run, by name (None if it did not run)."""
        out = self.previous_step_outputs.get(step_name)
        return out.content if out else None

    def get_last_step_content(self) -> Any:
        """The content of the step that ran just before this one (documented name for
        `previous_step_content`; inside a Loop with `forward_iteration_output=True`, the previous
        iteration's output)."""
        return self.previous_step_content

    def get_input_as_string(self) -> str:
        """The run input as text, for handing to an agent."""
        return self.input if isinstance(self.input, str) else str(to_jsonable(self.input))


class HumanReview(BaseModel):
    """Every human-in-the-loop setting of one primitive, in one object.

    Each primitive checks at construction which of these it supports (see `seeds/003`).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=True, extra="forbid")

    requires_confirmation: bool = False
    confirmation_message: str | None = None
    requires_user_input: bool = False
    user_input_message: str | None = None
    user_input_schema: list[UserInputField] | None = None
    requires_output_review: bool | Callable[..., bool] = False
    output_review_message: str | None = None
    requires_iteration_review: bool = False
    iteration_review_message: str | None = None
    on_reject: OnReject = OnReject.skip
    on_error: OnError | None = None
    max_retries: int = 3
    timeout: int | float | None = None
    on_timeout: OnTimeout | None = None

    @field_validator("on_reject", mode="before")
    @classmethod
    def _parse_on_reject(cls, v: Any) -> Any:
        return OnReject.parse(v, "on_reject") if v is not None else OnReject.skip

    @field_validator("on_error", mode="before")
    @classmethod
    def _parse_on_error(cls, v: Any) -> Any:
        return OnError.parse(v, "on_error")

    @field_validator("on_timeout", mode="before")
    @classmethod
    def _parse_on_timeout(cls, v: Any) -> Any:
        return OnTimeout.parse(v, "on_timeout")

    @field_validator("user_input_schema", mode="before")
    @classmethod
    def _parse_schema(cls, v: Any) -> Any:
        if v is None:
            return None
        return [UserInputField.from_dict(f) if isinstance(f, dict) else f for f in v]

    @field_validator("max_retries")
    @classmethod
    def _check_retries(cls, v: int) -> int:
        if v < 0:
            raise ValueError("max_retries must be 0 or more")
        return v

    @field_validator("timeout")
    @classmethod
    def _check_timeout(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("timeout must be a positive number of seconds (or None for no deadline)")
        return v

    def model_post_init(self, __context: Any) -> None:
        if self.requires_output_review and self.requires_iteration_review:
            raise ValueError(
                "requires_output_review and requires_iteration_review cannot both be True in the same HumanReview."
            )

    @property
    def enabled_modes(self) -> list[str]:
        """The HITL modes switched on, in a fixed order."""
        modes = ("requires_confirmation", "requires_user_input", "requires_output_review", "requires_iteration_review")
        return [m for m in modes if getattr(self, m)]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict. A callable `requires_output_review` cannot be written: ValueError."""
        if callable(self.requires_output_review):
            raise ValueError(
                "HumanReview.requires_output_review is a callable and cannot be serialized; "
                "use True/False in configurations that must be stored."
            )
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HumanReview:
        """Read a config: a `"human_review"` key first, else the flat keys of older stored data."""
        if isinstance(data.get("human_review"), dict):
            data = data["human_review"]
        flat_aliases = {"hitl_max_retries": "max_retries", "hitl_timeout": "timeout"}
        values: dict[str, Any] = {}
        for key, value in data.items():
            key = flat_aliases.get(key, key)
            if key in cls.model_fields and value is not None:
                values[key] = value
        return cls(**values)


def __getattr__(name: str) -> Any:
    # The documented import paths `from kern.workflow.types import StepRequirement, ErrorRequirement`.
    # Both live in `kern.run`, which imports this module: resolved lazily.
    if name == "StepRequirement":
        from kern.run.requirement import StepRequirement

        return StepRequirement
    if name == "ErrorRequirement":
        from kern.run.error_requirement import ErrorRequirement

        return ErrorRequirement
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
