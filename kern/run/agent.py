"""What an agent (or team) run produces: its output, its tool-call pauses, its events."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

from pydantic import Field, GetCoreSchemaHandler
from pydantic_core import CoreSchema, core_schema

from kern._json import to_jsonable
from kern.ids import new_id
from kern.media import AudioList, FileList, ImageList, VideoList
from kern.run.base import RunStatus
from kern.run.item_access import ItemAccess
from kern.run.requirement_args import as_timestamp
from kern.run.stored import JSONABLE, StoredForm, custom_form
from kern.run.values import AskUserQuestion, UserInputField, coerce_field


@dataclass
class ToolExecution(ItemAccess):
    """One tool call the model made, and what became of it. Its fields can also be read and set as
    items (`tool_execution["confirmed"] = True`), as code for the reference API does with dicts."""

    ITEM_KEYS: ClassVar[tuple[str, ...]] = (
        "tool_call_id",
        "tool_name",
        "tool_args",
        "result",
        "requires_confirmation",
        "requires_user_input",
        "external_execution_required",
        "user_input_schema",
        "confirmed",
        "confirmation_note",
        "answered",
        "user_feedback_schema",
    )

    tool_call_id: str | None = None  # the model's id for the call (None for a call built by hand)
    tool_name: str = ""
    tool_args: Annotated[dict[str, Any], JSONABLE] = field(default_factory=dict)
    result: str | None = None
    requires_confirmation: bool = False
    requires_user_input: bool = False
    external_execution_required: bool = False
    user_input_schema: list[UserInputField] | None = None
    approval_type: str | None = None
    confirmed: bool | None = None
    confirmation_note: str | None = None
    answered: bool | None = None  # True once the person gave the input or the answers it asks for
    member_agent_name: str | None = None
    requires_user_feedback: bool = False
    user_feedback_schema: list[AskUserQuestion] | None = None

    @property
    def is_paused(self) -> bool:
        """Whether the call pauses its run: it asks for a confirmation, input, answers or an outside result."""
        return (
            self.requires_confirmation
            or self.requires_user_input
            or self.requires_user_feedback
            or self.external_execution_required
        )

    def __post_init__(self) -> None:
        if self.user_feedback_schema and not self.requires_user_feedback:
            self.requires_user_feedback = True  # the reference API's form says it by the questions alone

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out."""
        return _TOOL_EXECUTION.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolExecution:
        return _TOOL_EXECUTION.load(data)


class ResolvedFlag:
    """A bool that can also be called: `req.is_resolved` and `req.is_resolved()` both work."""

    __slots__ = ("_value",)

    def __init__(self, value: bool) -> None:
        self._value = bool(value)

    def __bool__(self) -> bool:
        return self._value

    def __call__(self) -> bool:
        return self._value

    def __eq__(self, other: object) -> bool:
        return self._value == (bool(other) if isinstance(other, ResolvedFlag) else other)

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return repr(self._value)


# What each resolving method gives, for the message when the call does not ask for it.
_METHOD_ASKS = {
    "confirm": "confirmation",
    "reject": "confirmation",
    "provide_user_input": "user input",
    "provide_user_feedback": "user feedback",
    "set_external_execution_result": "external execution",
}


