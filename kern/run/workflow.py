"""What a workflow run produces: its output, its pauses, its session and its events."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from kern._json import to_jsonable
from kern.ids import new_id
from kern.media import AudioList, FileList, ImageList, VideoList
from kern.run.agent import RunRequirement
from kern.run.base import RunStatus
from kern.run.error_requirement import ErrorRequirement
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
    derived_step_id,
)
from kern.run.stored import JSONABLE, StoredForm
from kern.run.values import StepOutput

__all__ = [
    "WORKFLOW_RUN_EVENT_TYPE_REGISTRY",
    "BaseWorkflowRunOutputEvent",
    "ConditionCompletedEvent",
    "ConditionExecutionCompletedEvent",
    "ConditionExecutionStartedEvent",
    "ConditionStartedEvent",
    "CustomEvent",
    "LoopCompletedEvent",
    "LoopExecutionCompletedEvent",
    "LoopExecutionStartedEvent",
    "LoopIterationCompletedEvent",
    "LoopIterationStartedEvent",
    "LoopStartedEvent",
    "ParallelCompletedEvent",
    "ParallelExecutionCompletedEvent",
    "ParallelExecutionStartedEvent",
    "ParallelStartedEvent",
    "RouterCompletedEvent",
    "RouterExecutionCompletedEvent",
    "RouterExecutionStartedEvent",
    "RouterPausedEvent",
    "RouterStartedEvent",
    "RunStatus",
    "StepCompletedEvent",
    "StepContinuedEvent",
    "StepErrorEvent",
    "StepExecutorContinuedEvent",
    "StepExecutorPausedEvent",
    "StepOutputEvent",
    "StepOutputReviewEvent",
    "StepPausedEvent",
    "StepRequirement",
    "StepStartedEvent",
    "StepsCompletedEvent",
    "StepsExecutionCompletedEvent",
    "StepsExecutionStartedEvent",
    "StepsStartedEvent",
    "WorkflowAgentCompletedEvent",
    "WorkflowAgentStartedEvent",
    "WorkflowCancelledEvent",
    "WorkflowCompletedEvent",
    "WorkflowErrorEvent",
    "WorkflowEvent",
    "WorkflowPausedEvent",
    "WorkflowRunEvent",
    "WorkflowRunOutput",
    "WorkflowRunOutputEvent",
    "WorkflowSession",
    "WorkflowStartedEvent",
    "workflow_run_output_event_from_dict",
]


@dataclass
class WorkflowRunOutput:
    """The state of one workflow run: its result when finished, its pauses while paused."""

    run_id: str = field(default_factory=new_id)
    session_id: str = field(default_factory=new_id)
    workflow_name: str | None = None
    input: Annotated[Any, JSONABLE] = None
    content: Annotated[Any, JSONABLE] = None
    status: RunStatus = RunStatus.PENDING
    workflow_id: str | None = None
    error: str | None = None
    step_results: list[StepOutput] = field(default_factory=list)
    step_requirements: list[StepRequirement] = field(default_factory=list)
    additional_data: Annotated[dict[str, Any], JSONABLE] = field(default_factory=dict)
    session_state: Annotated[dict[str, Any] | None, JSONABLE] = None
    user_id: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    # The media the run was given (`run(images=...)`, `kern.media` objects); once it completes, followed by
    # what its steps made, as in the reference API.
    images: ImageList = None
    videos: VideoList = None
    audio: AudioList = None
    files: FileList = None
    # Compare-and-set version of the stored row this copy was read at (managed by kern; not stored).
    version: Annotated[int, Field(exclude=True)] = 0

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
        """Name of the step the run is paused at (None when not paused)."""
        if self.step_requirements:
            active = self.active_requirement
            return active.step_name if active else None
        return self.__dict__.get("_paused_step_name")  # given to the constructor or read from a dict

    @property
    def paused_step_index(self) -> int | None:
        """Index of the top-level step the run is paused in (`active_requirement.step_path` is exact).

        Read from the active requirement; the value given to the constructor (or found by `from_dict`) is
        used only by a run with no `step_requirements`, so it can never go stale."""
        if self.step_requirements:
            active = self.active_requirement
            return active.step_index if active else None
        return self.__dict__.get("_paused_step_index")

    @property
    def active_step_requirements(self) -> list[StepRequirement]:
        """Every requirement still waiting for a decision (of any kind)."""
        return self._open(*KINDS)

    @property
    def error_requirements(self) -> list[StepRequirement]:
        """Every error pause of this run (`on_error="pause"`), resolved ones included, oldest first. They
        are entries of `step_requirements` (an `error_requirements=` given to the constructor is added
        there)."""
        return [r for r in self.step_requirements or [] if r.kind == ERROR]

    @property
    def active_error_requirements(self) -> list[StepRequirement]:
        """Error pauses still waiting for retry() or skip() (the same list as `steps_with_errors`)."""
        return self._open(ERROR)

    def _open(self, *kinds: str) -> list[StepRequirement]:
        return [
            r for r in self.step_requirements or [] if r.kind in kinds and r.status == "pending" and not r.is_resolved
        ]

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
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out; while paused,
        with `paused_step_index` and `paused_step_name` (error pauses are in `step_requirements`)."""
        data = WORKFLOW_RUN_OUTPUT.dump(self)
        for key in _PAUSED_KEYS:
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int = 0) -> WorkflowRunOutput:
        """From `to_dict()` data, or the reference API's form (`paused_step_index`, `paused_step_name` and
        `error_requirements` beside `step_requirements`)."""
        extra = {key: data[key] for key in (*_PAUSED_KEYS, "error_requirements") if data.get(key) is not None}
        if extra:
            data = {k: v for k, v in data.items() if k not in extra}
        run = WORKFLOW_RUN_OUTPUT.load(data)
        run.version = version
        if extra:
            _set_documented(run, **extra)
        return run


