"""What a workflow run produces: its output, its pauses, its session and its events."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kern._json import to_jsonable
from kern.run.base import RunStatus
from kern.run.requirement import (
    CONFIRMATION,
    ERROR,
    EXECUTOR,
    ITERATION_REVIEW,
    KINDS,
    OUTPUT_REVIEW,
    ROUTE_SELECTION,
    USER_INPUT,
    StepRequirement,
)
from kern.workflow.types import StepOutput

__all__ = [
    "ConditionCompletedEvent",
    "ConditionStartedEvent",
    "LoopCompletedEvent",
    "LoopStartedEvent",
    "ParallelCompletedEvent",
    "ParallelStartedEvent",
    "RouterCompletedEvent",
    "RouterPausedEvent",
    "RouterStartedEvent",
    "RunStatus",
    "StepCompletedEvent",
    "StepContinuedEvent",
    "StepErrorEvent",
    "StepExecutorContinuedEvent",
    "StepExecutorPausedEvent",
    "StepOutputReviewEvent",
    "StepPausedEvent",
    "StepRequirement",
    "StepStartedEvent",
    "StepsCompletedEvent",
    "StepsStartedEvent",
    "WorkflowCancelledEvent",
    "WorkflowCompletedEvent",
    "WorkflowErrorEvent",
    "WorkflowEvent",
    "WorkflowPausedEvent",
    "WorkflowRunOutput",
    "WorkflowSession",
    "WorkflowStartedEvent",
]


@dataclass
class WorkflowRunOutput:
    """The state of one workflow run: its result when finished, its pauses while paused."""

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    workflow_name: str | None = None
    input: Any = None
    content: Any = None
    status: RunStatus = RunStatus.PENDING
    error: str | None = None
    step_results: list[StepOutput] = field(default_factory=list)
    step_requirements: list[StepRequirement] = field(default_factory=list)
    additional_data: dict[str, Any] = field(default_factory=dict)
    session_state: dict[str, Any] | None = None
    user_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    # Compare-and-set version of the stored row this copy was read at (managed by kern).
    version: int = 0

    def __post_init__(self) -> None:
        # The public constructor takes a status as its value or name ("COMPLETED", "completed").
        if not isinstance(self.status, RunStatus):
            self.status = RunStatus(self.status)

    # ----- pause state ---------------------------------------------------------------------------
    @property
    def is_paused(self) -> bool:
        """True while the run waits for a person."""
        return self.status == RunStatus.PAUSED

    @property
    def is_cancelled(self) -> bool:
        return self.status == RunStatus.CANCELLED

    @property
    def active_requirement(self) -> StepRequirement | None:
        """The pause the run waits on now: the last entry of `step_requirements`, if paused."""
        if not self.is_paused or not self.step_requirements:
            return None
        return self.step_requirements[-1]

    @property
    def pause_kind(self) -> str | None:
        """`"step"` or `"executor"` while paused, else None."""
        active = self.active_requirement
        if active is None:
            return None
        return "executor" if active.kind == EXECUTOR else "step"

    @property
    def paused_step_name(self) -> str | None:
        active = self.active_requirement
        return active.step_name if active else None

    @property
    def paused_step_index(self) -> int | None:
        """Index of the top-level step the run is paused in (`active_requirement.step_path` is exact)."""
        active = self.active_requirement
        return active.step_index if active else None

    @property
    def active_step_requirements(self) -> list[StepRequirement]:
        """Every requirement still waiting for a decision (of any kind)."""
        return self._open(*KINDS)

    @property
    def error_requirements(self) -> list[StepRequirement]:
        """Every error pause of this run (`on_error="pause"`), resolved ones included, oldest first."""
        return [r for r in self.step_requirements if r.kind == ERROR]

    @property
    def active_error_requirements(self) -> list[StepRequirement]:
        """Error pauses still waiting for retry() or skip() (the same list as `steps_with_errors`)."""
        return self._open(ERROR)

    def _open(self, *kinds: str) -> list[StepRequirement]:
        return [r for r in self.step_requirements if r.kind in kinds and r.status == "pending" and not r.is_resolved]

    @property
    def steps_requiring_confirmation(self) -> list[StepRequirement]:
        return self._open(CONFIRMATION)

    @property
    def steps_requiring_user_input(self) -> list[StepRequirement]:
        return self._open(USER_INPUT)

    @property
    def steps_requiring_output_review(self) -> list[StepRequirement]:
        """Output reviews and loop iteration reviews awaiting a decision."""
        return self._open(OUTPUT_REVIEW, ITERATION_REVIEW)

    @property
    def steps_requiring_iteration_review(self) -> list[StepRequirement]:
        return self._open(ITERATION_REVIEW)

    @property
    def steps_requiring_route(self) -> list[StepRequirement]:
        return self._open(ROUTE_SELECTION)

    @property
    def steps_with_errors(self) -> list[StepRequirement]:
        return self._open(ERROR)

    @property
    def steps_requiring_executor_resolution(self) -> list[StepRequirement]:
        return self._open(EXECUTOR)

    # ----- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "session_id": self.session_id,
            "workflow_name": self.workflow_name,
            "input": to_jsonable(self.input),
            "content": to_jsonable(self.content),
            "status": self.status.value,
            "error": self.error,
            "step_results": [s.to_dict() for s in self.step_results],
            "step_requirements": [r.to_dict() for r in self.step_requirements],
            "additional_data": to_jsonable(self.additional_data),
            "session_state": to_jsonable(self.session_state),
            "user_id": self.user_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int = 0) -> WorkflowRunOutput:
        return cls(
            run_id=data.get("run_id") or uuid.uuid4().hex,
            session_id=data.get("session_id") or uuid.uuid4().hex,
            workflow_name=data.get("workflow_name"),
            input=data.get("input"),
            content=data.get("content"),
            status=RunStatus(data.get("status", "PENDING")),
            error=data.get("error"),
            step_results=[StepOutput.from_dict(s) for s in data.get("step_results", [])],
            step_requirements=[StepRequirement.from_dict(r) for r in data.get("step_requirements", [])],
            additional_data=data.get("additional_data") or {},
            session_state=data.get("session_state"),
            user_id=data.get("user_id"),
            created_at=data.get("created_at", 0.0),
            updated_at=data.get("updated_at", 0.0),
            version=version,
        )


@dataclass
class WorkflowSession:
    """A session: the runs made under one session id, oldest first."""

    session_id: str
    workflow_name: str | None = None
    user_id: str | None = None
    session_state: dict[str, Any] | None = None
    runs: list[WorkflowRunOutput] = field(default_factory=list)


# ----- events ------------------------------------------------------------------------------------
@dataclass
class WorkflowEvent:
    """Base of every streamed workflow event."""

    run_id: str = ""
    session_id: str = ""
    workflow_name: str | None = None
    created_at: float = field(default_factory=time.time)
    event: str = ""

    def __post_init__(self) -> None:
        self.event = type(self).__name__.removesuffix("Event")


@dataclass
class _StepEvent(WorkflowEvent):
    step_name: str | None = None
    step_path: str | None = None
    step_type: str | None = None


@dataclass
class WorkflowStartedEvent(WorkflowEvent):
    input: Any = None
    continued: bool = False


@dataclass
class WorkflowCompletedEvent(WorkflowEvent):
    content: Any = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class WorkflowPausedEvent(WorkflowEvent):
    requirement: StepRequirement | None = None
    pause_kind: str | None = None


@dataclass
class WorkflowCancelledEvent(WorkflowEvent):
    reason: str | None = None


@dataclass
class WorkflowErrorEvent(WorkflowEvent):
    error: str | None = None


@dataclass
class StepStartedEvent(_StepEvent):
    pass


@dataclass
class StepCompletedEvent(_StepEvent):
    content: Any = None
    step_output: StepOutput | None = None


@dataclass
class StepErrorEvent(_StepEvent):
    error: str | None = None


@dataclass
class StepPausedEvent(_StepEvent):
    """A step-level pause (confirmation, user input, error) was reached."""

    requirement: StepRequirement | None = None


@dataclass
class RouterPausedEvent(StepPausedEvent):
    """A Router waits for the person to choose its route(s)."""


@dataclass
class StepOutputReviewEvent(StepPausedEvent):
    """A step's (or loop iteration's) output waits for review."""


@dataclass
class StepExecutorPausedEvent(_StepEvent):
    """The agent or team running a step paused on a tool call."""

    requirement: StepRequirement | None = None


@dataclass
class StepContinuedEvent(_StepEvent):
    """A continued run applied the decision on a step-level pause."""

    requirement: StepRequirement | None = None


@dataclass
class StepExecutorContinuedEvent(_StepEvent):
    requirement: StepRequirement | None = None


@dataclass
class StepsStartedEvent(_StepEvent):
    pass


@dataclass
class StepsCompletedEvent(_StepEvent):
    content: Any = None


@dataclass
class ConditionStartedEvent(_StepEvent):
    pass


@dataclass
class ConditionCompletedEvent(_StepEvent):
    branch: str | None = None
    content: Any = None


@dataclass
class LoopStartedEvent(_StepEvent):
    pass


@dataclass
class LoopCompletedEvent(_StepEvent):
    iterations: int = 0
    content: Any = None


@dataclass
class RouterStartedEvent(_StepEvent):
    pass


@dataclass
class RouterCompletedEvent(_StepEvent):
    selected: list[str] = field(default_factory=list)
    content: Any = None


@dataclass
class ParallelStartedEvent(_StepEvent):
    pass


@dataclass
class ParallelCompletedEvent(_StepEvent):
    content: Any = None
