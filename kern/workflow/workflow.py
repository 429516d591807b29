"""Workflow: the public entry point for running, pausing and continuing a step tree."""

from __future__ import annotations

import contextlib
import copy
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Unpack, overload

from pydantic import BaseModel

from kern._sync import EventStream, event_stream, iterate_sync, run_sync
from kern.db.base import BaseDb, Resolution, StoredRun
from kern.exceptions import (
    RequirementNotResolvedError,
    RunAlreadyResumedError,
    RunNotPausedError,
    WrongWorkflowError,
)
from kern.ids import new_id
from kern.media import Audio, File, Image, Video, media_fields
from kern.run.agent import RunEvent
from kern.run.base import RunStatus
from kern.run.options import WorkflowAsyncContinueOptions, WorkflowContinueOptions, WorkflowRunOptions
from kern.run.requirement import EXECUTOR, STEP_REQUIREMENT, StepRequirement
from kern.run.workflow import (
    StepContinuedEvent,
    StepExecutorContinuedEvent,
    WorkflowEvent,
    WorkflowPausedEvent,
    WorkflowRunOutput,
    WorkflowStartedEvent,
)
from kern.workflow import journal
from kern.workflow.engine import RunContext, drive
from kern.workflow.journal import check_journal
from kern.workflow.node import Node
from kern.workflow.step import as_nodes
from kern.workflow.stored_runs import StoredRuns, read_run

# A streamed run yields workflow events and, inside steps run by agents or teams, their own events.
Emit = Callable[[WorkflowEvent | RunEvent], Awaitable[None]]