@dataclass
class RunRequirement(ItemAccess):
    """A tool call waiting for a person: confirm or reject it, fill in its fields, answer its questions,
    or supply its result.

    The method must fit the requirement (`needs_confirmation`, `needs_user_input`, `needs_user_feedback`,
    `needs_external_execution`); a wrong one is a `ValueError`. The documented attributes
    `confirmation`, `confirmation_note` and `external_execution_result` can be set instead, as
    attributes or as items (`executor_req["confirmation"] = True`); they go through the same methods.
    """

    ITEM_KEYS: ClassVar[tuple[str, ...]] = (
        "id",
        "tool_execution",
        "confirmation",
        "confirmation_note",
        "external_execution_result",
        "user_input_schema",
        "user_feedback_schema",
        "member_agent_id",
        "member_agent_name",
        "member_run_id",
        "created_at",
    )

    tool_execution: ToolExecution
    id: str = field(default_factory=new_id)
    member_agent_id: str | None = None
    member_agent_name: str | None = None
    member_run_id: str | None = None
    approval_id: str | None = None
    created_at: float = field(default_factory=time.time)
    status: str = "pending"  # pending | resolved
    external_result: str | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None

    @property
    def tool(self) -> ToolExecution:
        return self.tool_execution

    @property
    def requirement_id(self) -> str:
        return self.id

    # `needs_*`: what the call still waits for (False once decided, as in the reference API); `kind` says
    # what it asks for whatever its state.
    @property
    def needs_confirmation(self) -> bool:
        """The call waits for `confirm()` or `reject()` (False once either was given)."""
        return self.tool_execution.requires_confirmation and not self.is_resolved

    @property
    def needs_user_input(self) -> bool:
        """The call waits for `provide_user_input(...)` (False once given, or rejected)."""
        return self.tool_execution.requires_user_input and not self.is_resolved

    @property
    def is_external_tool_execution(self) -> bool:
        """The tool runs outside the agent (whether or not its result was given)."""
        return self.tool_execution.external_execution_required

    @property
    def needs_user_feedback(self) -> bool:
        """The agent asks structured questions (`user_feedback_schema`) still unanswered: answer with
        `provide_user_feedback`."""
        return self.tool_execution.requires_user_feedback and not self.is_resolved

    @property
    def user_feedback_schema(self) -> list[AskUserQuestion] | None:
        return self.tool_execution.user_feedback_schema

    @property
    def user_input_schema(self) -> list[UserInputField] | None:
        return self.tool_execution.user_input_schema

    @property
    def needs_external_execution(self) -> bool:
        """The call waits for `set_external_execution_result(...)` (False once given, or rejected)."""
        return self.is_external_tool_execution and not self.is_resolved

    @property
    def is_resolved(self) -> ResolvedFlag:
        """Whether a decision is there. Reads as a bool (`if req.is_resolved:`) and can be called
        (`req.is_resolved()`), as the reference documentation writes it."""
        te = self.tool_execution
        if self.status != "pending" or te.confirmed is False:  # decided, or rejected (whatever it asked)
            return ResolvedFlag(True)
        # every thing the call asks for is given (a call that asks for nothing waits for nothing)
        if te.requires_confirmation and te.confirmed is not True:
            return ResolvedFlag(False)
        if (te.requires_user_feedback or te.requires_user_input) and not te.answered:
            return ResolvedFlag(False)
        # `tool_execution.result` may be set directly instead of set_external_execution_result()
        given = self.external_result is not None or te.result is not None
        return ResolvedFlag(given or not self.is_external_tool_execution)

    @property
    def _asks_anything(self) -> bool:
        te = self.tool_execution
        return bool(
            te.requires_confirmation
            or te.requires_user_input
            or te.requires_user_feedback
            or self.is_external_tool_execution
        )

    # ----- the reference API's attribute names ----------------------------------------------------
    @property
    def confirmation(self) -> bool | None:
        """True (confirmed), False (rejected) or None (undecided). Setting it confirms or rejects."""
        return self.tool_execution.confirmed

    @confirmation.setter
    def confirmation(self, value: bool | None) -> None:
        if value is None or value == self.tool_execution.confirmed:
            return
        if value:
            self.confirm()
        else:
            self.reject(self.tool_execution.confirmation_note)

    @property
    def confirmation_note(self) -> str | None:
        return self.tool_execution.confirmation_note

    @confirmation_note.setter
    def confirmation_note(self, value: str | None) -> None:
        self.tool_execution.confirmation_note = value

    @property
    def external_execution_result(self) -> str | None:
        return self.external_result

    @external_execution_result.setter
    def external_execution_result(self, value: Any) -> None:
        if value is not None and value != self.external_result:
            self.set_external_execution_result(value)

    @property
    def pause_type(self) -> str:
        """What the call waits for: "confirmation", "user_input", "user_feedback" or "external_execution"."""
        return self.kind

    @property
    def kind(self) -> str:
        te = self.tool_execution
        if te.requires_user_feedback:
            return "user_feedback"
        if te.requires_user_input:
            return "user_input"
        if self.is_external_tool_execution:
            return "external_execution"
        return "confirmation"

    def _check(self, method: str, ok: bool, needs: str) -> None:
        if not ok:
            raise ValueError(
                f"{method}() does not apply to the call of tool '{self.tool_execution.tool_name}': it does not "
                f"require {_METHOD_ASKS[method]}; it needs {needs}."
            )
        if self.status != "pending":
            raise ValueError(
                f"The call of tool '{self.tool_execution.tool_name}' was already resolved"
                + (f" by {self.resolved_by}" if self.resolved_by else "")
                + "."
            )

    @property
    def _needs(self) -> str:
        return {
            "user_feedback": "provide_user_feedback(selections)",
            "user_input": "provide_user_input(values)",
            "external_execution": "set_external_execution_result(result)",
        }.get(self.kind, "confirm() or reject(note=...)")

    def _mark(self, by: str | None) -> None:
        self.resolved_by = by
        self.resolved_at = time.time()

    def confirm(self, *, by: str | None = None) -> None:
        """Let the tool run."""
        self._check("confirm", self.tool_execution.requires_confirmation, self._needs)
        self.tool_execution.confirmed = True
        self.tool_execution.confirmation_note = None
        self._mark(by)

    def reject(self, note: str | None = None, *, by: str | None = None) -> None:
        """Refuse the call; the model is told it was rejected, with `note`, and the run goes on."""
        self._check("reject", self._asks_anything, "nothing: it waits for no one")
        self.tool_execution.confirmed = False
        self.tool_execution.confirmation_note = note
        self._mark(by)

    def provide_user_input(self, values: dict[str, Any], *, by: str | None = None) -> None:
        """Fill in the tool's user-input fields. Validated and coerced; a ValueError names every bad field."""
        self._check("provide_user_input", self.tool_execution.requires_user_input, self._needs)
        schema = self.user_input_schema or []
        known = {f.name: f for f in schema}
        problems = [f"unknown field {k!r}" for k in values if k not in known]
        result: dict[str, Any] = {}
        for name, field_def in known.items():
            value = values.get(name, field_def.value)
            if field_def.is_missing(value):
                if field_def.required:
                    blank = value is None or value == ""
                    problems.append(f"{name}: required" + ("" if blank else " (only spaces given)"))
                continue
            try:
                result[name] = coerce_field(field_def, value)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(f"Invalid input for tool '{self.tool_execution.tool_name}': " + "; ".join(problems))
        for field_def in schema:
            field_def.value = result.get(field_def.name)
        self.tool_execution.tool_args.update(result)
        self.tool_execution.answered = True
        self._mark(by)

    def provide_user_feedback(self, selections: dict[str, Any], *, by: str | None = None) -> None:
        """Answer the agent's questions: `{question text: [chosen option labels]}` (a single label may be
        given as a string). Every question needs an answer, single-select questions exactly one, and
        labels must be among the options; a ValueError names every problem and nothing changes."""
        self._check("provide_user_feedback", self.tool_execution.requires_user_feedback, self._needs)
        questions = self.user_feedback_schema or []
        known = {q.question: q for q in questions}
        problems = [f"unknown question {k!r}" for k in selections if k not in known]
        answers: dict[str, list[str]] = {}
        for text, question in known.items():
            chosen = selections.get(text)
            labels = [chosen] if isinstance(chosen, str) else list(chosen or [])
            options = [o.label for o in question.options]
            if not labels:
                problems.append(f"{text!r}: no option chosen")
            elif len(labels) > 1 and not question.multi_select:
                problems.append(f"{text!r}: choose one option (multi_select is False), got {len(labels)}")
            bad = [label for label in labels if label not in options]
            if bad:
                problems.append(f"{text!r}: {', '.join(map(repr, bad))} not among the options {options}")
            answers[text] = list(dict.fromkeys(labels))
        if problems:
            raise ValueError(f"Invalid feedback for tool '{self.tool_execution.tool_name}': " + "; ".join(problems))
        for question in questions:
            question.selected_options = answers[question.question]
            for option in question.options:
                option.selected = option.label in question.selected_options
        self.tool_execution.result = json.dumps(answers)
        self.tool_execution.answered = True
        self._mark(by)

    def set_external_execution_result(self, result: Any, *, by: str | None = None) -> None:
        """Give the result of a tool that runs outside the agent."""
        self._check("set_external_execution_result", self.is_external_tool_execution, self._needs)
        self.external_result = result if isinstance(result, str) else json.dumps(to_jsonable(result))
        self.tool_execution.result = self.external_result
        self._mark(by)

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out."""
        return _RUN_REQUIREMENT.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequirement:
        """From `to_dict()` data, or from the reference API's form (`confirmation`, `confirmation_note`,
        `external_execution_result`, an ISO `created_at`), as a REST body or older code may hold it."""
        return _RUN_REQUIREMENT.load(data)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """The stored form is the fields; the reference API's form is read too (see `from_dict`)."""
        return custom_form(handler(source), load=_load_run_requirement)


