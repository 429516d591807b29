"""Agent and team runs inside a step: journaled, and their pauses become the step's executor pauses.

While a step's executor runs, a `StepScope` is the current context. Every agent (or team) run started
in it, directly by `Step(agent=...)` or from inside a custom function executor, is numbered and
journaled (its run id, how often it paused). A paused agent run raises `ExecutorPaused`, which unwinds
the executor and pauses the workflow. On continue the executor runs again; its n-th agent call finds
its journaled run and resumes it with the person's decisions instead of starting a new one (a finished
one is returned as it is). Code of a function executor before its agent calls runs again.

When the workflow's stream wants them, the scope also carries `events`: a sink that puts the agent's own
events (content, tool calls, its pause) into the workflow's stream with the step's context on them. The
events are a view: what is journaled, and when, is the same with or without a listener.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from kern.exceptions import RunNotPausedError
from kern.run.base import RunStatus
from kern.workflow.signals import _ControlFlow

if TYPE_CHECKING:
    from kern.workflow.engine import RunContext

STEP_SCOPE: ContextVar[StepScope | None] = ContextVar("kern_step_scope", default=None)

# Where an agent run inside a step sends its events (None: nobody listens).
AgentEvents = Callable[[Any], Awaitable[None]]


class ExecutorPaused(_ControlFlow):
    """Control flow: an agent run inside a step paused; the step turns this into an executor pause."""

    def __init__(self, runner: Any, result: Any, gate_key: str) -> None:
        super().__init__(f"{getattr(runner, 'name', 'agent')} paused")
        self.runner = runner
        self.result = result
        self.gate_key = gate_key


class StepScope:
    """The agent runs of one attempt of one step."""

    def __init__(self, ctx: RunContext, prefix: str, events: AgentEvents | None = None) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.calls = 0
        self.events = events

    async def run_agent(self, runner: Any, start: Callable[[AgentEvents | None], Awaitable[Any]]) -> Any:
        """Run (or resume, or read back) the step's next agent run; `start(events)` starts a new one,
        sending its events to `events` when given."""
        key = f"{self.prefix}|agent{self.calls}"
        self.calls += 1
        state = self.ctx.journal.get(key)
        token = STEP_SCOPE.set(None)  # the agent's own inner runs (team members) are not the step's
        try:
            if state is None:
                result = await start(self.events)
            elif state.get("done"):
                return await runner.aget_run(state["run_id"])
            else:
                decision = self.ctx.journal.get(f"{key}|{state['pauses']}")
                if decision is None:
                    raise RuntimeError(f"No decision journaled for the paused agent run {state['run_id']}")
                result = await continue_agent(runner, state["run_id"], decision, self.events)
        finally:
            STEP_SCOPE.reset(token)
        if getattr(result, "is_paused", False):
            pauses = 0 if state is None else state["pauses"] + 1
            self.ctx.record(key, {"run_id": result.run_id, "pauses": pauses})
            raise ExecutorPaused(runner, result, f"{key}|{pauses}")
        self.ctx.record(key, {"run_id": result.run_id, "done": True})
        return result


async def continue_agent(runner: Any, run_id: str, decision: dict[str, Any], events: AgentEvents | None = None) -> Any:
    """Continue a paused agent run with the decisions journaled for it (its events sent to `events`).

    After a crash the agent run may already have been continued: then its stored state is used (a run
    left RUNNING by a dead process is taken over).
    """
    from kern.run.agent import RunRequirement

    requirements = [RunRequirement.from_dict(r) for r in decision.get("requirements", [])]
    try:
        if events is None:
            return await runner.acontinue_run(run_id=run_id, requirements=requirements)
        async for event in runner.acontinue_run(run_id=run_id, requirements=requirements, stream=True):
            await events(event)
        return await runner.aget_run(run_id)
    except RunNotPausedError:
        stored = await runner.aget_run(run_id)
        if stored.status == RunStatus.RUNNING:
            return await runner.acontinue_run(run_id=run_id)
        return stored
