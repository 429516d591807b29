"""Condition: run `steps` when the evaluator (or the person) says so, else `else_steps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern._sync import call_user
from kern.run.workflow import ConditionCompletedEvent, ConditionStartedEvent
from kern.workflow.container import Container
from kern.workflow.engine import run_sequence
from kern.workflow.step import as_nodes
from kern.workflow.types import HumanReview, OnReject, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Condition(Container):
    """Branch on `evaluator` (a bool, or a sync/async function of `StepInput` returning bool).

    With `requires_confirmation` the person decides instead and the evaluator is ignored: confirm runs
    `steps`; reject follows `on_reject` (default `else_branch`: run `else_steps`, or skip if none).
    """

    step_type = "Condition"
    default_on_reject = OnReject.else_branch

    def __init__(
        self,
        name: str | None = None,
        evaluator: bool | Callable[..., Any] | None = None,
        steps: list[Any] | None = None,
        else_steps: list[Any] | None = None,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        self.evaluator = evaluator
        self.steps = as_nodes(steps)
        self.else_steps = as_nodes(else_steps)
        self._setup_container(name, description, human_review, hitl)
        if self.human_review.on_reject is OnReject.retry:
            raise ValueError(
                f"on_reject=retry is not supported on Condition '{self.name}'. "
                "Supported: else (the default), skip, cancel."
            )
        if evaluator is None and not self.human_review.requires_confirmation:
            raise ValueError(
                f"Condition '{self.name}' needs an evaluator (a bool or a function of StepInput) "
                "unless it has requires_confirmation=True."
            )

    async def _evaluate(self, ctx: RunContext, chain: Chain) -> str:
        if not callable(self.evaluator):
            return "if" if self.evaluator else "else"
        return "if" if await call_user(self.evaluator, chain.step_input(ctx.run)) else "else"

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        if ctx.streams_detail:
            await ctx.emit_detail(ConditionStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if self.human_review.requires_confirmation:
            branch = {"run": "if", "else": "else", "skip": "skip"}[await self.confirm_start(ctx, path)]
        else:
            branch = await ctx.decide(f"{path}|branch", lambda: self._evaluate(ctx, chain))
        nodes = self.steps if branch == "if" else self.else_steps if branch == "else" else []
        if not nodes:
            return self.skip(ctx, path)
        output = self.result(await run_sequence(ctx, nodes, f"{path}/{branch}", chain))
        await ctx.emit_detail(
            ConditionCompletedEvent(
                step_name=self.name, step_path=path, step_type=self.step_type, branch=branch, content=output.content
            )
        )
        return ctx.finish(path, output)