class Workflow(StoredRuns):
    """A named tree of steps whose runs can pause for people and resume from any process.

    `db` keeps runs, pauses and the journal (`SqliteDb` or `PostgresDb`); without one, runs live in a
    process-local in-memory database and pauses do not survive the process.
    """

    kind: ClassVar[str] = "workflow"  # how a step tree recognises a Workflow given as a step

    def __init__(
        self,
        name: str | None = None,
        db: BaseDb | None = None,
        steps: Iterable[Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        description: str | None = None,
        *,
        additional_data: dict[str, Any] | None = None,
        session_state: dict[str, Any] | None = None,
        id: str | None = None,
        input_schema: type[BaseModel] | None = None,
        stream_executor_events: bool = True,
        telemetry: bool = True,
    ) -> None:
        """`stream_executor_events=False` keeps the events of agents and teams running as steps out of a
        streamed run (their completion still shows)."""
        self.stream_executor_events = stream_executor_events
        self.telemetry = telemetry  # no meaning in kern (it sends none): accepted, unused (docs/differences.md)
        self.name = name or "workflow"
        # documented `id`; when not given, stable across processes like an Agent's (events' `workflow_id`)
        self.id = id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"kern:workflow:{self.name}"))
        if db is None:
            from kern.db.sqlite import SqliteDb

            db = SqliteDb()
        if not isinstance(db, BaseDb):
            raise TypeError(f"Workflow {self.name!r}: db must be a SqliteDb or PostgresDb, got {type(db).__name__}")
        self.db = db
        self.steps: list[Node] = as_nodes(list(steps) if steps is not None else [])
        self.session_id = session_id or new_id()
        self.user_id = user_id
        self.description = description
        self.additional_data = additional_data or {}
        self.session_state = session_state
        if input_schema is not None and not (isinstance(input_schema, type) and issubclass(input_schema, BaseModel)):
            raise TypeError(f"Workflow {self.name!r}: input_schema must be a pydantic model class")
        self.input_schema = input_schema

    def validate_input(self, input: Any) -> Any:
        """`input` as the steps receive it: with an `input_schema`, an instance of that model (a matching
        dict or JSON object string is parsed into it); without one, `input` unchanged.

        Raises `ValueError` (pydantic's `ValidationError` for invalid data) for input that does not fit.
        """
        schema = self.input_schema
        if schema is None or isinstance(input, schema):
            return input
        if isinstance(input, BaseModel):
            raise ValueError(f"Workflow {self.name!r} expects {schema.__name__}, got {type(input).__name__}.")
        if isinstance(input, str):
            try:
                input = json.loads(input)
            except ValueError:
                raise ValueError(f"Workflow {self.name!r} expects a JSON object for {schema.__name__}.") from None
        if not isinstance(input, dict):
            raise ValueError(f"Workflow {self.name!r} expects {schema.__name__}, got {type(input).__name__}.")
        return schema.model_validate(input)

    def __repr__(self) -> str:
        return f"Workflow(name={self.name!r}, steps={[s.name for s in self.steps]})"

    # ----- run ------------------------------------------------------------------------------------
    @overload
    def run(
        self, input: Any = None, *, stream: Literal[False] = False, **options: Unpack[WorkflowRunOptions]
    ) -> WorkflowRunOutput: ...
    @overload
    def run(
        self, input: Any = None, *, stream: Literal[True], **options: Unpack[WorkflowRunOptions]
    ) -> Iterator[WorkflowEvent | RunEvent]: ...
    @overload
    def run(
        self, input: Any = None, *, stream: bool = False, **options: Unpack[WorkflowRunOptions]
    ) -> WorkflowRunOutput | Iterator[WorkflowEvent | RunEvent]: ...
    def run(
        self,
        input: Any = None,
        *,
        additional_data: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        session_state: dict[str, Any] | None = None,
        run_id: str | None = None,
        stream: bool = False,
        stream_events: bool = False,
        audio: Sequence[Audio] | None = None,
        images: Sequence[Image] | None = None,
        videos: Sequence[Video] | None = None,
        files: Sequence[File] | None = None,
    ) -> WorkflowRunOutput | Iterator[WorkflowEvent | RunEvent]:
        """Run the workflow to its end or its first pause. `stream=True` yields events instead."""
        result = self.arun(
            input,
            additional_data=additional_data,
            user_id=user_id,
            session_id=session_id,
            session_state=session_state,
            run_id=run_id,
            stream=stream,
            stream_events=stream_events,
            audio=audio,
            images=images,
            videos=videos,
            files=files,
        )
        if isinstance(result, EventStream):  # exactly when stream=True
            return iterate_sync(result)
        return run_sync(result)

    @overload
    def arun(
        self, input: Any = None, *, stream: Literal[False] = False, **options: Unpack[WorkflowRunOptions]
    ) -> Coroutine[Any, Any, WorkflowRunOutput]: ...
    @overload
    def arun(
        self, input: Any = None, *, stream: Literal[True], **options: Unpack[WorkflowRunOptions]
    ) -> EventStream[WorkflowEvent | RunEvent]: ...
    @overload
    def arun(
        self, input: Any = None, *, stream: bool = False, **options: Unpack[WorkflowRunOptions]
    ) -> Coroutine[Any, Any, WorkflowRunOutput] | EventStream[WorkflowEvent | RunEvent]: ...
    def arun(
        self,
        input: Any = None,
        *,
        additional_data: dict[str, Any] | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        session_state: dict[str, Any] | None = None,
        run_id: str | None = None,
        stream: bool = False,
        stream_events: bool = False,
        audio: Sequence[Audio] | None = None,
        images: Sequence[Image] | None = None,
        videos: Sequence[Video] | None = None,
        files: Sequence[File] | None = None,
    ) -> Coroutine[Any, Any, WorkflowRunOutput] | EventStream[WorkflowEvent | RunEvent]:
        """Async `run`: await it, or `async for` over it with `stream=True`. With an `input_schema`, the
        input is validated first (see `validate_input`; raises `ValueError` before anything runs).

        `images`, `audio`, `videos` and `files` (`kern.media`) are stored with the run (its `images`, ...)
        and given to every agent or team step (`StepInput.images`, ...)."""
        input = self.validate_input(input)
        media_fields(images=images, audio=audio, videos=videos, files=files)  # refuses a wrong kind, now
        run = WorkflowRunOutput(
            run_id=run_id or new_id(),
            session_id=session_id or self.session_id,
            workflow_name=self.name,
            workflow_id=self.id,
            input=input,
            status=RunStatus.RUNNING,
            additional_data={**self.additional_data, **(additional_data or {})},
            session_state=_merge_under(session_state if session_state is not None else {}, self.session_state),
            user_id=user_id or self.user_id,
            images=list(images) if images else None,
            videos=list(videos) if videos else None,
            audio=list(audio) if audio else None,
            files=list(files) if files else None,
        )

        async def start(emit: Emit | None) -> WorkflowRunOutput:
            ctx = RunContext(
                run, {}, self.db, 0, self._sink(emit, lambda: ctx), stream_events, self.id, self.stream_executor_events
            )
            if ctx.has_listener:
                await ctx.emit(WorkflowStartedEvent(input=input))
            return await drive(ctx, self.steps)

        return event_stream(start) if stream else start(None)

    # ----- continue -------------------------------------------------------------------------------
    @overload
    def continue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: Literal[False] = False,
        **options: Unpack[WorkflowContinueOptions],
    ) -> WorkflowRunOutput: ...
    @overload
    def continue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: Literal[True],
        **options: Unpack[WorkflowContinueOptions],
    ) -> Iterator[WorkflowEvent | RunEvent]: ...
    @overload
    def continue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: bool = False,
        **options: Unpack[WorkflowContinueOptions],
    ) -> WorkflowRunOutput | Iterator[WorkflowEvent | RunEvent]: ...
    def continue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        step_requirements: list[StepRequirement] | None = None,
        stream: bool = False,
        stream_events: bool = False,
    ) -> WorkflowRunOutput | Iterator[WorkflowEvent | RunEvent]:
        """Resume a paused run with the decision on its active (last) requirement.

        Pass the paused `run_output` (resolved in place), or `run_id` (plus `step_requirements` you
        resolved, or none to apply a passed deadline). Works from any process: everything is read from
        the database. Raises `RequirementNotResolvedError` (a ValueError) if the active requirement is
        unresolved and not past its deadline, `RunAlreadyResumedError` if another caller resumed it
        first, `RunNotPausedError` if it is not paused, `RunNotFoundError` for an unknown id; and, changing
        nothing, `WrongWorkflowError` for another workflow's run, `JournalMismatchError` if the definition
        or the journal no longer fits the run, `CorruptRunError` for a run that cannot be read.
        """
        result = self.acontinue_run(
            run_output,
            run_id=run_id,
            session_id=session_id,
            step_requirements=step_requirements,
            stream=stream,
            stream_events=stream_events,
        )
        if isinstance(result, EventStream):  # exactly when stream=True
            return iterate_sync(result)
        return run_sync(result)

    @overload
    def acontinue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: Literal[False] = False,
        **options: Unpack[WorkflowAsyncContinueOptions],
    ) -> Coroutine[Any, Any, WorkflowRunOutput]: ...
    @overload
    def acontinue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: Literal[True],
        **options: Unpack[WorkflowAsyncContinueOptions],
    ) -> EventStream[WorkflowEvent | RunEvent]: ...
    @overload
    def acontinue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        stream: bool = False,
        **options: Unpack[WorkflowAsyncContinueOptions],
    ) -> Coroutine[Any, Any, WorkflowRunOutput] | EventStream[WorkflowEvent | RunEvent]: ...
    def acontinue_run(
        self,
        run_output: WorkflowRunOutput | None = None,
        *,
        run_id: str | None = None,
        session_id: str | None = None,
        step_requirements: list[StepRequirement] | None = None,
        stream: bool = False,
        stream_events: bool = False,
        only_requirement: str | None = None,
        now: float | None = None,
    ) -> Coroutine[Any, Any, WorkflowRunOutput] | EventStream[WorkflowEvent | RunEvent]:
        """Async `continue_run`: await it, or `async for` over it with `stream=True`.

        `only_requirement` (used by `expire_due`) resumes only if that requirement is still the active
        one, so a sweeper never acts on a pause someone else already moved past. `now` is the time
        deadlines are judged against (default: the clock).
        """
        if run_output is None and run_id is None:
            raise ValueError("continue_run needs the paused run_output or run_id=...")
        target = run_output.run_id if run_output is not None else run_id
        assert target is not None
        supplied = list(step_requirements or [])
        if run_output is not None and run_output.step_requirements:
            supplied.append(run_output.step_requirements[-1])
        expected_version = run_output.version if run_output is not None and run_output.version else None

        async def resume(emit: Emit | None) -> WorkflowRunOutput:
            claimed = await self._claim(
                target, expected_version=expected_version, supplied=supplied, only_requirement=only_requirement, now=now
            )
            return await self._drive(claimed, emit, stream_events)

        return event_stream(resume) if stream else resume(None)

    async def _claim(
        self,
        target: str,
        *,
        expected_version: int | None,
        supplied: list[StepRequirement],
        only_requirement: str | None,
        now: float | None,
    ) -> _Claimed:
        """The first half of `continue_run`: apply the decision (the caller's, or the deadline's) and take the
        run (a compare-and-set: the decision is recorded and the run is RUNNING, with this process's lease)."""
        resolved: list[StepRequirement] = []
        # The run as read by `prepare`, per stored version: read (and so checked, `CorruptRunError`)
        # before anything is claimed, and then used as the claimed run instead of being read again.
        runs: dict[int, WorkflowRunOutput] = {}

        def prepare(stored: StoredRun) -> tuple[dict[str, Any], dict[str, Any], list[Resolution]]:
            self._check_owner(stored)
            run = runs[stored.version] = read_run(stored)
            journal = dict(stored.journal)
            check_journal(self.steps, stored.run_id, journal, stored.output.get("step_requirements") or [])
            if stored.status != "PAUSED":  # taking over a run whose process died
                return stored.output, journal, []
            output = dict(stored.output)
            history = list(output["step_requirements"])
            active_id = history[-1].get("requirement_id")
            if only_requirement is not None and active_id != only_requirement:
                raise RunAlreadyResumedError(
                    f"Run {stored.run_id} moved past requirement {only_requirement}.", run_id=stored.run_id
                )
            # The caller's copy carries the decision (a copy: the caller's object stays as is); without
            # one, the stored pause is resolved as it stands (a decision made through the store).
            mine = next((c for c in reversed(supplied) if c.requirement_id == active_id), None)
            active = StepRequirement.from_dict(STEP_REQUIREMENT.dump(mine) if mine is not None else history[-1])
            decision = journal[active.gate_key] = _decide(stored.run_id, active, now)
            resolved.append(active)
            history[-1] = STEP_REQUIREMENT.dump(active)  # the stored form (to_dict adds the documented keys)
            output["step_requirements"] = history
            output["status"] = RunStatus.RUNNING.value
            run.step_requirements[-1] = active  # the run's own: the continued event gets a copy
            run.status = RunStatus.RUNNING
            resolution = Resolution(
                requirement_id=active.requirement_id,
                status=active.status,
                resolved_by=active.resolved_by,
                resolved_at=active.resolved_at or time.time(),
                decision=decision,
                step_name=active.step_name,
                kind=active.kind,
                note=active.note or active.rejection_feedback,
            )
            return output, journal, [resolution]

        stored, version = await self.db.claim(target, expected_version=expected_version, prepare=prepare)
        run = runs.get(stored.version) or WorkflowRunOutput.from_dict(stored.output, version)
        run.version = version
        if self.input_schema is not None:  # stored as JSON: the steps see the model again
            with contextlib.suppress(ValueError):
                run.input = self.validate_input(run.input)
        return _Claimed(run, stored.journal, version, resolved[0] if resolved else None)

    async def _drive(self, claimed: _Claimed, emit: Emit | None, stream_events: bool) -> WorkflowRunOutput:
        """The second half of `continue_run`: run the claimed run to its end or its next pause."""
        run = claimed.run
        ctx = RunContext(
            run,
            claimed.journal,
            self.db,
            claimed.version,
            self._sink(emit, lambda: ctx),
            stream_events,
            self.id,
            self.stream_executor_events,
        )
        req = claimed.resolved
        if req is not None and ctx.has_listener:
            req = StepRequirement.from_dict(STEP_REQUIREMENT.dump(req))
            event = StepExecutorContinuedEvent if req.kind == EXECUTOR else StepContinuedEvent
            await ctx.emit(
                event(step_name=req.step_name, step_path=req.step_path, step_type=req.step_type, requirement=req)
            )
        return await drive(ctx, self.steps)

    async def _expire(
        self, run_id: str, requirement_id: str, *, now: float | None = None
    ) -> tuple[WorkflowRunOutput, Coroutine[Any, Any, WorkflowRunOutput]]:
        """Apply the deadline of pause `requirement_id` (its `on_timeout`) and take the run, without running
        it further: returns the run as taken (RUNNING, the decision recorded) and the coroutine that runs it
        to its end or next pause, for the caller to await now or hand to a task (see `kern.expire_due`).
        Until it ends, the run holds this process's lease: if the process dies first, the lease expires
        and `recover_orphans` (any process) takes the run over. Raises as `continue_run` does."""
        claimed = await self._claim(
            run_id, expected_version=None, supplied=[], only_requirement=requirement_id, now=now
        )
        return claimed.run, self._drive(claimed, None, False)

    async def acancel_run(self, run_id: str, *, by: str | None = None, reason: str | None = None) -> WorkflowRunOutput:
        """Cancel a paused or running run (compare-and-set: exactly one of concurrent callers wins).

        A paused run is cancelled at its pause. A running run is cancelled at once in the database; the
        process running it stops at its next node boundary (its next write fails its compare-and-set),
        so nothing after the step in flight runs. A run whose process died is cancelled the same way.
        Raises `RunNotPausedError` if the run already ended, `RunNotFoundError` for an unknown id, and
        (changing nothing) `WrongWorkflowError` for another workflow's run, `CorruptRunError` for a run
        that cannot be read.
        """
        reason = reason or "Cancelled" + (f" by {by}" if by else "")

        def prepare(stored: StoredRun) -> tuple[dict[str, Any], dict[str, Any], list[Resolution]]:
            self._check_owner(stored)
            read_run(stored)  # a run this kern cannot read is refused (`CorruptRunError`), not half-cancelled
            if stored.status not in ("PAUSED", "RUNNING"):
                raise RunNotPausedError(
                    f"Run {run_id} is {stored.status}; only a paused or running run can be cancelled.",
                    run_id=run_id,
                    status=stored.status,
                )
            output = dict(stored.output)
            output["status"], output["content"] = RunStatus.CANCELLED.value, reason
            output["updated_at"] = time.time()  # when it ended, as the engine records for other ends
            history = output.get("step_requirements") or [{}]
            active = history[-1] if stored.status == "PAUSED" else {}
            resolution = Resolution(
                requirement_id=active.get("requirement_id", ""),
                status="cancelled",
                resolved_by=by,
                resolved_at=time.time(),
                decision={"action": "cancel"},
                step_name=active.get("step_name", ""),
                kind=active.get("kind", ""),
                note=reason,
            )
            return output, stored.journal, [resolution]

        stored, version = await self.db.claim(run_id, expected_version=None, prepare=prepare, running_ok=True)
        return WorkflowRunOutput.from_dict(stored.output, version)

    def _check_owner(self, stored: StoredRun) -> None:
        """Refuse (`WrongWorkflowError`) a run another workflow started: these steps are not its steps."""
        if stored.workflow_name != self.name:
            raise WrongWorkflowError(
                f"Run {stored.run_id} belongs to workflow {stored.workflow_name!r}, not {self.name!r}; "
                f"continue or cancel it through {stored.workflow_name!r}. Nothing was changed.",
                run_id=stored.run_id,
                run_workflow=stored.workflow_name,
                workflow=self.name,
            )

    def cancel_run(self, run_id: str, *, by: str | None = None, reason: str | None = None) -> WorkflowRunOutput:
        return run_sync(self.acancel_run(run_id, by=by, reason=reason))

    def node_at(self, path: str) -> Node | None:
        """The primitive at a step path (a requirement's `step_path`), or None if the tree has none there."""
        node = journal.node_at(self.steps, path)
        return node if isinstance(node, Node) else None

    # ----- events -----------------------------------------------------------------------------------
    def _sink(self, emit: Emit | None, context: Callable[[], RunContext]) -> Emit | None:
        """Wrap a stream's sink: the paused event gets the paused run's full requirement history and
        results (so a client can continue from it alone), and events get the workflow's id."""
        if emit is None:
            return None

        async def sink(event: WorkflowEvent | RunEvent) -> None:
            if event.workflow_id is None:
                event.workflow_id = getattr(self, "id", None)
            if isinstance(event, WorkflowPausedEvent):
                event.fill_from(context().run)
            await emit(event)

        return sink

    async def aexpire_due(self, *, now: float | None = None, limit: int = 100) -> list[WorkflowRunOutput]:
        """Apply `on_timeout` to this workflow's pauses whose deadline has passed (see `kern.expire_due`)."""
        from kern.workflow.timeouts import expire_due

        return await expire_due(self.db, [self], now=now, limit=limit)

    def expire_due(self, *, now: float | None = None, limit: int = 100) -> list[WorkflowRunOutput]:
        return run_sync(self.aexpire_due(now=now, limit=limit))


