"""Steps: a named sequence of primitives, confirmable as a whole."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kern.run.workflow import StepsCompletedEvent, StepsStartedEvent
from kern.workflow.container import Container
from kern.workflow.engine import run_sequence
from kern.workflow.step import as_nodes
from kern.workflow.types import HumanReview, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Steps(Container):
    """Run `steps` in order. Supports `requires_confirmation` only."""

    step_type = "Steps"

    def __init__(
        self,
        name: str | None = None,
        steps: list[Any] | None = None,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        self.steps = as_nodes(steps)
        self._setup_container(name, description, human_review, hitl)

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        if ctx.streams_detail:
            await ctx.emit_detail(StepsStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if await self.confirm_start(ctx, path) != "run":
            return self.skip(ctx, path)
        output = self.result(await run_sequence(ctx, self.steps, path, chain))
        await ctx.emit_detail(
            StepsCompletedEvent(step_name=self.name, step_path=path, step_type=self.step_type, content=output.content)
        )
        return ctx.finish(path, output)
