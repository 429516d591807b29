"""Agent: a model, tools and instructions; runs that pause on tool calls and resume from any process."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from typing import Any, Literal, Unpack, overload

from kern._sync import EventStream, event_stream, iterate_sync, run_sync
from kern.db.base import BaseDb, Resolution, StoredRun
from kern.exceptions import RequirementNotResolvedError, StoreError
from kern.ids import new_id
from kern.media import Audio, File, Image, Video, media_fields, without_media
from kern.models.base import Model, ModelResponse, ToolCall
from kern.models.message import Message
from kern.run.agent import (
    RunCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunErrorEvent,
    RunEvent,
    RunOutput,
    RunPausedEvent,
    RunRequirement,
    RunStartedEvent,
    ToolCallCompletedEvent,
    ToolCallStartedEvent,
    ToolExecution,
)
from kern.run.base import RunStatus
from kern.run.context import RunContext
from kern.run.injected import call_with
from kern.run.options import AgentContinueOptions, AgentRunOptions
from kern.session.agent import AgentSession, session_fields
from kern.tools.result import ToolResult
from kern.tools.tool import Tool, tool_result_text
from kern.workflow.executor_scope import STEP_SCOPE

Emit = Callable[[RunEvent], Awaitable[None]]
AGENT_KIND = "agent"
log = logging.getLogger("kern.agent")


def toolkit_instructions(items: Iterable[Any] | None) -> list[str]:
    """The instructions of the toolkits among `items` that ask to add them (`add_instructions=True`)."""
    return [item.instructions for item in items or [] if getattr(item, "add_instructions", False) and item.instructions]


def as_tools(items: Iterable[Any] | None) -> list[Tool]:
    """Tools from functions, `Tool`s and toolkits (objects with a `tools` list)."""
    out: list[Tool] = []
    for item in items or []:
        if isinstance(item, Tool):
            out.append(item)
        elif hasattr(item, "tools") and not callable(item):
            out.extend(as_tools(item.tools))
        elif callable(item):
            out.append(Tool(item))
        else:
            raise TypeError(f"Not a tool: {item!r} (give functions, @tool functions or toolkits)")
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"Tool names must be unique; repeated: {', '.join(dupes)}")
    return out


class Agent:
    """A model that answers with text or tool calls; HITL tools pause the run.

    `run` / `arun` return a `RunOutput`; when `is_paused`, resolve `active_requirements` and call
    `continue_run(run_response=...)` or `continue_run(run_id=..., requirements=...)`, from any process
    sharing `db`. A rejected call is reported to the model with the note and the run goes on.
    """

    kind = AGENT_KIND

    def __init__(
        self,
        name: str | None = None,
        model: Model | None = None,
        tools: Iterable[Any] | None = None,
        instructions: str | list[str] | None = None,
        db: BaseDb | None = None,
        *,
        description: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        max_tool_rounds: int = 20,
        id: str | None = None,
        role: str | None = None,
        markdown: bool = False,
        add_history_to_context: bool = False,
        num_history_runs: int = 3,
        telemetry: bool = True,
        session_state: dict[str, Any] | None = None,
        dependencies: dict[str, Any] | None = None,
        post_hooks: list[Callable[..., Any]] | None = None,
    ) -> None:
        """`role` is what the agent does in a team (its leader reads it); `markdown=True` asks the model
        to answer in markdown; `add_history_to_context=True` gives the model the session's last
        `num_history_runs` completed runs' messages before the new input. `telemetry` has no meaning
        in kern (it sends none): accepted and unused (docs/differences.md).

        `session_state` is a new session's state: tools that declare `session_state` or `run_context`
        read and change it, it is stored with each run and carried to the session's next run
        (`get_session_state`), and `{key}` in the instructions reads it. `dependencies` are given to
        tools that declare `dependencies` or `run_context` (a run's own, `run(dependencies=...)`, win);
        they are never stored, so pass them again to `continue_run`. `post_hooks` are called, in
        order, when a run completes, with what they declare of `run_output`, `agent`, `run_context`,
        `session_state`, `dependencies`, `user_id` and `metadata`; one that raises is logged and the
        run completes (as in the reference API)."""
        self.name = name or "agent"
        # Stable across processes (derived from the name unless given), so a run's events and stored
        # output name the same agent whichever process continues it.
        self.id = id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"kern:{self.kind}:{self.name}"))
        self.model = model
        given = list(tools or [])
        self.tools = as_tools(given)
        self._toolkit_instructions = toolkit_instructions(given)
        self.instructions = instructions
        self.description = description
        # No db: a process-local in-memory SQLite, unless a team this agent joins gives it the team's.
        self.db_given = db is not None
        if db is None:
            from kern.db.sqlite import SqliteDb

            db = SqliteDb()
        self.db = db
        self.session_id = session_id or new_id()
        self.user_id = user_id
        self.max_tool_rounds = max_tool_rounds
        self.role = role
        self.markdown = markdown
        if num_history_runs < 1:
            raise ValueError(f"num_history_runs must be at least 1, got {num_history_runs}")
        self.add_history_to_context = add_history_to_context
        self.num_history_runs = num_history_runs
        self.telemetry = telemetry
        self.session_state = session_state
        self.dependencies = dependencies
        self.post_hooks = list(post_hooks or [])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ----- public API -------------------------------------------------------------------------------
    @overload
    def run(
        self, input: Any = None, *, stream: Literal[False] = False, **options: Unpack[AgentRunOptions]
    ) -> RunOutput: ...
    @overload
    def run(
        self, input: Any = None, *, stream: Literal[True], **options: Unpack[AgentRunOptions]
    ) -> Iterator[RunEvent]: ...
    @overload
    def run(
        self, input: Any = None, *, stream: bool = False, **options: Unpack[AgentRunOptions]
    ) -> RunOutput | Iterator[RunEvent]: ...
    def run(self, input: Any = None, *, stream: bool = False, **kwargs: Any) -> RunOutput | Iterator[RunEvent]:
        """Run to an answer or a pause; `stream=True` yields events (text pieces as RunContentEvent)."""
        result = self.arun(input, stream=stream, **kwargs)
        return iterate_sync(result) if isinstance(result, EventStream) else run_sync(result)

    @overload
    def arun(
        self, input: Any = None, *, stream: Literal[False] = False, **options: Unpack[AgentRunOptions]
    ) -> Coroutine[Any, Any, RunOutput]: ...
    @overload
    def arun(
        self, input: Any = None, *, stream: Literal[True], **options: Unpack[AgentRunOptions]
    ) -> EventStream[RunEvent]: ...
    @overload
    def arun(
        self, input: Any = None, *, stream: bool = False, **options: Unpack[AgentRunOptions]
    ) -> Coroutine[Any, Any, RunOutput] | EventStream[RunEvent]: ...
    def arun(
        self,
        input: Any = None,
        *,
        stream: bool = False,
        session_id: str | None = None,
        user_id: str | None = None,
        run_id: str | None = None,
        messages: list[Any] | None = None,
        session_state: dict[str, Any] | None = None,
        dependencies: dict[str, Any] | None = None,
        audio: Sequence[Audio] | None = None,
        images: Sequence[Image] | None = None,
        videos: Sequence[Video] | None = None,
        files: Sequence[File] | None = None,
    ) -> Coroutine[Any, Any, RunOutput] | EventStream[RunEvent]:
        """Async `run`: await it, or `async for` over it with `stream=True`.

        `input` is a text (or any JSON-able value), or the conversation itself: a `Message`, a message
        dict (`{"role": "user", "content": ...}`) or a list of them; `messages=[...]` says the same.
        `images`, `audio`, `videos` and `files` (`kern.media`) go with the input to the model, and are
        stored on the run's user message (`Message.from_dict(run.messages[i]).images`)."""
        conversation = message_dicts(messages if messages is not None else input)
        if conversation is not None:
            input = conversation
        media = media_fields(images=images, audio=audio, videos=videos, files=files)
        run = RunOutput(
            run_id=run_id or new_id(),
            session_id=session_id or self.session_id,
            agent_name=self.name,
            agent_id=self.id if self.kind == AGENT_KIND else None,
            team_id=None if self.kind == AGENT_KIND else self.id,
            input=input,
            status=RunStatus.RUNNING,
            model=getattr(self.model, "id", None),
            user_id=user_id or self.user_id,
            dependencies=dependencies if dependencies is not None else self.dependencies,
        )

        async def start(emit: Emit | None) -> RunOutput:
            if session_state is not None or self.session_state is not None:
                run.session_state = {**(await self.aget_session_state(run.session_id)), **(session_state or {})}
            run.messages = self._first_messages(input, conversation, run.session_state)
            if media:  # on the (last) user message, where the model reads them
                user = next((m for m in reversed(run.messages) if m.get("role") == "user"), None)
                if user is None:
                    run.messages.append(user := {"role": "user", "content": ""})
                user.update(media)
            if self.add_history_to_context:
                await self._add_history(run)
            driver = _Driver(self, run, 0, emit, emit is not None)
            await driver.emit(RunStartedEvent())
            return await driver.drive()

        if stream:
            return event_stream(start)
        scope = STEP_SCOPE.get()
        if scope is not None:  # inside a workflow step: journaled, a pause pauses the workflow, events to its stream
            return scope.run_agent(self, start)
        return start(None)

    @overload
    def continue_run(
        self,
        run_response: RunOutput | None = None,
        *,
        stream: Literal[False] = False,
        **options: Unpack[AgentContinueOptions],
    ) -> RunOutput: ...
    @overload
    def continue_run(
        self, run_response: RunOutput | None = None, *, stream: Literal[True], **options: Unpack[AgentContinueOptions]
    ) -> Iterator[RunEvent]: ...
    @overload
    def continue_run(
        self, run_response: RunOutput | None = None, *, stream: bool = False, **options: Unpack[AgentContinueOptions]
    ) -> RunOutput | Iterator[RunEvent]: ...
    def continue_run(
        self,
        run_response: RunOutput | None = None,
        *,
        run_id: str | None = None,
        requirements: list[RunRequirement] | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> RunOutput | Iterator[RunEvent]:
        """Resume a paused run once every active requirement is resolved."""
        result = self.acontinue_run(run_response, run_id=run_id, requirements=requirements, stream=stream, **kwargs)
        return iterate_sync(result) if isinstance(result, EventStream) else run_sync(result)

    @overload
    def acontinue_run(
        self,
        run_response: RunOutput | None = None,
        *,
        stream: Literal[False] = False,
        **options: Unpack[AgentContinueOptions],
    ) -> Coroutine[Any, Any, RunOutput]: ...
    @overload
    def acontinue_run(
        self, run_response: RunOutput | None = None, *, stream: Literal[True], **options: Unpack[AgentContinueOptions]
    ) -> EventStream[RunEvent]: ...
    @overload
    def acontinue_run(
        self, run_response: RunOutput | None = None, *, stream: bool = False, **options: Unpack[AgentContinueOptions]
    ) -> Coroutine[Any, Any, RunOutput] | EventStream[RunEvent]: ...
    def acontinue_run(
        self,
        run_response: RunOutput | None = None,
        *,
        run_id: str | None = None,
        requirements: list[RunRequirement] | None = None,
        stream: bool = False,
        session_id: str | None = None,
        dependencies: dict[str, Any] | None = None,
    ) -> Coroutine[Any, Any, RunOutput] | EventStream[RunEvent]:
        """Async `continue_run` (`dependencies`: as for `run`; they are not stored with the run)."""
        if run_response is None and run_id is None:
            raise ValueError("continue_run needs run_response=... or run_id=...")
        target = run_response.run_id if run_response is not None else run_id
        assert target is not None
        supplied = list(requirements or []) + (list(run_response.requirements) if run_response else [])
        expected = run_response.version if run_response is not None and run_response.version else None

        async def resume(emit: Emit | None) -> RunOutput:
            approvals = await self.db.approvals_for_run(target)

            def prepare(stored: StoredRun) -> tuple[dict[str, Any], dict[str, Any], list[Resolution]]:
                if stored.status != "PAUSED":  # taking over a run whose process died
                    return stored.output, stored.journal, []
                output = RunOutput.from_dict(stored.output, stored.version)
                resolutions = apply_resolutions(output, supplied, approvals)
                output.status = RunStatus.RUNNING
                return output.to_dict(), stored.journal, resolutions

            stored, version = await self.db.claim(target, expected_version=expected, prepare=prepare)
            run = RunOutput.from_dict(stored.output, version)
            run.dependencies = dependencies if dependencies is not None else self.dependencies
            driver = _Driver(self, run, version, emit, emit is not None)
            await driver.emit(RunContinuedEvent())
            return await driver.drive()

        return event_stream(resume) if stream else resume(None)

    async def _stored_runs(self, session_id: str) -> list[RunOutput]:
        return [RunOutput.from_dict(s.output, s.version) for s in await self.db.session_runs(session_id, self.kind)]

    async def _add_history(self, run: RunOutput) -> None:
        """Put the session's last completed runs' messages (their own, not the history they were given)
        before the new input, each marked `from_history`."""
        earlier = [r for r in await self._stored_runs(run.session_id) if r.status == RunStatus.COMPLETED]
        history = [
            {**without_media(message), "from_history": True}
            for past in earlier[-self.num_history_runs :]
            for message in past.messages
            if message.get("role") != "system" and not message.get("from_history")
        ]
        at = 1 if run.messages and run.messages[0].get("role") == "system" else 0
        run.messages[at:at] = history

    async def aget_session(self, session_id: str | None = None) -> AgentSession:
        """The session (default: this agent's) with its runs, oldest first, as stored."""
        sid = session_id or self.session_id
        runs = await self._stored_runs(sid)
        return AgentSession(agent_id=self.id, **session_fields(sid, runs))

    def get_session(self, session_id: str | None = None) -> AgentSession:
        return run_sync(self.aget_session(session_id))

    async def aget_run(self, run_id: str) -> RunOutput:
        stored = await self.db.load_run(run_id)
        return RunOutput.from_dict(stored.output, stored.version)

    def get_run(self, run_id: str) -> RunOutput:
        return run_sync(self.aget_run(run_id))

    # ----- internals --------------------------------------------------------------------------------
    def system_prompt(self) -> str | None:
        parts: list[str] = []
        if self.description:
            parts.append(self.description)
        if isinstance(self.instructions, str):
            parts.append(self.instructions)
        elif self.instructions:
            parts.extend(self.instructions)
        parts.extend(t.instructions for t in self.tools if t.instructions)
        parts.extend(self._toolkit_instructions)
        if self.markdown:
            parts.append("Use markdown to format your answers.")
        return "\n\n".join(parts) or None

    def _first_messages(
        self, input: Any, conversation: list[dict[str, Any]] | None = None, state: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        system = self.system_prompt()
        if system and state:
            system = re.sub(r"\{(\w+)\}", lambda m: str(state[m[1]]) if m[1] in state else m[0], system)
        if system:
            messages.append({"role": "system", "content": system})
        if conversation is not None:
            return messages + conversation
        text = input if isinstance(input, str) else json.dumps(input, default=str)
        messages.append({"role": "user", "content": text})
        return messages

    def tools_for_run(self, run: RunOutput) -> list[Tool]:
        """The tools the model may call in this run (a Team adds its delegation tool)."""
        return self.tools

    async def on_pending(self, run: RunOutput, requirement: RunRequirement) -> None:
        """Hook before a pending requirement is persisted (a Team routes member requirements here)."""

    async def settle_delegations(self, run: RunOutput) -> list[tuple[str, str, str]]:
        """Hook for teams: forward resolved member requirements to their member runs.

        Returns (tool_call_id, tool_name, result) for every delegation that finished.
        """
        return []

    def run_values(self, run: RunOutput) -> dict[str, Any]:
        """What the run gives the user code it calls (tools, hooks) that asks for it by parameter name."""
        if run.session_state is None and self.session_state is not None:
            run.session_state = dict(self.session_state)
        context = RunContext(
            run_id=run.run_id,
            session_id=run.session_id,
            user_id=run.user_id,
            dependencies=run.dependencies,
            metadata=run.metadata,
            session_state=run.session_state,
        )
        return {
            "run_context": context,
            "session_state": run.session_state,
            "dependencies": run.dependencies,
            "agent": self,
            "run_output": run,
            "user_id": run.user_id,
            "metadata": run.metadata,
        }

    async def aget_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        """The session's state as its last run left it (a copy), else the agent's `session_state`."""
        for past in reversed(await self._stored_runs(session_id or self.session_id)):
            if past.session_state is not None:
                return dict(past.session_state)
        return dict(self.session_state or {})

    def get_session_state(self, session_id: str | None = None) -> dict[str, Any]:
        """Sync `aget_session_state`."""
        return run_sync(self.aget_session_state(session_id))

    async def run_post_hooks(self, run: RunOutput) -> None:
        """Call the post-hooks on a completed run; one that raises is logged (naming it) and skipped."""
        values = self.run_values(run)
        for hook in self.post_hooks:
            try:
                await call_with(hook, (), values)
            except Exception:
                log.exception("Post-hook %s of agent '%s' failed", getattr(hook, "__name__", hook), self.name)
        run.session_state = values["run_context"].session_state  # a hook may have replaced the dict

    async def run_tool(self, run: RunOutput, tool: Tool, execution: ToolExecution) -> str:
        """Execute a tool call; an exception becomes an error message for the model."""
        values = self.run_values(run)
        try:
            result = await tool.execute(execution.tool_args, values)
            if isinstance(result, ToolResult):  # media the tool made reach the run's output
                result = result.add_media_to(run)
            return tool_result_text(result)
        except Exception as exc:
            return f"Error running tool {tool.name}: {type(exc).__name__}: {exc}"
        finally:
            run.session_state = values["run_context"].session_state  # a tool may have replaced the dict


def take_decision(stored: RunRequirement, given: RunRequirement) -> RunRequirement:
    """The stored requirement with the caller's decision on it (only decision fields are taken)."""
    merged = RunRequirement.from_dict(stored.to_dict())
    te, src = merged.tool_execution, given.tool_execution
    te.confirmed, te.confirmation_note, te.answered = src.confirmed, src.confirmation_note, src.answered
    if src.answered:
        te.tool_args = dict(src.tool_args)
        te.user_input_schema = src.user_input_schema
        # values filled in on the form (a REST client sets `value` on each field) are the call's input
        te.tool_args.update({f.name: f.value for f in src.user_input_schema or [] if f.value is not None})
        if te.requires_user_feedback:
            te.user_feedback_schema, te.result = src.user_feedback_schema, src.result
    merged.external_result = given.external_result
    if merged.external_result is None and te.external_execution_required and src.result is not None:
        merged.external_result = tool_result_text(src.result)  # the result was set on tool_execution directly
    if merged.external_result is not None:
        te.result = merged.external_result
    merged.resolved_by, merged.resolved_at = given.resolved_by, given.resolved_at
    fields = src.user_input_schema or []
    if te.requires_user_input and not te.answered and te.confirmed is not False and fields:
        if all(f.value is not None for f in fields):  # answered by setting each field's `value`
            merged.provide_user_input({f.name: f.value for f in fields}, by=given.resolved_by)
    return merged


def apply_approval(req: RunRequirement, record: dict[str, Any]) -> None:
    """Put a decided approval record's decision on its call: the approver's, whatever the caller said."""
    te = req.tool_execution
    data = record.get("resolution_data") or {}
    if record["status"] != "approved":
        te.confirmed, te.confirmation_note = False, data.get("note")
    else:
        te.confirmed, te.confirmation_note = True, None
        if te.requires_user_input and not te.answered:
            values = data.get("values", data)
            known = {f.name for f in te.user_input_schema or []}
            req.provide_user_input({k: v for k, v in values.items() if k in known})
        if te.external_execution_required and "result" in data:
            req.external_result = tool_result_text(data["result"])
            te.result = req.external_result
    req.resolved_by = record.get("resolved_by")
    req.resolved_at = record.get("resolved_at")


def apply_resolutions(
    output: RunOutput, supplied: list[RunRequirement], approvals: dict[str, dict[str, Any]]
) -> list[Resolution]:
    """Merge the caller's decisions into the stored pending requirements; refuse if any is missing.

    An approval-gated call takes its decision from its approval record once the record is decided
    (approved confirms, or gives the approver's `values` / `result`; rejected rejects with the note);
    the record is then the run's `metadata["approval"]`. While the record is pending the caller's own
    decision counts, as in the reference API (the record stays pending); with neither, it refuses.
    """
    by_id = {r.id: r for r in supplied}
    resolutions: list[Resolution] = []
    unresolved: list[str] = []
    for index, req in enumerate(output.requirements):
        if req.status != "pending":
            continue
        given = by_id.get(req.id)
        if (
            given is not None
            and given.needs_user_input
            and any(f.value is not None for f in given.user_input_schema or [])
        ):
            given.provide_user_input({})  # the fields were filled in place (`field.value = ...`): checked as given
        if given is not None and given is not req:
            req = output.requirements[index] = take_decision(req, given)
        record = approvals.get(req.approval_id or "")
        if record is not None and req.tool_execution.approval_type == "required":
            if record["status"] != "pending":
                apply_approval(req, record)
                output.metadata = {**(output.metadata or {}), "approval": record}
            elif not req.is_resolved:
                raise RequirementNotResolvedError(
                    f"Approval {record['id']} for tool '{req.tool_execution.tool_name}' is still pending; "
                    "resolve it (db.update_approval / db.resolve_approval) or decide the call before continuing."
                )
        if req.is_external_tool_execution and req.external_result is None and req.tool_execution.result is not None:
            req.external_result = tool_result_text(req.tool_execution.result)
        if not req.is_resolved:
            unresolved.append(f"'{req.tool_execution.tool_name}' ({req.kind}: {req._needs})")
            continue
        req.status = "resolved"
        te = req.tool_execution
        action = (
            "reject"
            if te.confirmed is False
            else {"user_input": "input", "external_execution": "result", "user_feedback": "feedback"}.get(
                req.kind, "confirm"
            )
        )
        resolutions.append(
            Resolution(
                requirement_id=req.id,
                status="resolved",
                resolved_by=req.resolved_by,
                resolved_at=req.resolved_at or time.time(),
                decision={
                    "action": action,
                    "tool": te.tool_name,
                    "args": te.tool_args,
                    "member": req.member_agent_name,
                },
                step_name=te.tool_name,
                kind=f"tool_{req.kind}",
                note=te.confirmation_note,
                approval_type=te.approval_type,
                approval_id=req.approval_id,
            )
        )
    if unresolved:
        raise RequirementNotResolvedError(
            f"Run {output.run_id} still waits on tool call(s) {', '.join(unresolved)}; resolve every entry of "
            "active_requirements before continue_run."
        )
    return resolutions


class _Driver:
    """One drive of one agent run: model turns, tool calls, pauses, persistence, events."""

    def __init__(self, agent: Agent, run: RunOutput, version: int, emit: Emit | None, stream: bool) -> None:
        self.agent = agent
        self.run = run
        self.version = version
        self._emit = emit
        self.stream = stream

    async def emit(self, event: RunEvent) -> None:
        if self._emit is not None:
            event.run_id, event.session_id, event.agent_name = self.run.run_id, self.run.session_id, self.agent.name
            if self.agent.kind == AGENT_KIND:
                event.agent_id = self.agent.id
            else:
                from kern.run.team import as_team_event  # (kern.run.team imports the agent events)

                event = as_team_event(event)  # the documented team classes and values
                event.team_id, event.team_name = self.agent.id, self.agent.name
            await self._emit(event)

    async def save(self, approvals: list[dict[str, Any]] | None = None) -> None:
        self.run.updated_at = time.time()
        pause = None
        if self.run.status == RunStatus.PAUSED:
            pause = {"requirement_id": self.run.active_requirements[0].id if self.run.active_requirements else ""}
        self.version = await self.agent.db.save_run(
            self.run.to_dict(),
            {},
            version=self.version,
            new_requirement=pause,
            kind=self.agent.kind,
            approvals=approvals,
        )
        self.run.version = self.version

    async def drive(self) -> RunOutput:
        run = self.run
        run.status = RunStatus.RUNNING
        final: RunEvent
        approvals: list[dict[str, Any]] = []
        try:
            await self._apply_decisions()
            rounds = 0 if run.active_requirements else self.agent.max_tool_rounds  # a member paused again
            if rounds == 0:
                run.status = RunStatus.PAUSED
            for _ in range(rounds):
                await self.save()  # journal: every tool result so far survives a crash
                response = await self._model_turn()
                run.messages.append(response.as_message())
                if not response.tool_calls:
                    run.content = response.content
                    run.status = RunStatus.COMPLETED
                    await self.agent.run_post_hooks(run)
                    break
                approvals = await self._handle_calls(response.tool_calls)
                if run.active_requirements:
                    run.status = RunStatus.PAUSED
                    break
            else:
                if rounds:
                    raise RuntimeError(f"'{self.agent.name}' made more than {rounds} tool rounds without answering")
        except Exception as exc:
            if type(exc).__name__ == "LostOwnershipError" or isinstance(exc, StoreError):
                raise  # not the run's failure: it stays as last stored, never ERROR for a db blip
            run.status = RunStatus.ERROR
            run.error = f"{type(exc).__name__}: {exc}"
            run.content = run.error
        await self.save(approvals)
        if run.status == RunStatus.PAUSED:
            final = RunPausedEvent(requirements=list(run.requirements))
        elif run.status == RunStatus.COMPLETED:
            final = RunCompletedEvent(content=run.content)
        else:
            final = RunErrorEvent(error=run.error)
        await self.emit(final)
        return run

    async def _model_turn(self) -> ModelResponse:
        model = self.agent.model
        if model is None:
            raise ValueError(f"Agent '{self.agent.name}' has no model")
        tools = self.agent.tools_for_run(self.run)
        if not self.stream:
            return await model.aresponse(self.run.messages, tools)
        final: ModelResponse | None = None
        async for piece in model.astream(self.run.messages, tools):
            if isinstance(piece, ModelResponse):
                final = piece
            else:
                await self.emit(RunContentEvent(content=piece))
        assert final is not None
        return final

    async def _handle_calls(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        """Run the calls that need nobody; turn the others into pending requirements."""
        run = self.run
        by_name = {t.name: t for t in self.agent.tools_for_run(run)}
        approvals: list[dict[str, Any]] = []
        for call in calls:
            tool = by_name.get(call.name)
            try:
                args = json.loads(call.arguments or "{}")
                if not isinstance(args, dict):
                    raise ValueError("arguments must be a JSON object")
            except ValueError as exc:
                self._tool_message(call.id, call.name, f"Invalid arguments for {call.name}: {exc}")
                continue
            execution = ToolExecution(tool_call_id=call.id, tool_name=call.name, tool_args=args)
            run.tools.append(execution)
            if tool is None:
                self._tool_message(call.id, call.name, f"Unknown tool {call.name!r}")
                continue
            if getattr(tool, "delegates", False) or not tool.requires_hitl:
                await self.emit(ToolCallStartedEvent(tool=execution))
                execution.result = await self.agent.run_tool(run, tool, execution)
                if execution.result is None:  # a member paused: the team holds this call open
                    continue
                self._tool_message(call.id, call.name, execution.result)
                await self.emit(ToolCallCompletedEvent(tool=execution))
                continue
            execution.requires_confirmation = tool.requires_confirmation
            execution.requires_user_input = tool.requires_user_input
            execution.external_execution_required = tool.external_execution
            execution.approval_type = tool.approval_type
            execution.requires_user_feedback = tool.requires_user_feedback
            try:
                if tool.requires_user_input:
                    execution.user_input_schema = tool.user_input_schema(args)
                if tool.requires_user_feedback:
                    execution.user_feedback_schema = tool.user_feedback_schema(args)
            except ValueError as exc:  # the model's arguments do not fit: tell it, do not pause
                run.tools.remove(execution)
                self._tool_message(call.id, call.name, f"Invalid arguments for {call.name}: {exc}")
                continue
            requirement = RunRequirement(tool_execution=execution)
            if tool.approval_type == "required":
                requirement.approval_id = new_id()
                approvals.append(
                    {
                        "id": requirement.approval_id,
                        "requirement_id": requirement.id,
                        "tool_name": tool.name,
                        "tool_args": args,
                        "approval_type": "required",
                    }
                )
            run.requirements.append(requirement)
        return approvals

    async def _apply_decisions(self) -> None:
        """Give every resolved call its result (run, rejected or supplied), once."""
        run = self.run
        for call_id, name, result in await self.agent.settle_delegations(run):
            self._tool_message(call_id, name, result)
        answered = {m.get("tool_call_id") for m in run.messages if m.get("role") == "tool"}
        by_name = {t.name: t for t in self.agent.tools_for_run(run)}
        for req in run.requirements:
            te = req.tool_execution
            if req.status != "resolved" or req.member_run_id or te.tool_call_id in answered:
                continue
            if te.confirmed is False:
                result = f"The user rejected the call to {te.tool_name}." + (
                    f" Note: {te.confirmation_note}" if te.confirmation_note else ""
                )
            elif req.is_external_tool_execution:
                result = req.external_result or te.result or ""
            elif te.requires_user_feedback:
                result = te.result or "{}"
            else:
                tool = by_name.get(te.tool_name)
                if tool is None:
                    result = f"Unknown tool {te.tool_name!r}"
                else:
                    await self.emit(ToolCallStartedEvent(tool=te))
                    result = await self.agent.run_tool(run, tool, te)
            te.result = result
            self._tool_message(te.tool_call_id or "", te.tool_name, result)  # the model's calls have ids
            await self.emit(ToolCallCompletedEvent(tool=te))

    def _tool_message(self, call_id: str, name: str, content: str) -> None:
        self.run.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": content})


def message_dicts(value: Any) -> list[dict[str, Any]] | None:
    """`value` as a conversation (messages in kern's stored shape), if it is one: a `Message`, a message
    dict, or a list of them; else None. Content given as parts (`[{"type": "text", "text": ...}]`) is
    joined into its text, which every model API accepts."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(m, Message) or (isinstance(m, dict) and "role" in m) for m in items):
        return None
    result = []
    for item in items:
        message = item.to_dict() if isinstance(item, Message) else dict(item)
        content = message.get("content")
        if isinstance(content, list) and all(isinstance(p, dict) and "text" in p for p in content):
            message["content"] = "\n".join(str(p["text"]) for p in content)
        message.pop("id", None)
        result.append(message)
    return result
