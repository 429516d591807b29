"""The interpreter: one async walk of the step tree, with a journal.

Every node has a stable path (`2`, `2/else/0`, `3/iter/4/1`). As nodes complete, their results (and
every nondeterministic choice: a Condition's branch, a Router's routes, a Loop's end) go into the run's
journal, which is written to the database before the next executor runs. Continuing a run walks the
tree again from the root, takes journaled results instead of re-executing, applies the person's
decision at the paused gate, and executes from there. Nesting, parallel branches, restarts and
resumption on another process are all the same case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from kern._sync import is_private_loop
from kern.db.base import BaseDb
from kern.exceptions import LostOwnershipError, StoreError
from kern.run import requirement as kinds
from kern.run.agent import RunCompletedEvent, RunContentEvent, RunEvent
from kern.run.base import RunStatus
from kern.run.context import RunContext as UserRunContext
from kern.run.error_requirement import ErrorRequirement
from kern.run.requirement import StepRequirement, derived_step_id
from kern.run.workflow import (
    WORKFLOW_RUN_OUTPUT,
    RouterPausedEvent,
    StepExecutorPausedEvent,
    StepOutputReviewEvent,
    StepPausedEvent,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowErrorEvent,
    WorkflowEvent,
    WorkflowPausedEvent,
    WorkflowRunOutput,
    step_index_of,
)
from kern.workflow import journal as journal_nodes
from kern.workflow.cancelled import record_after_cancel
from kern.workflow.executor_scope import STEP_SCOPE
from kern.workflow.lease import KEEPER, Lease
from kern.workflow.signals import _ControlFlow
from kern.workflow.types import HumanReview, OnReject, StepInput, StepOutput

if TYPE_CHECKING:
    from kern.workflow.node import Node


class Pause(_ControlFlow):
    """Control flow: a gate needs a person. Unwinds to the driver, which persists the pause."""

    def __init__(self, requirement: StepRequirement) -> None:
        super().__init__(requirement.step_name)
        self.requirement = requirement


class Cancel(_ControlFlow):
    """Control flow: the run is cancelled (a rejection with on_reject=cancel, retries exhausted, ...)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StepFailed(_ControlFlow):
    """Control flow: a step failed and its on_error says the run fails. With `reraise` (an explicit
    `on_error="fail"`) the run is stored as ERROR and then `exception` is raised to the caller."""

    def __init__(
        self, step_name: str, error: str, *, exception: BaseException | None = None, reraise: bool = False
    ) -> None:
        super().__init__(f"Step '{step_name}' failed: {error}")
        self.step_name = step_name
        self.error = error
        self.exception = exception
        self.reraise = reraise


@dataclass
class Chain:
    """What flows from step to step: the previous content, every output by name, scoped extras."""

    input: Any
    previous_content: Any = None
    outputs: dict[str, StepOutput] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    stopped: bool = False

    def advance(self, output: StepOutput) -> None:
        if output.step_name:
            self.outputs[output.step_name] = output
        if not output.skipped:
            self.previous_content = output.content
        if output.stop:
            self.stopped = True

    def step_input(self, run: WorkflowRunOutput, extra: dict[str, Any] | None = None) -> StepInput:
        """The StepInput an executor, evaluator or selector at this point of the run receives."""
        return StepInput(
            input=run.input,
            previous_step_content=self.previous_content,
            previous_step_outputs=dict(self.outputs),
            additional_data={**run.additional_data, **self.extra, **(extra or {})},
            session_state=run.session_state,
            run_id=run.run_id,
            session_id=run.session_id,
            user_id=run.user_id,
            images=run.images,
            videos=run.videos,
            audio=run.audio,
            files=run.files,
        )

    def fork(self, extra: dict[str, Any] | None = None) -> Chain:
        """A child chain (same outputs dict) for a branch or a retried iteration."""
        return Chain(self.input, self.previous_content, self.outputs, {**self.extra, **(extra or {})})

    def join(self, child: Chain) -> None:
        self.previous_content = child.previous_content
        self.stopped = self.stopped or child.stopped


def step_media(outputs: list[StepOutput]) -> dict[str, list[Any]]:
    """The media the steps made (`StepOutput.images`, ...), nested steps' included, in step order."""
    made: dict[str, list[Any]] = {"images": [], "videos": [], "audio": [], "files": []}
    for output in outputs:
        for key, items in made.items():
            items.extend(getattr(output, key) or [])
        for key, items in step_media(output.steps or []).items():
            made[key].extend(items)
    return made


def add_step_media(run: WorkflowRunOutput, outputs: list[StepOutput]) -> None:
    """A completed run's media: what it was given, then what its steps made (the reference API's order)."""
    for key, items in step_media(outputs).items():
        if items:
            setattr(run, key, [*(getattr(run, key) or []), *items])