# Keys only the reference API's form of a tool-call requirement has (kern keeps the decision and the
# schemas on the tool call).
_REFERENCE_KEYS = frozenset(
    ("confirmation", "confirmation_note", "external_execution_result", "user_input_schema", "user_feedback_schema")
)


def _load_run_requirement(data: Any, load: core_schema.ValidatorFunctionWrapHandler) -> RunRequirement:
    if isinstance(data, dict) and (
        not data.get("id") or not _REFERENCE_KEYS.isdisjoint(data) or not isinstance(data.get("created_at"), float)
    ):
        data = _from_reference(data)
    req: RunRequirement = load(data)
    tool = req.tool_execution
    if req.external_result is not None and tool.result is None:
        tool.result = req.external_result
    return req


def _from_reference(data: dict[str, Any]) -> dict[str, Any]:
    """The reference API's form (or a partial one) as kern's: the decision moved onto the tool call. What
    the tool call itself says wins over the requirement-level copy of the same thing."""
    tool = data.get("tool_execution")
    if tool is None:  # a requirement stored without its call: a placeholder, as the reference API makes
        tool = ToolExecution(tool_name="unknown")
    tool = tool if isinstance(tool, ToolExecution) else ToolExecution.from_dict(tool)
    if data.get("confirmation") is not None and tool.confirmed is None:
        tool.confirmed = bool(data["confirmation"])
    if data.get("confirmation_note") is not None:
        tool.confirmation_note = data["confirmation_note"]
    _merge_user_input(tool, data.get("user_input_schema"))
    _merge_user_feedback(tool, data.get("user_feedback_schema"))
    created = data.get("created_at", 0.0)
    values = {k: v for k, v in data.items() if k not in _REFERENCE_KEYS and v is not None}
    values.update(
        tool_execution=tool,
        created_at=as_timestamp(created, "created_at") if created is not None else 0.0,
    )
    given_id = data.get("id") or tool.tool_call_id
    if given_id:
        values["id"] = given_id
    external = data.get("external_result", data.get("external_execution_result"))
    if external is not None:
        values["external_result"] = external
    return values