# The stored form itself (what the engine saves): `to_dict` adds the reference API's derived keys to it.
WORKFLOW_RUN_OUTPUT = StoredForm(WorkflowRunOutput)
_PAUSED_KEYS = ("paused_step_index", "paused_step_name")
_run_output_init = WorkflowRunOutput.__init__


def _set_documented(
    run: WorkflowRunOutput,
    paused_step_index: int | None = None,
    paused_step_name: str | None = None,
    error_requirements: list[Any] | None = None,
) -> None:
    """Apply the reference API's run fields kern derives: the paused step (kept for a run without
    requirements) and error pauses (added to `step_requirements`, once each)."""
    if paused_step_index is not None:
        run.__dict__["_paused_step_index"] = paused_step_index
    if paused_step_name is not None:
        run.__dict__["_paused_step_name"] = paused_step_name
    if error_requirements:
        if run.step_requirements is None:
            run.step_requirements = []
        known = {r.requirement_id for r in run.step_requirements}
        for entry in error_requirements:
            req = ErrorRequirement.from_dict(entry) if isinstance(entry, dict) else entry
            if req.kind != ERROR:
                raise ValueError(f"error_requirements holds error pauses; got a {req.kind or 'plain'} requirement")
            if req.requirement_id not in known:
                run.step_requirements.append(req)
                known.add(req.requirement_id)


@functools.wraps(_run_output_init)
def _init(
    self: WorkflowRunOutput,
    *args: Any,
    paused_step_index: int | None = None,
    paused_step_name: str | None = None,
    error_requirements: list[Any] | None = None,
    **kwargs: Any,
) -> None:
    """The fields, plus the reference API's `paused_step_index`, `paused_step_name` and
    `error_requirements` (see `_set_documented`)."""
    _run_output_init(self, *args, **kwargs)
    _set_documented(self, paused_step_index, paused_step_name, error_requirements)


WorkflowRunOutput.__init__ = _init  # type: ignore[method-assign]


@dataclass
class WorkflowSession:
    """A session: the runs made under one session id, oldest first."""

    session_id: str
    workflow_name: str | None = None
    user_id: str | None = None
    session_state: dict[str, Any] | None = None
    runs: list[WorkflowRunOutput] = field(default_factory=list)
    workflow_id: str | None = None
    # The reference's session-level fields: only what the caller puts here (kern writes none back).
    session_data: dict[str, Any] | None = None
    workflow_data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    created_at: float | None = None
    updated_at: float | None = None

    def get_run(self, run_id: str) -> WorkflowRunOutput | None:
        """The session's run with this id, or None."""
        return next((run for run in self.runs if run.run_id == run_id), None)