def skipped(name: str, step_type: str, error: str | None = None) -> StepOutput:
    return StepOutput(step_name=name, step_type=step_type, skipped=True, error=error)


class RunContext:
    """One drive of one run: its journal, its persistence points, its event sink."""

    def __init__(
        self,
        run: WorkflowRunOutput,
        journal: dict[str, Any],
        db: BaseDb,
        version: int,
        emit: Callable[[WorkflowEvent | RunEvent], Awaitable[None]] | None,
        stream_events: bool,
        workflow_id: str | None = None,
        executor_events: bool = True,
    ) -> None:
        self.run = run
        self.workflow_id = workflow_id
        # whether the events of agents and teams running as steps join the stream (`stream_executor_events`)
        self.executor_events = executor_events
        # the exceptions user code raised in this drive, by attempt key (`<path>~<attempt>`)
        self.errors: dict[str, BaseException] = {}
        self._run_context: UserRunContext | None = None
        self.journal = journal
        self.db = db
        self.version = version
        self._emit = emit
        self.stream_events = stream_events
        self._dirty = False
        self._save_lock = asyncio.Lock()
        # which node produced the entries at each path (a copy: the stored journal may be shared with a cache)
        self.nodes: dict[str, str] = dict(journal.get(journal_nodes.NODES) or {})
        journal[journal_nodes.NODES] = self.nodes

    # ----- events -----------------------------------------------------------------------------------
    def _stamp(self, event: WorkflowEvent) -> WorkflowEvent:
        event.run_id = self.run.run_id
        event.session_id = self.run.session_id
        event.workflow_name = self.run.workflow_name
        return event

    async def emit(self, event: WorkflowEvent) -> None:
        """Always-sent events: workflow-level ones and pauses."""
        if self._emit is not None:
            await self._emit(self._stamp(event))

    @property
    def has_listener(self) -> bool:
        """True when anyone receives events (to skip building ones nobody receives)."""
        return self._emit is not None

    @property
    def streams_detail(self) -> bool:
        """True when step-level events are wanted (to skip building ones nobody receives)."""
        return self._emit is not None and self.stream_events

    async def emit_detail(self, event: WorkflowEvent) -> None:
        """Step-level events, sent only with stream_events=True."""
        if self._emit is not None and self.stream_events:
            await self._emit(self._stamp(event))

    def agent_events(self, step_name: str, path: str) -> Callable[[RunEvent], Awaitable[None]] | None:
        """A sink for the events of agent (and team) runs inside the step at `path`, or None when nobody
        wants them. With `stream_events=True` every event of theirs is sent; with a plain stream, their
        text pieces (`RunContentEvent`) and completion, as the reference API does; with the workflow's
        `stream_executor_events=False`, their completion only. Each gets the step's
        context: `workflow_id`, `workflow_run_id`, `step_id`, `step_name`, `step_index`. An agent's own
        `RunPausedEvent` is not sent: the workflow's executor pause events follow once the pause is stored
        (a consumer may stop reading at a pause event and continue the run at once)."""
        if self._emit is None:
            return None
        emit, run, everything, wanted = self._emit, self.run, self.stream_events, self.executor_events
        step_id, step_index = derived_step_id(path, step_name), step_index_of(path)

        async def sink(event: RunEvent) -> None:
            if event.is_paused:  # the step's executor pause stands for it, sent once the pause is stored
                return
            if not isinstance(event, RunCompletedEvent) and not (
                wanted and (everything or isinstance(event, RunContentEvent))
            ):
                return
            event.workflow_id = self.workflow_id
            event.workflow_run_id = run.run_id
            event.step_id, event.step_name, event.step_index = step_id, step_name, step_index
            await emit(event)

        return sink

    # ----- user code -------------------------------------------------------------------------------
    def user_values(self, **more: Any) -> dict[str, Any]:
        """What user code may ask for by parameter name (`kern.workflow.injected`): the run's
        `session_state` (its own dict, stored with it) and a `kern.run.RunContext`."""
        run = self.run
        if run.session_state is None:
            run.session_state = {}
        if self._run_context is None or self._run_context.session_state is not run.session_state:
            self._run_context = UserRunContext(
                run_id=run.run_id,
                session_id=run.session_id,
                user_id=run.user_id,
                workflow_id=self.workflow_id,
                workflow_name=run.workflow_name,
                session_state=run.session_state,
            )
        return {"session_state": run.session_state, "run_context": self._run_context, **more}

    # ----- journal ----------------------------------------------------------------------------------
    def enter(self, node: Node, path: str) -> StepOutput | None:
        """A node starts (or replays) at `path`: check it is the one the journal recorded there (or record
        it), then return its journaled result, if it finished. The record is written with the node's first
        entry, so it costs no extra save."""
        name = journal_nodes.tag(node)
        recorded = self.nodes.setdefault(path, name)
        if recorded != name:
            raise journal_nodes.mismatch(self.run.run_id, path, recorded, name)
        return self.done(path)

    def done(self, key: str) -> StepOutput | None:
        data = self.journal.get(key)
        return StepOutput.from_dict(data) if data is not None else None

    def record(self, key: str, value: Any) -> None:
        self.journal[key] = value.to_dict() if isinstance(value, StepOutput) else value
        self._dirty = True

    def finish(self, path: str, output: StepOutput) -> StepOutput:
        """Journal a node's final result."""
        self.record(path, output)
        return output

    async def decide(self, key: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """A nondeterministic choice (branch, routes, loop end), computed once and journaled."""
        if key in self.journal:
            return self.journal[key]
        value = await compute()
        self.record(key, value)
        return value

    async def checkpoint(self) -> None:
        """Persist the journal before user code runs, so a crash loses no completed step."""
        if self.version == 0 or self._dirty:
            await self.save()

    async def save(self, new_requirement: StepRequirement | None = None) -> None:
        async with self._save_lock:
            self.run.updated_at = time.time()
            self._dirty = False
            output = WORKFLOW_RUN_OUTPUT.dump(self.run)  # the stored form: `to_dict`'s derived keys left out
            try:
                self.version = await self.db.save_run(
                    output,
                    self.journal,
                    version=self.version,
                    # the new pause is the run's last requirement: its stored form is already in `output`
                    new_requirement=output["step_requirements"][-1] if new_requirement else None,
                )
            except LostOwnershipError:  # cancelled under this drive: keep what it did, say so (or taken over)
                await record_after_cancel(self.db, self.run.run_id, self.journal)
                raise
            self.run.version = self.version

    def start_heartbeat(self) -> asyncio.TimerHandle | Lease:
        """Keep this process's lease on the run while it executes: a timer, and a renewal task only when
        one is due (most drives end long before). On a private loop, where user code runs inline and
        blocks the loop, the lease keeper's thread renews it instead."""
        loop = asyncio.get_running_loop()
        interval = self.db.lease_seconds / 3
        if is_private_loop(loop):
            self._heartbeat: asyncio.TimerHandle | Lease = KEEPER.add(self._renew, interval)
            return self._heartbeat

        def beat() -> None:
            renewal = getattr(self, "_renewal", None)
            if renewal is None or renewal.done():  # one at a time: a renewal still retrying is not doubled
                self._renewal = loop.create_task(self._renew())
            self._heartbeat = loop.call_later(interval, beat)

        self._heartbeat = loop.call_later(interval, beat)
        return self._heartbeat

    def stop_heartbeat(self) -> None:
        if isinstance(self._heartbeat, Lease):
            KEEPER.remove(self._heartbeat)
            return
        self._heartbeat.cancel()
        renewal = getattr(self, "_renewal", None)
        if renewal is not None:  # a renewal still retrying must not extend a lease this drive gave up
            renewal.cancel()

    async def _renew(self) -> None:
        if self.version:
            try:
                await self.db.renew_lease(self.run.run_id, self.version)
            except StoreError:  # logged by the store; the drive's next write meets the same failure
                pass

    # ----- gates ------------------------------------------------------------------------------------
    async def gate(
        self,
        node: Node,
        path: str,
        kind: str,
        *,
        key: str | None = None,
        message: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """The person's decision at this gate, or a pause if there is none yet.

        A journaled `cancel` decision (a timeout with on_timeout=cancel) cancels the run here.
        """
        key = key or f"{path}|{kind}"
        decision = self.journal.get(key)
        if decision is not None:
            if decision.get("action") == "cancel":
                raise Cancel(decision.get("reason") or f"Run cancelled at step '{node.name}'")
            return decision
        review: HumanReview = node.human_review
        now = time.time()
        make = ErrorRequirement if kind == kinds.ERROR else partial(StepRequirement, kind=kind)
        requirement = make(
            step_name=node.name,
            step_path=path,
            step_type=node.step_type,
            gate_key=key,
            message=message,
            on_reject=review.on_reject,
            max_retries=review.max_retries,
            timeout=review.timeout,
            on_timeout=review.on_timeout,
            deadline=now + review.timeout if review.timeout else None,
            created_at=now,
            **fields,
        )
        raise Pause(requirement)

    def rejected(self, node: Node, decision: dict[str, Any], *, retry_allowed: bool = True) -> str:
        """What a rejection at `node` leads to: "skip", "retry", "else" (or it raises Cancel)."""
        on_reject = OnReject.parse(decision.get("on_reject"), "on_reject") or node.human_review.on_reject
        if on_reject is OnReject.cancel:
            feedback = decision.get("feedback")
            raise Cancel(f"{node.step_type} '{node.name}' was rejected" + (f": {feedback}" if feedback else ""))
        if on_reject is OnReject.retry and retry_allowed:
            return "retry"
        if on_reject is OnReject.else_branch:
            return "else"
        return "skip"


PAUSE_EVENTS: dict[str, type[StepPausedEvent] | type[StepExecutorPausedEvent]] = {
    kinds.ROUTE_SELECTION: RouterPausedEvent,
    kinds.OUTPUT_REVIEW: StepOutputReviewEvent,
    kinds.ITERATION_REVIEW: StepOutputReviewEvent,
    kinds.EXECUTOR: StepExecutorPausedEvent,
}


async def run_sequence(ctx: RunContext, nodes: list[Node], base: str, chain: Chain) -> list[StepOutput]:
    """Run nodes one after another, each seeing the previous one's output."""
    results: list[StepOutput] = []
    for index, node in enumerate(nodes):
        path = f"{base}/{index}" if base else str(index)
        output = await node.execute(ctx, path, chain)
        results.append(output)
        chain.advance(output)
        if chain.stopped:
            break
    return results


async def drive(ctx: RunContext, steps: list[Node]) -> WorkflowRunOutput:
    """Walk the workflow from the root to its end or its next pause, and persist the outcome."""
    run = ctx.run
    run.status = RunStatus.RUNNING
    if run.session_state is None:  # user code always gets a dict to read and change
        run.session_state = {}
    chain = Chain(run.input)
    scope_token = STEP_SCOPE.set(None)  # a workflow run inside a step is not that step's agent
    results: list[StepOutput] = []
    ctx.start_heartbeat()
    new_requirement: StepRequirement | None = None
    reraise: StepFailed | None = None
    try:
        for index, node in enumerate(steps):
            output = await node.execute(ctx, str(index), chain)
            results.append(output)
            chain.advance(output)
            if chain.stopped:
                break
        run.status = RunStatus.COMPLETED
        run.content = chain.previous_content
        add_step_media(run, results)
    except Pause as pause:
        new_requirement = pause.requirement
        run.status = RunStatus.PAUSED
        run.step_requirements.append(new_requirement)
    except Cancel as cancel:
        run.status = RunStatus.CANCELLED
        run.content = cancel.reason
    except StepFailed as failed:
        run.status = RunStatus.ERROR
        run.error = str(failed)
        run.content = str(failed)
        reraise = failed if failed.reraise else None
    except (LostOwnershipError, StoreError):
        # Not the run's failure: the run stays as last stored (RUNNING with its lease), to be continued
        # by this process or taken over by another once the lease expires. Never ERROR for a db blip.
        raise
    except (Exception, _ControlFlow) as exc:  # a failing evaluator, selector or end condition
        run.status = RunStatus.ERROR
        run.error = f"{type(exc).__name__}: {exc}"
        run.content = run.error
    finally:
        ctx.stop_heartbeat()
        STEP_SCOPE.reset(scope_token)
    run.step_results = results
    await ctx.save(new_requirement)  # persisted before any pause event: a consumer may stop reading there
    if ctx.has_listener:  # events are built only for someone who receives them
        for event in outcome_events(run, new_requirement, results):
            await ctx.emit(event)
    if reraise is not None:  # stored as ERROR first: the run can still be read and listed
        raise reraise.exception or RuntimeError(str(reraise))
    return run


def outcome_events(
    run: WorkflowRunOutput, new_requirement: StepRequirement | None, results: list[StepOutput]
) -> list[WorkflowEvent]:
    """The events that end a drive: the pause's own event and the workflow-level one, or the completion,
    cancellation or error."""
    if new_requirement is not None:
        event_type = PAUSE_EVENTS.get(new_requirement.kind, StepPausedEvent)
        pause_event = event_type(
            step_name=new_requirement.step_name,
            step_path=new_requirement.step_path,
            step_type=new_requirement.step_type,
            requirement=new_requirement,
        )
        return [pause_event, WorkflowPausedEvent(requirement=new_requirement, pause_kind=run.pause_kind)]
    if run.status == RunStatus.COMPLETED:
        return [WorkflowCompletedEvent(content=run.content, step_results=results)]
    if run.status == RunStatus.CANCELLED:
        return [WorkflowCancelledEvent(reason=run.content)]
    return [WorkflowErrorEvent(error=run.error)]
