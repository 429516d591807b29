"""Condition: run `steps` when the evaluator (or the person) says so, else `else_steps`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern.run.workflow import ConditionCompletedEvent, ConditionStartedEvent
from kern.workflow.cel import CelExpression, step_input_variables
from kern.workflow.container import Container
from kern.workflow.engine import run_sequence
from kern.workflow.injected import call_with
from kern.workflow.step import as_nodes
from kern.workflow.types import HumanReview, OnReject, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Condition(Container):
    """Branch on `evaluator`: a bool, a sync/async function of `StepInput` returning bool (it may also
    declare `session_state` and/or `run_context`), or a CEL expression string (see `kern.workflow.cel`).
    The default, True, always runs `steps`.

    With `requires_confirmation` the person decides instead and the evaluator is ignored: confirm runs
    `steps`; reject follows `on_reject` (default `else_branch`: run `else_steps`, or skip if none).
    """

    step_type = "Condition"
    default_on_reject = OnReject.else_branch

    def __init__(
        self,
        name: str | None = None,
        evaluator: bool | str | Callable[..., Any] = True,
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
        self._cel: CelExpression | None = None
        if isinstance(evaluator, str):
            self._cel = CelExpression(evaluator, f"Condition '{self.name}' evaluator")
        elif evaluator is None or not (isinstance(evaluator, bool) or callable(evaluator)):
            raise TypeError(
                f"Condition '{self.name}': evaluator must be a bool, a function of StepInput or a CEL "
                f"expression string, got {type(evaluator).__name__}."
            )

    async def _evaluate(self, ctx: RunContext, chain: Chain) -> str:
        if isinstance(self.evaluator, bool):
            return "if" if self.evaluator else "else"
        step_input = chain.step_input(ctx.run)
        if self._cel is not None:
            return "if" if self._cel.is_true(step_input_variables(step_input)) else "else"
        assert callable(self.evaluator)
        return "if" if await call_with(self.evaluator, (step_input,), ctx.user_values()) else "else"

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        data["steps"] = [node.to_dict() for node in self.steps]
        data["else_steps"] = [node.to_dict() for node in self.else_steps]
        if isinstance(self.evaluator, bool):
            data["evaluator"], data["evaluator_type"] = self.evaluator, "bool"
        elif isinstance(self.evaluator, str):
            data["evaluator"], data["evaluator_type"] = self.evaluator, "cel"
        else:
            data["evaluator"] = getattr(self.evaluator, "__name__", repr(self.evaluator))
            data["evaluator_type"] = "function"
        return data

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