@dataclass
class _Claimed:
    """A run `continue_run` has taken, ready to drive: the run, its journal and version, and the
    requirement whose decision let it go on (None for a takeover)."""

    run: WorkflowRunOutput
    journal: dict[str, Any]
    version: int
    resolved: StepRequirement | None


def _merge_under(state: dict[str, Any], defaults: dict[str, Any] | None) -> dict[str, Any]:
    """`state` (the run's own dict, changed in place) with `defaults` (the workflow's session_state)
    filled in under it: keys `state` has win, nested dicts are merged, the defaults are copied."""
    for key, value in (defaults or {}).items():
        if key not in state:
            state[key] = copy.deepcopy(value)
        elif isinstance(state[key], dict) and isinstance(value, dict):
            _merge_under(state[key], value)
    return state


def _decide(run_id: str, active: StepRequirement, now: float | None = None) -> dict[str, Any]:
    """The decision to journal for the active requirement: the person's, or its timeout's."""
    now = time.time() if now is None else now
    if active.is_resolved:
        active.status = "resolved"
        return active.journal_decision()
    if active.deadline is not None and now >= active.deadline:
        return active.expire(now)
    raise RequirementNotResolvedError(
        f"Run {run_id} is paused at step '{active.step_name}' waiting for {active.kind.replace('_', ' ')}: "
        f"call {active.needs} on run_output.step_requirements[-1] before continue_run."
    )
