"""Parallel: run branches concurrently; a paused branch pauses the run after the others finish."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kern._sync import CONCURRENT
from kern.run.workflow import ParallelCompletedEvent, ParallelStartedEvent
from kern.workflow.container import Container
from kern.workflow.engine import Pause
from kern.workflow.step import as_node
from kern.workflow.types import HumanReview, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Parallel(Container):
    """`Parallel(step_a, step_b, name="both")` (or `Parallel("both", step_a, step_b)`; the name defaults
    to "Parallel"): every branch gets the same input and runs concurrently.

    Finished branches are journaled even when another one pauses, so they never run again. The
    content is the branches' contents joined under `## <name>` headings. Supports
    `requires_confirmation` only.
    """

    step_type = "Parallel"

    def __init__(
        self,
        *steps: Any,
        name: str | None = None,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        if steps and isinstance(steps[0], str):  # Parallel("name", step_a, step_b)
            name = name if name is not None else steps[0]
            steps = steps[1:]
        self.steps = [as_node(s) for s in steps]
        self._setup_container(name, description, human_review, hitl)

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        if ctx.streams_detail:
            await ctx.emit_detail(ParallelStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if await self.confirm_start(ctx, path) != "run":
            return self.skip(ctx, path)
        branches = [chain.fork() for _ in self.steps]
        token = CONCURRENT.set(True)  # the branches' tasks copy it: their sync code runs in threads
        try:
            results = await asyncio.gather(
                *(node.execute(ctx, f"{path}/{i}", branches[i]) for i, node in enumerate(self.steps)),
                return_exceptions=True,
            )
        finally:
            CONCURRENT.reset(token)
        pauses = [r for r in results if isinstance(r, Pause)]
        failures = [r for r in results if isinstance(r, BaseException) and not isinstance(r, Pause)]
        if failures:
            raise failures[0]
        if pauses:
            raise pauses[0]
        outputs: list[StepOutput] = [r for r in results if isinstance(r, StepOutput)]
        ran = [o for o in outputs if not o.skipped]
        content = "\n\n".join(f"## {o.step_name}\n{o.content}" for o in ran) if ran else None
        output = StepOutput(
            step_name=self.name,
            step_type=self.step_type,
            content=content,
            steps=outputs,
            stop=any(o.stop for o in outputs),
        )
        await ctx.emit_detail(
            ParallelCompletedEvent(step_name=self.name, step_path=path, step_type=self.step_type, content=content)
        )
        return ctx.finish(path, output)
