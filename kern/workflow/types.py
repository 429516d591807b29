"""Values that flow through a workflow and the human-review configuration of its primitives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from kern._json import to_jsonable
from kern.media import Audio, File, Image, Video

# The reference API's paths: `from kern.workflow.types import StepRequirement, ErrorRequirement` and the
# values below. They are defined in kern.run, which never imports this module (one way: workflow -> run).
from kern.run.error_requirement import ErrorRequirement
from kern.run.requirement import StepRequirement
from kern.run.values import (
    FIELD_TYPES,
    OnReject,
    OnTimeout,
    StepOutput,
    UserInputField,
    _StrEnum,
    field_type_name,
)


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
    # The run's media (`Workflow.run(images=...)`): an agent or team step gives them to its run.
    images: list[Image] | None = None
    videos: list[Video] | None = None
    audio: list[Audio] | None = None
    files: list[File] | None = None

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


__all__ = [
    "FIELD_TYPES",
    "ErrorRequirement",
    "HumanReview",
    "OnError",
    "OnReject",
    "OnTimeout",
    "StepInput",
    "StepOutput",
    "StepRequirement",
    "StepType",
    "UserInputField",
    "field_type_name",
]