def _merge_user_input(tool: ToolExecution, schema: list[Any] | None) -> None:
    """Values filled in on the requirement's copy of the form reach the call's own fields (a value the call
    already has stays). Only when that fills the last empty field is the call answered: a stored pause may
    carry values the model pre-filled, and reading it again must not answer it."""
    if not schema:
        return
    fields = [f if isinstance(f, UserInputField) else UserInputField.from_dict(f) for f in schema]
    if tool.user_input_schema is None:
        tool.user_input_schema = fields
        return
    given = {f.name: f.value for f in fields if f.value is not None}
    merged = False
    for own in tool.user_input_schema:
        if own.value is None and own.name in given:
            own.value = coerce_field(own, given[own.name])
            merged = True
    if merged and tool.answered is None and all(f.value is not None for f in tool.user_input_schema):
        tool.tool_args.update({f.name: f.value for f in tool.user_input_schema})
        tool.answered = True


def _merge_user_feedback(tool: ToolExecution, questions: list[Any] | None) -> None:
    """Answers given on the requirement's copy of the questions reach the call's own (the same rule as
    `_merge_user_input`)."""
    if not questions:
        return
    parsed = [q if isinstance(q, AskUserQuestion) else AskUserQuestion.model_validate(q) for q in questions]
    if tool.user_feedback_schema is None:
        tool.user_feedback_schema = parsed
        tool.requires_user_feedback = True
        return
    given = {q.question: q.selected_options for q in parsed if q.selected_options is not None}
    merged = False
    for own in tool.user_feedback_schema:
        if own.selected_options is None and own.question in given:
            own.selected_options = list(given[own.question] or [])
            for option in own.options:
                option.selected = option.label in own.selected_options
            merged = True
    if merged and tool.answered is None and all(q.selected_options is not None for q in tool.user_feedback_schema):
        tool.result = json.dumps({q.question: q.selected_options for q in tool.user_feedback_schema})
        tool.answered = True


