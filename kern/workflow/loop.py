"""Loop: repeat `steps` until `end_condition` says stop or `max_iterations` is reached."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern.run import requirement as kinds
from kern.run.workflow import LoopCompletedEvent, LoopStartedEvent
from kern.workflow.container import Container
from kern.workflow.engine import Cancel, call_user, run_sequence
from kern.workflow.node import as_nodes
from kern.workflow.types import HumanReview, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Loop(Container):
    """Repeat `steps`. `end_condition(outputs: list[StepOutput]) -> bool` (sync or async) is asked after
    each iteration with that iteration's outputs; True ends the loop.

    HITL: `requires_confirmation` (before the loop) and `requires_iteration_review` (after each
    iteration: confirm accepts it; reject follows `on_reject`: skip drops the iteration and stops the
    loop, retry re-runs the same iteration with `rejection_feedback`, cancel cancels the run).
    """

    step_type = "Loop"

    def __init__(
        self,
        name: str | None = None,
        steps: list[Any] | None = None,
        end_condition: Callable[..., Any] | None = None,
        max_iterations: int = 3,
        description: str | None = None,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        if max_iterations < 1:
            raise ValueError(f"Loop {name!r}: max_iterations must be at least 1, got {max_iterations}.")
        self.steps = as_nodes(steps)
        self.end_condition = end_condition
        self.max_iterations = max_iterations
        self._setup_container(name, description, human_review, hitl)

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        await ctx.emit_detail(LoopStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if await self.confirm_start(ctx, path) != "run":
            return self.skip(ctx, path)
        review = self.human_review
        accepted: list[StepOutput] = []
        iterations = 0
        for index in range(self.max_iterations):
            iter_key = f"{path}/iter/{index}"
            attempt = 0
            extra: dict[str, Any] = {}
            while True:
                branch = chain.fork(extra)
                iter_path = iter_key if attempt == 0 else f"{iter_key}.{attempt}"
                outputs = await run_sequence(ctx, self.steps, iter_path, branch)
                if not review.requires_iteration_review:
                    break
                ran = [o for o in outputs if not o.skipped]
                decision = await ctx.gate(
                    self,
                    path,
                    kinds.ITERATION_REVIEW,
                    key=f"{iter_key}|iteration_review|{attempt}",
                    message=review.iteration_review_message or f"Review iteration {index + 1} of loop '{self.name}'",
                    step_output=ran[-1].content if ran else None,
                    iteration=index + 1,
                    retry_count=attempt,
                )
                if decision["action"] == "edit" and ran:
                    ran[-1].content = decision["output"]
                    branch.previous_content = decision["output"]
                if decision["action"] != "reject":
                    break
                if ctx.rejected(self, decision) != "retry":
                    output = self.result(accepted)
                    return ctx.finish(path, output)
                if attempt >= review.max_retries:
                    raise Cancel(f"Max retries ({review.max_retries}) reached for loop '{self.name}'")
                attempt += 1
                extra = {
                    "rejection_feedback": decision.get("feedback"),
                    "previous_output": ran[-1].content if ran else None,
                }
            chain.join(branch)
            accepted.extend(outputs)
            iterations += 1
            if chain.stopped:
                break
            if self.end_condition is not None:
                end = await ctx.decide(f"{iter_key}|end", lambda o=outputs: self._ended(o))
                if end:
                    break
        output = self.result(accepted)
        await ctx.emit_detail(
            LoopCompletedEvent(
                step_name=self.name,
                step_path=path,
                step_type=self.step_type,
                iterations=iterations,
                content=output.content,
            )
        )
        return ctx.finish(path, output)

    async def _ended(self, outputs: list[StepOutput]) -> bool:
        assert self.end_condition is not None
        return bool(await call_user(self.end_condition, outputs))
