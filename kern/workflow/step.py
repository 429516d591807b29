"""Step: one unit of work (a function, an agent or a team), with optional human gates around it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern._sync import call_user
from kern.run import requirement as kinds
from kern.run.base import RunStatus
from kern.run.workflow import StepCompletedEvent, StepErrorEvent, StepOutputEvent, StepStartedEvent
from kern.workflow.engine import Cancel, skipped
from kern.workflow.executor_scope import STEP_SCOPE, ExecutorPaused, StepScope
from kern.workflow.injected import call_with
from kern.workflow.node import Node
from kern.workflow.on_error import on_failure
from kern.workflow.types import HumanReview, StepInput, StepOutput, UserInputField

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext

PAUSE_ATTR = "_kern_pause"


class Step(Node):
    """One step. Give exactly one of `executor` (a sync or async function of `StepInput`; it may also
    declare `session_state` and/or `run_context`), `agent`, `team` or `workflow` (a nested Workflow, run
    to its end as this step: its content is the step's). HITL: `human_review=HumanReview(...)` or the
    flat parameters (human_review wins).
    """

    step_type = "Step"

    def __init__(
        self,
        name: str | None = None,
        executor: Callable[..., Any] | None = None,
        agent: Any = None,
        team: Any = None,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        *,
        workflow: Any = None,
        requires_confirmation: bool | None = None,
        confirmation_message: str | None = None,
        requires_user_input: bool | None = None,
        user_input_message: str | None = None,
        user_input_schema: list[UserInputField] | None = None,
        requires_output_review: bool | Callable[..., bool] | None = None,
        output_review_message: str | None = None,
        requires_iteration_review: bool | None = None,
        iteration_review_message: str | None = None,
        on_reject: Any = None,
        on_error: Any = None,
        hitl_max_retries: int | None = None,
        hitl_timeout: float | None = None,
        on_timeout: Any = None,
        max_retries: int = 0,
    ) -> None:
        sources = (("executor", executor), ("agent", agent), ("team", team), ("workflow", workflow))
        given = [k for k, v in sources if v is not None]
        if len(given) != 1:
            raise ValueError(
                f"Step {name or ''!r} needs exactly one of executor=, agent=, team= or workflow= "
                f"(got {', '.join(given) or 'none'})."
            )
        if max_retries < 0:
            raise ValueError(f"Step {name or ''!r}: max_retries must be 0 or more, got {max_retries}.")
        self.executor = executor
        self.agent = agent
        self.team = team
        self.workflow = workflow
        # Extra attempts when the executor fails, before on_error applies (0: kern's default, see docs/differences.md).
        self.max_retries = max_retries
        flat = {k: v for k, v in locals().items() if k in _FLAT and v is not None}
        if human_review is None and not flat and executor is not None:
            human_review = getattr(executor, PAUSE_ATTR, None)
        if name is None:
            source = executor or agent or team or workflow
            name = getattr(source, "name", None) or getattr(source, "__name__", None)
        self._setup(name, description, human_review, flat)

    # ----- execution ------------------------------------------------------------------------------
    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        review = self.human_review
        if ctx.streams_detail:
            await ctx.emit_detail(StepStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        extra: dict[str, Any] = {}
        if review.requires_confirmation:
            decision = await ctx.gate(
                self,
                path,
                kinds.CONFIRMATION,
                message=review.confirmation_message or f"Run step '{self.name}'?",
            )
            if decision["action"] == "reject":
                if ctx.rejected(self, decision) != "retry":
                    return ctx.finish(path, skipped(self.name, self.step_type))
                extra["rejection_feedback"] = decision.get("feedback")
        if review.requires_user_input:
            decision = await ctx.gate(
                self,
                path,
                kinds.USER_INPUT,
                message=review.user_input_message or f"Input needed for step '{self.name}'",
                user_input_schema=[UserInputField.from_dict(f.to_dict()) for f in (review.user_input_schema or [])]
                or None,
            )
            if decision["action"] == "reject":
                ctx.rejected(self, decision, retry_allowed=False)
                return ctx.finish(path, skipped(self.name, self.step_type))
            extra["user_input"] = decision["user_input"]

        attempt = 0
        rejections = 0
        failures = 0
        while True:
            output = ctx.done(f"{path}~{attempt}")
            if output is None:
                await ctx.checkpoint()
                output = await self._run_once(ctx, path, attempt, chain, extra)
                ctx.record(f"{path}~{attempt}", output)
            if not output.success:
                await ctx.emit_detail(
                    StepErrorEvent(step_name=self.name, step_path=path, step_type=self.step_type, error=output.error)
                )
                if failures < self.max_retries:  # each attempt is journaled, so a replay counts the same
                    failures += 1
                    attempt += 1
                    continue
                error = output.error or "unknown error"
                failed = await on_failure(ctx, self, path, attempt, error, ctx.errors.get(f"{path}~{attempt}"))
                if failed is not None:
                    return failed
                attempt += 1  # a person's retry runs the step as configured, max_retries included
                failures = 0
                continue
            if await self._wants_review(ctx, path, attempt, output):
                decision = await ctx.gate(
                    self,
                    path,
                    kinds.OUTPUT_REVIEW,
                    key=f"{path}|output_review|{attempt}",
                    message=review.output_review_message or f"Review the output of step '{self.name}'",
                    step_output=output,
                    retry_count=rejections,
                )
                if decision["action"] == "edit":
                    output.content = decision["output"]
                elif decision["action"] == "reject":
                    outcome = ctx.rejected(self, decision)
                    if outcome != "retry":
                        return ctx.finish(path, skipped(self.name, self.step_type))
                    if rejections >= review.max_retries:
                        raise Cancel(f"Max retries ({review.max_retries}) reached for step '{self.name}'")
                    rejections += 1
                    extra["rejection_feedback"] = decision.get("feedback")
                    extra["previous_output"] = output.content
                    attempt += 1
                    continue
            if ctx.streams_detail:
                where: dict[str, Any] = {"step_name": self.name, "step_path": path, "step_type": self.step_type}
                await ctx.emit_detail(StepOutputEvent(**where, step_output=output))
                await ctx.emit_detail(StepCompletedEvent(**where, content=output.content, step_output=output))
            return ctx.finish(path, output)

    async def _wants_review(self, ctx: RunContext, path: str, attempt: int, output: StepOutput) -> bool:
        wanted = self.human_review.requires_output_review
        if not callable(wanted):
            return bool(wanted)
        return bool(await ctx.decide(f"{path}|review?|{attempt}", lambda: call_user(wanted, output)))

    async def _run_once(
        self, ctx: RunContext, path: str, attempt: int, chain: Chain, extra: dict[str, Any]
    ) -> StepOutput:
        step_input = chain.step_input(ctx.run, extra)
        token = STEP_SCOPE.set(StepScope(ctx, f"{path}~{attempt}", ctx.agent_events(self.name, path)))
        try:
            if self.executor is not None:
                result = await call_with(self.executor, (step_input,), ctx.user_values)
            elif self.workflow is not None:
                result = await self._run_workflow(step_input)
            else:
                result = await self._run_agent(step_input)
        except ExecutorPaused as paused:
            who = getattr(paused.runner, "name", None) or "agent"
            requirements = list(paused.result.active_requirements)
            await ctx.gate(
                self,
                path,
                kinds.EXECUTOR,
                key=paused.gate_key,
                message=f"{who} wants to run: " + ", ".join(r.tool_execution.tool_name for r in requirements),
                executor_requirements=requirements,
                **_executor_fields(paused.runner, paused.result, who),
            )
            raise AssertionError("unreachable: the gate pauses") from paused  # pragma: no cover
        except Exception as exc:  # user errors; the engine's signals are BaseExceptions and pass through
            ctx.errors[f"{path}~{attempt}"] = exc
            return StepOutput(step_name=self.name, success=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            STEP_SCOPE.reset(token)
        if isinstance(result, StepOutput):
            result.step_name = result.step_name or self.name
            if result.error and result.success:
                result.success = False
            return result
        return StepOutput(step_name=self.name, content=result)

    async def _run_workflow(self, step_input: StepInput) -> StepOutput:
        """Run the nested workflow on the step's input, to its end, in its own session. It shares this
        run's `session_state`. A nested run that pauses or does not complete fails this step (the pause
        cannot be continued through the outer run)."""
        nested = await self.workflow.arun(
            step_input.input,
            user_id=step_input.user_id,
            session_state=step_input.session_state,
            additional_data=dict(step_input.additional_data),
        )
        status = nested.status
        if status == RunStatus.PAUSED:
            raise RuntimeError(
                f"nested workflow {self.workflow.name!r} paused at step "
                f"'{nested.step_requirements[-1].step_name}' (run {nested.run_id}); a pause inside a nested "
                "workflow is not continued through the outer run: give its steps to this workflow instead"
            )
        if status != RunStatus.COMPLETED:
            raise RuntimeError(f"nested workflow {self.workflow.name!r} ended {status.value}: {nested.content}")
        return StepOutput(step_name=self.name, step_type="Workflow", content=nested.content, steps=nested.step_results)

    async def _run_agent(self, step_input: StepInput) -> Any:
        """Run the step's agent or team on the input (and the previous step's output)."""
        runner = self.agent if self.agent is not None else self.team
        message = step_input.get_input_as_string()
        if step_input.previous_step_content is not None:
            message = f"{message}\n\nPrevious step output:\n{step_input.previous_step_content}"
        feedback = step_input.additional_data.get("rejection_feedback")
        if feedback:  # a reviewer rejected the previous attempt (output review or loop iteration review)
            message = f"{message}\n\nFeedback from reviewer: {feedback}"
        if not hasattr(runner, "arun"):
            return getattr(await call_user(runner.run, message), "content", None)
        given = (("images", step_input.images), ("videos", step_input.videos), ("audio", step_input.audio))
        media = {key: value for key, value in (*given, ("files", step_input.files)) if value}
        result = await runner.arun(message, session_id=step_input.session_id, user_id=step_input.user_id, **media)
        if getattr(result, "status", None) == RunStatus.ERROR:
            raise RuntimeError(result.error or "agent run failed")
        images, videos, audio, files = (getattr(result, key, None) for key in ("images", "videos", "audio", "files"))
        if images or videos or audio or files:  # what the agent's tools made: on the step's output, for the run
            content = getattr(result, "content", None)
            return StepOutput(
                content=content, step_name=self.name, images=images, videos=videos, audio=audio, files=files
            )
        return getattr(result, "content", result)

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        source = self.executor or self.agent or self.team or self.workflow
        data["executor"] = getattr(source, "__name__", None) or getattr(source, "name", None)
        return data


def _executor_fields(runner: Any, result: Any, name: str) -> dict[str, Any]:
    """Who paused inside the step, for the executor pause (`executor_id`, `executor_name`, ...). A team
    says so by its `kind` (kern.team sits above kern.workflow: no import of Team here)."""
    ident = getattr(runner, "id", None) or getattr(runner, "team_id", None) or getattr(runner, "agent_id", None)
    return {
        "executor_id": ident if isinstance(ident, str) else name,
        "executor_name": name,
        "executor_type": "team" if getattr(runner, "kind", None) == "team" else "agent",
        "executor_run_id": getattr(result, "run_id", None),
    }


def as_node(item: Any) -> Node:
    """A step-tree entry: a primitive as is, an Agent, Team or Workflow as a Step running it (named after
    it), a bare function as a Step named after it."""
    if isinstance(item, Node):
        return item
    kind = getattr(item, "kind", None)  # kern.agent, kern.team and Workflow sit above this module
    if kind in ("agent", "team", "workflow") and isinstance(getattr(item, "name", None), str):
        description = getattr(item, "description", None)
        if kind == "workflow":
            return Step(name=item.name, description=description, workflow=item)
        if kind == "team":
            return Step(name=item.name, description=description, team=item)
        return Step(name=item.name, description=description, agent=item)
    if callable(item):
        return Step(name=getattr(item, "__name__", None) or repr(item), executor=item)
    raise TypeError(
        f"Workflow steps must be primitives, agents, teams, workflows or functions, got {type(item).__name__}: {item!r}"
    )


def as_nodes(items: Any) -> list[Node]:
    if items is None:
        return []
    if isinstance(items, (Node,)) or callable(items):
        items = [items]
    return [as_node(i) for i in items]


_FLAT = {
    "requires_confirmation",
    "confirmation_message",
    "requires_user_input",
    "user_input_message",
    "user_input_schema",
    "requires_output_review",
    "output_review_message",
    "requires_iteration_review",
    "iteration_review_message",
    "on_reject",
    "on_error",
    "hitl_max_retries",
    "hitl_timeout",
    "on_timeout",
}