class WaitingTools:
    """The tool calls a paused run waits on, by what they need (its `active_requirements`' calls)."""

    @property
    def active_requirements(self) -> list[RunRequirement]:
        """The requirements still waiting for a decision (each subclass says which)."""
        raise NotImplementedError

    def _waiting(self, flag: str) -> list[ToolExecution]:
        return [r.tool_execution for r in self.active_requirements if getattr(r, flag)]

    @property
    def tools_requiring_confirmation(self) -> list[ToolExecution]:
        """The calls that wait for confirm / reject."""
        return self._waiting("needs_confirmation")

    @property
    def tools_requiring_user_input(self) -> list[ToolExecution]:
        return self._waiting("needs_user_input")

    @property
    def tools_requiring_user_feedback(self) -> list[ToolExecution]:
        return self._waiting("needs_user_feedback")

    @property
    def tools_awaiting_external_execution(self) -> list[ToolExecution]:
        """The calls that run outside the agent and still lack a result: set `tool.result` (or use
        `requirement.set_external_execution_result`) on each, then continue."""
        return self._waiting("needs_external_execution")


@dataclass
class RunOutput(WaitingTools):
    """The state of one agent or team run."""

    run_id: str
    session_id: str
    agent_name: str | None = None
    input: Annotated[Any, JSONABLE] = None
    content: Annotated[Any, JSONABLE] = None
    status: RunStatus = RunStatus.PENDING
    error: str | None = None
    agent_id: str | None = None
    team_id: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[ToolExecution] = field(default_factory=list)
    requirements: list[RunRequirement] = field(default_factory=list)
    model: str | None = None
    user_id: str | None = None
    team_state: dict[str, Any] | None = None
    # Free-form data about the run; `metadata["approval"]` is the approval record that decided a gated call.
    metadata: dict[str, Any] | None = None
    # The session's state as this run left it (tools change it through `session_state` / `run_context`).
    session_state: dict[str, Any] | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    # Media the run made (its tools' `ToolResult`s), as `kern.media` objects; what it was given rides on its
    # user message.
    images: ImageList = None
    videos: VideoList = None
    audio: AudioList = None
    files: FileList = None
    # Compare-and-set version of the stored row this copy was read at (managed by kern; not stored).
    version: Annotated[int, Field(exclude=True)] = 0
    # What the caller gave run / continue_run as `dependencies` (never stored: they may hold secrets).
    dependencies: Annotated[dict[str, Any] | None, Field(exclude=True)] = None

    @property
    def is_paused(self) -> bool:
        return self.status == RunStatus.PAUSED

    @property
    def active_requirements(self) -> list[RunRequirement]:
        """The requirements still waiting for a decision."""
        return [r for r in self.requirements if not r.is_resolved]

    @property
    def team_name(self) -> str | None:
        return self.agent_name

    def to_dict(self) -> dict[str, Any]:
        """The stored form (see `kern.run.stored`): JSON-ready, unset (None) fields left out, and the
        agent's name also as `workflow_name` (what the store indexes on)."""
        return _RUN_OUTPUT.dump(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int = 0) -> RunOutput:
        run = _RUN_OUTPUT.load(data)
        run.version = version
        return run

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return custom_form(handler(source), dump=_dump_run_output)