# ----- events ------------------------------------------------------------------------------------
class WorkflowRunEvent(StrEnum):
    """The `event` value of every workflow event, as the reference API names them.

    Compare with `event.event == WorkflowRunEvent.step_started.value` (or the member itself: it is a str).
    """

    workflow_started = "WorkflowStarted"
    workflow_completed = "WorkflowCompleted"
    workflow_cancelled = "WorkflowCancelled"
    workflow_error = "WorkflowError"
    workflow_paused = "WorkflowPaused"
    workflow_agent_started = "WorkflowAgentStarted"
    workflow_agent_completed = "WorkflowAgentCompleted"
    step_started = "StepStarted"
    step_completed = "StepCompleted"
    step_error = "StepError"
    step_paused = "StepPaused"
    step_continued = "StepContinued"
    step_executor_paused = "StepExecutorPaused"
    step_executor_continued = "StepExecutorContinued"
    step_output_review = "StepOutputReview"
    step_output = "StepOutput"
    router_paused = "RouterPaused"
    condition_execution_started = "ConditionExecutionStarted"
    condition_execution_completed = "ConditionExecutionCompleted"
    parallel_execution_started = "ParallelExecutionStarted"
    parallel_execution_completed = "ParallelExecutionCompleted"
    loop_execution_started = "LoopExecutionStarted"
    loop_iteration_started = "LoopIterationStarted"
    loop_iteration_completed = "LoopIterationCompleted"
    loop_execution_completed = "LoopExecutionCompleted"
    router_execution_started = "RouterExecutionStarted"
    router_execution_completed = "RouterExecutionCompleted"
    steps_execution_started = "StepsExecutionStarted"
    steps_execution_completed = "StepsExecutionCompleted"
    custom_event = "CustomEvent"


def step_index_of(path: str | None) -> int | tuple[int, ...] | None:
    """A step path (`2`, `2/else/0`) as the reference API's step index: an int at the top, a tuple below."""
    if not path:
        return None
    numbers = tuple(int(part) for part in path.split("/") if part.isdigit())
    if not numbers:
        return None
    return numbers[0] if len(numbers) == 1 else numbers


def _step_id(path: str | None, name: str | None) -> str | None:
    """A step's id, derived as `StepRequirement.step_id` is, so a pause event's `step_id` equals its
    requirement's."""
    return derived_step_id(path, name) if path else None


def _dump(value: Any) -> Any:
    if isinstance(value, (StepRequirement, StepOutput)) or hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_dump(v) for v in value]
    return to_jsonable(value)


def _load_requirement(value: Any) -> Any:
    return StepRequirement.from_dict(value) if isinstance(value, dict) else value


def _load_executor_requirement(value: Any) -> Any:
    if isinstance(value, dict) and "tool_execution" in value and "id" in value:
        return RunRequirement.from_dict(value)
    return value


def _load_output(value: Any) -> Any:
    if isinstance(value, list):
        return [_load_output(v) for v in value]
    return StepOutput.from_dict(value) if isinstance(value, dict) else value


# How `from_dict` turns the JSON of a field back into objects (fields not listed stay as JSON).
_LOADERS: dict[str, Callable[[Any], Any]] = {
    "requirement": _load_requirement,
    "step_requirements": lambda v: [_load_requirement(r) for r in v] if isinstance(v, list) else v,
    "executor_requirements": lambda v: [_load_executor_requirement(r) for r in v] if isinstance(v, list) else v,
    "step_output": _load_output,
    "step_results": _load_output,
    "all_results": _load_output,
    "iteration_results": _load_output,
}


@dataclass
class WorkflowEvent:
    """Base of every streamed workflow event (the reference API's `BaseWorkflowRunOutputEvent`).

    `to_dict()` / `to_json()` give JSON-ready data and `WorkflowEvent.from_dict(data)` (or
    `workflow_run_output_event_from_dict`) gives the event back, as its own class: events can cross a
    process or a queue and still be matched with `isinstance`.
    """

    event_type: ClassVar[WorkflowRunEvent | None] = None

    run_id: str = ""
    session_id: str = ""
    workflow_name: str | None = None
    created_at: float = field(default_factory=time.time)
    event: str = ""
    workflow_id: str | None = None
    step_id: str | None = None
    parent_step_id: str | None = None
    nested_depth: int = 0

    def __post_init__(self) -> None:
        if self.event_type is not None:
            self.event = self.event_type.value
        elif not self.event:
            self.event = type(self).__name__.removesuffix("Event")

    # ----- (de)serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data; unset (None) fields are left out."""
        data = {f.name: _dump(getattr(self, f.name)) for f in fields(self)}
        return {k: v for k, v in data.items() if v is not None}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkflowEvent:
        """Rebuild an event from `to_dict()` data. Called on the base class, the class is chosen by
        `data["event"]` through `WORKFLOW_RUN_EVENT_TYPE_REGISTRY`; unknown keys are ignored."""
        target: type[WorkflowEvent] = cls
        if cls is WorkflowEvent or cls.event_type is None:
            name = data.get("event")
            target = WORKFLOW_RUN_EVENT_TYPE_REGISTRY.get(str(name), cls) if name else cls
        known = {f.name for f in fields(target) if f.init}
        values = {k: _LOADERS[k](v) if k in _LOADERS else v for k, v in data.items() if k in known}
        return target(**values)