def _dump_run_output(run: RunOutput, dump: core_schema.SerializerFunctionWrapHandler) -> dict[str, Any]:
    data: dict[str, Any] = dump(run)
    if run.agent_name is not None:
        data["workflow_name"] = run.agent_name
    return data


_TOOL_EXECUTION = StoredForm(ToolExecution)
_RUN_REQUIREMENT = StoredForm(RunRequirement)
_RUN_OUTPUT = StoredForm(RunOutput)


# ----- events ------------------------------------------------------------------------------------
@dataclass
class RunEvent:
    """Base of every streamed agent/team event. An agent's run stamps `agent_id` / `agent_name`, a team's
    `team_id` / `team_name` (and `agent_name`, kern's older name for the same)."""

    run_id: str = ""
    session_id: str = ""
    agent_name: str | None = None
    created_at: float = field(default_factory=time.time)
    event: str = ""
    agent_id: str | None = None
    team_id: str | None = None
    team_name: str | None = None
    content: Any = None
    # Where the run sits when an agent runs inside a workflow step or under another run (the reference API's
    # fields; None for a run of its own).
    parent_run_id: str | None = None
    workflow_id: str | None = None
    workflow_run_id: str | None = None
    step_id: str | None = None
    step_name: str | None = None
    step_index: int | tuple[int, ...] | None = None
    nested_depth: int = 0

    def __post_init__(self) -> None:
        self.event = type(self).__name__.removesuffix("Event")

    @property
    def is_paused(self) -> bool:
        return False


@dataclass
class RunStartedEvent(RunEvent):
    pass


@dataclass
class RunContinuedEvent(RunEvent):
    pass


@dataclass
class RunContentEvent(RunEvent):
    content: str = ""


@dataclass
class ToolCallStartedEvent(RunEvent):
    tool: ToolExecution | None = None


@dataclass
class ToolCallCompletedEvent(RunEvent):
    tool: ToolExecution | None = None


@dataclass
class RunPausedEvent(WaitingTools, RunEvent):
    """The run waits for people; resolve `active_requirements`, then continue with `requirements`.

    `tools` are the paused calls (each requirement's `tool_execution`). Given only `tools`, the event makes a
    requirement for each call that waits for something, as a run does."""

    requirements: list[RunRequirement] = field(default_factory=list)
    tools: list[ToolExecution] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.requirements is None:
            self.requirements = []
        if self.tools is None:
            self.tools = [r.tool_execution for r in self.requirements]
        elif not self.requirements:
            self.requirements = [RunRequirement(tool_execution=t) for t in self.tools if t.is_paused]

    @property
    def is_paused(self) -> bool:
        return True

    @property
    def active_requirements(self) -> list[RunRequirement]:
        return [r for r in self.requirements if not r.is_resolved]


@dataclass
class RunCompletedEvent(RunEvent):
    content: Any = None


@dataclass
class RunErrorEvent(RunEvent):
    error: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.content is None:
            self.content = self.error