@dataclass
class _StepEvent(WorkflowEvent):
    step_name: str | None = None
    step_path: str | None = None
    step_type: str | None = None
    step_index: int | tuple[int, ...] | list[int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.step_index, list):  # JSON has no tuples
            self.step_index = tuple(self.step_index)
        if self.step_index is None:
            self.step_index = step_index_of(self.step_path)
        if self.step_id is None:
            self.step_id = _step_id(self.step_path, self.step_name)


@dataclass
class WorkflowStartedEvent(WorkflowEvent):
    event_type = WorkflowRunEvent.workflow_started

    input: Any = None
    continued: bool = False


@dataclass
class WorkflowCompletedEvent(WorkflowEvent):
    event_type = WorkflowRunEvent.workflow_completed

    content: Any = None
    content_type: str = "str"
    step_results: list[StepOutput] = field(default_factory=list)
    metadata: dict[str, Any] | None = None


@dataclass
class WorkflowPausedEvent(WorkflowEvent):
    """The run waits for a person. Carries the paused run's state (its `step_requirements`, the last one
    active, and its `step_results`), so a client can resolve and continue from this event alone."""

    event_type = WorkflowRunEvent.workflow_paused

    requirement: StepRequirement | None = None
    pause_kind: str | None = None
    status: str | None = None
    paused_step_index: int | None = None
    paused_step_name: str | None = None
    step_requirements: list[StepRequirement] | None = None
    step_results: list[StepOutput] | None = None
    step_executor_runs: list[Any] | None = None
    content: Any = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        req = self.requirement
        if req is None and self.step_requirements:
            req = self.requirement = self.step_requirements[-1]
        if req is None:
            return
        if self.status is None:
            self.status = RunStatus.PAUSED.value
        if self.paused_step_name is None:
            self.paused_step_name = req.step_name
        if self.paused_step_index is None:
            index = step_index_of(req.step_path.split("/")[0] if req.step_path else None)
            self.paused_step_index = index if isinstance(index, int) else None
        if self.pause_kind is None:
            self.pause_kind = "executor" if req.kind == EXECUTOR else "step"
        if self.step_requirements is None:
            self.step_requirements = [req]

    @property
    def is_paused(self) -> bool:
        return True

    def fill_from(self, run: WorkflowRunOutput) -> None:
        """Take the paused run's full requirement history and results (kern calls this before yielding)."""
        self.step_requirements = list(run.step_requirements)
        self.step_results = list(run.step_results)
        if run.step_requirements:
            self.requirement = run.step_requirements[-1]
        self.content = self.content if self.content is not None else run.content


@dataclass
class WorkflowCancelledEvent(WorkflowEvent):
    event_type = WorkflowRunEvent.workflow_cancelled

    reason: str | None = None
    content: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.content is None:
            self.content = self.reason

    @property
    def is_cancelled(self) -> bool:
        return True


@dataclass
class WorkflowErrorEvent(WorkflowEvent):
    event_type = WorkflowRunEvent.workflow_error

    error: str | None = None
    error_type: str | None = None
    error_id: str | None = None
    additional_data: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.error_type is None and self.error and ":" in self.error:
            head = self.error.split(":", 1)[0]
            if head.isidentifier():  # "ZeroDivisionError: division by zero"
                self.error_type = head


@dataclass
class WorkflowAgentStartedEvent(WorkflowEvent):
    """Defined for the reference API's event set; kern has no workflow agent and never emits it."""

    event_type = WorkflowRunEvent.workflow_agent_started


@dataclass
class WorkflowAgentCompletedEvent(WorkflowEvent):
    """Defined for the reference API's event set; kern has no workflow agent and never emits it."""

    event_type = WorkflowRunEvent.workflow_agent_completed

    content: Any = None


@dataclass
class StepStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.step_started


@dataclass
class StepCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.step_completed

    content: Any = None
    step_output: StepOutput | None = None
    content_type: str = "str"

    @property
    def step_response(self) -> StepOutput | None:
        """The step's full result (the reference API's name for `step_output`)."""
        return self.step_output


@dataclass
class StepErrorEvent(_StepEvent):
    event_type = WorkflowRunEvent.step_error

    error: str | None = None


@dataclass
class StepOutputEvent(_StepEvent):
    """A step's output, sent with stream_events=True just before its StepCompletedEvent."""

    event_type = WorkflowRunEvent.step_output

    step_output: StepOutput | None = None

    @property
    def content(self) -> Any:
        return self.step_output.content if self.step_output else None

    @property
    def success(self) -> bool:
        return bool(self.step_output and self.step_output.success)

    @property
    def error(self) -> str | None:
        return self.step_output.error if self.step_output else None

    @property
    def stop(self) -> bool:
        return bool(self.step_output and self.step_output.stop)


@dataclass
class _PauseEvent(_StepEvent):
    """A pause event: the pause is `requirement` (a StepRequirement); its flat fields are copied onto the
    event as the reference API has them (`requires_confirmation`, `user_input_schema`, ...)."""

    requirement: StepRequirement | None = None

    def _from_requirement(self, names: tuple[str, ...]) -> None:
        req = self.requirement
        if req is None:
            return
        for name in names:
            if getattr(self, name) in (None, False, []):
                value = getattr(req, name, None)
                if name == "user_input_schema" and value is not None:
                    value = [f.to_dict() if hasattr(f, "to_dict") else f for f in value]
                if value is not None:
                    setattr(self, name, value)
        if self.step_name is None:
            self.step_name = req.step_name
        if self.step_path is None and req.step_path:
            self.step_path = req.step_path
            self.step_index = step_index_of(req.step_path) if self.step_index is None else self.step_index
        self.step_id = getattr(req, "step_id", None) or self.step_id or _step_id(self.step_path, self.step_name)
        if self.step_type is None:
            self.step_type = req.step_type


_STEP_PAUSE_FIELDS = (
    "requires_confirmation",
    "confirmation_message",
    "requires_user_input",
    "user_input_message",
    "user_input_schema",
)


@dataclass
class StepPausedEvent(_PauseEvent):
    """A step-level pause (confirmation, user input, error) was reached."""

    event_type = WorkflowRunEvent.step_paused

    requires_confirmation: bool = False
    confirmation_message: str | None = None
    requires_user_input: bool = False
    user_input_message: str | None = None
    user_input_schema: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement(_STEP_PAUSE_FIELDS)


@dataclass
class RouterPausedEvent(StepPausedEvent):
    """A Router waits for the person to choose its route(s)."""

    event_type = WorkflowRunEvent.router_paused

    available_choices: list[str] = field(default_factory=list)
    allow_multiple_selections: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement(("available_choices", "allow_multiple_selections"))


@dataclass
class StepOutputReviewEvent(StepPausedEvent):
    """A step's (or loop iteration's) output waits for review."""

    event_type = WorkflowRunEvent.step_output_review

    requires_output_review: bool = True
    output_review_message: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement(("output_review_message",))


_EXECUTOR_FIELDS = ("executor_id", "executor_name", "executor_run_id", "executor_type")


@dataclass
class StepExecutorPausedEvent(_PauseEvent):
    """The agent or team running a step paused on a tool call; `executor_requirements` are its calls."""

    event_type = WorkflowRunEvent.step_executor_paused

    executor_id: str | None = None
    executor_name: str | None = None
    executor_run_id: str | None = None
    executor_type: str | None = None
    executor_requirements: list[Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement((*_EXECUTOR_FIELDS, "executor_requirements"))


@dataclass
class StepContinuedEvent(_PauseEvent):
    """A continued run applied the decision on a step-level pause."""

    event_type = WorkflowRunEvent.step_continued

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement(())


@dataclass
class StepExecutorContinuedEvent(_PauseEvent):
    """A continued run gave the paused agent or team its decisions."""

    event_type = WorkflowRunEvent.step_executor_continued

    executor_id: str | None = None
    executor_name: str | None = None
    executor_run_id: str | None = None
    executor_type: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self._from_requirement(_EXECUTOR_FIELDS)


@dataclass
class StepsStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.steps_execution_started

    steps_count: int | None = None


@dataclass
class StepsCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.steps_execution_completed

    content: Any = None
    steps_count: int | None = None
    executed_steps: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class ConditionStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.condition_execution_started

    condition_result: bool | None = None


@dataclass
class ConditionCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.condition_execution_completed

    branch: str | None = None
    content: Any = None
    condition_result: bool | None = None
    executed_steps: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class LoopStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.loop_execution_started

    max_iterations: int | None = None


@dataclass
class LoopIterationStartedEvent(_StepEvent):
    """An iteration of a Loop starts (`iteration` counts from 1). With stream_events=True; an iteration
    replayed from the journal after a pause or a takeover is not announced again."""

    event_type = WorkflowRunEvent.loop_iteration_started

    iteration: int = 0
    max_iterations: int | None = None


@dataclass
class LoopIterationCompletedEvent(_StepEvent):
    """An iteration of a Loop finished: its outputs, and whether another may follow (`should_continue`;
    an iteration review may still end the loop). Sent before the iteration's review pause, if any."""

    event_type = WorkflowRunEvent.loop_iteration_completed

    iteration: int = 0
    max_iterations: int | None = None
    iteration_results: list[StepOutput] = field(default_factory=list)
    should_continue: bool = True


@dataclass
class LoopCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.loop_execution_completed

    iterations: int = 0
    content: Any = None
    max_iterations: int | None = None
    all_results: list[Any] = field(default_factory=list)

    @property
    def total_iterations(self) -> int:
        return self.iterations


@dataclass
class RouterStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.router_execution_started

    selected_steps: list[str] = field(default_factory=list)


@dataclass
class RouterCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.router_execution_completed

    selected: list[str] = field(default_factory=list)
    content: Any = None
    executed_steps: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)

    @property
    def selected_steps(self) -> list[str]:
        return self.selected


@dataclass
class ParallelStartedEvent(_StepEvent):
    event_type = WorkflowRunEvent.parallel_execution_started

    parallel_step_count: int | None = None


@dataclass
class ParallelCompletedEvent(_StepEvent):
    event_type = WorkflowRunEvent.parallel_execution_completed

    content: Any = None
    parallel_step_count: int | None = None
    step_results: list[StepOutput] = field(default_factory=list)


@dataclass
class CustomEvent(WorkflowEvent):
    """Base for your own events (subclass it); `event` is "CustomEvent"."""

    event_type = WorkflowRunEvent.custom_event


# The reference API's names for the container events (same classes).
ConditionExecutionStartedEvent = ConditionStartedEvent
ConditionExecutionCompletedEvent = ConditionCompletedEvent
LoopExecutionStartedEvent = LoopStartedEvent
LoopExecutionCompletedEvent = LoopCompletedEvent
RouterExecutionStartedEvent = RouterStartedEvent
RouterExecutionCompletedEvent = RouterCompletedEvent
ParallelExecutionStartedEvent = ParallelStartedEvent
ParallelExecutionCompletedEvent = ParallelCompletedEvent
StepsExecutionStartedEvent = StepsStartedEvent
StepsExecutionCompletedEvent = StepsCompletedEvent
BaseWorkflowRunOutputEvent = WorkflowEvent

# event value -> event class, for `from_dict`: every WorkflowRunEvent member has exactly one class.
WORKFLOW_RUN_EVENT_TYPE_REGISTRY: dict[str, type[WorkflowEvent]] = {}
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, WorkflowEvent) and _cls.event_type is not None:
        WORKFLOW_RUN_EVENT_TYPE_REGISTRY[_cls.event_type.value] = _cls
del _cls

WorkflowRunOutputEvent = WorkflowEvent


def workflow_run_output_event_from_dict(data: dict[str, Any]) -> WorkflowEvent:
    """The event `data` (from `event.to_dict()`) describes, as its own class.

    Raises `ValueError` for an `event` value no workflow event has.
    """
    name = data.get("event")
    if name not in WORKFLOW_RUN_EVENT_TYPE_REGISTRY:
        raise ValueError(f"Unknown workflow event {name!r}; known: {', '.join(WORKFLOW_RUN_EVENT_TYPE_REGISTRY)}")
    return WORKFLOW_RUN_EVENT_TYPE_REGISTRY[name].from_dict(data)
