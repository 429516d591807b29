"""Loop: repeat `steps` until `end_condition` says stop or `max_iterations` is reached."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kern.run import requirement as kinds
from kern.run.workflow import (
    LoopCompletedEvent,
    LoopIterationCompletedEvent,
    LoopIterationStartedEvent,
    LoopStartedEvent,
)
from kern.workflow.cel import CelExpression, iteration_variables
from kern.workflow.container import Container
from kern.workflow.engine import run_sequence
from kern.workflow.injected import call_with
from kern.workflow.step import as_nodes
from kern.workflow.types import HumanReview, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Loop(Container):
    """Repeat `steps`. `end_condition(outputs: list[StepOutput]) -> bool` (sync or async; it may also
    declare `session_state` and/or `run_context`) is asked after each iteration with that iteration's
    outputs; True ends the loop. A string `end_condition` is a CEL expression (see `kern.workflow.cel`).

    HITL: `requires_confirmation` (before the loop) and `requires_iteration_review`: after each iteration
    that would be followed by another, the run pauses. `confirm()` (or `edit(...)`) ends the loop with
    that iteration's output; `reject(feedback=...)` runs another iteration, which gets `rejection_feedback`
    and the rejected `previous_output` in `additional_data` (with on_reject=cancel it cancels the run).
    The last iteration allowed, or one after which `end_condition` stops the loop, is not reviewed.

    `forward_iteration_output` (default False, as documented): when False every iteration starts from what
    the loop itself received (`previous_step_content` is the content before the loop); when True each
    iteration after the first gets the previous iteration's last output instead, for refine-in-place loops.
    """

    step_type = "Loop"

    def __init__(
        self,
        name: str | None = None,
        steps: list[Any] | None = None,
        end_condition: str | Callable[..., Any] | None = None,
        max_iterations: int = 3,
        description: str | None = None,
        forward_iteration_output: bool = False,
        human_review: HumanReview | dict[str, Any] | None = None,
        **hitl: Any,
    ) -> None:
        if max_iterations < 1:
            raise ValueError(f"Loop {name!r}: max_iterations must be at least 1, got {max_iterations}.")
        self.steps = as_nodes(steps)
        self.end_condition = end_condition
        self.max_iterations = max_iterations
        self.forward_iteration_output = forward_iteration_output
        self._setup_container(name, description, human_review, hitl)
        self._cel: CelExpression | None = None
        if isinstance(end_condition, str):
            self._cel = CelExpression(end_condition, f"Loop '{self.name}' end_condition")
        elif end_condition is not None and not callable(end_condition):
            raise TypeError(
                f"Loop '{self.name}': end_condition must be a function or a CEL expression string, "
                f"got {type(end_condition).__name__}."
            )

    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        done = ctx.enter(self, path)
        if done is not None:
            return done
        if ctx.streams_detail:
            await ctx.emit_detail(LoopStartedEvent(step_name=self.name, step_path=path, step_type=self.step_type))
        if await self.confirm_start(ctx, path) != "run":
            return self.skip(ctx, path)
        review = self.human_review
        accepted: list[StepOutput] = []
        iterations = 0
        carry: dict[str, Any] = {}  # what a rejected iteration hands to the next one
        entry = chain.previous_content  # what every iteration starts from unless outputs are forwarded
        for index in range(self.max_iterations):
            iter_key = f"{path}/iter/{index}"
            attempt = 0
            decision: dict[str, Any] | None = None
            while True:
                branch = chain.fork(carry)
                if not self.forward_iteration_output:
                    branch.previous_content = entry
                # attempts > 0 (the same iteration run again) exist only in runs paused by kern before
                # iteration reviews followed the documented rule; such runs replay as they were decided
                iter_path = iter_key if attempt == 0 else f"{iter_key}.{attempt}"
                journaled = _count(ctx.journal, iter_path) if ctx.streams_detail else 0
                if ctx.streams_detail and not journaled:  # a replayed iteration announced itself when it ran
                    await ctx.emit_detail(self._iteration_event(LoopIterationStartedEvent, path, index))
                outputs = await run_sequence(ctx, self.steps, iter_path, branch)
                ended = await self._ends(ctx, path, index, branch, outputs)
                if ctx.streams_detail and _count(ctx.journal, iter_path) > journaled:  # it ran (on) here
                    done = self._iteration_event(LoopIterationCompletedEvent, path, index)
                    done.iteration_results, done.should_continue = outputs, not ended
                    await ctx.emit_detail(done)
                if not review.requires_iteration_review or ended:
                    decision = None
                    break
                decision = await self._review(ctx, path, index, attempt, outputs)
                if decision["action"] == "reject" and _ran(ctx.journal, f"{iter_key}.{attempt + 1}"):
                    ctx.rejected(self, decision)
                    attempt, carry = attempt + 1, _carry(decision, outputs)
                    continue
                break
            chain.join(branch)
            iterations += 1
            if decision is None:  # not reviewed: the loop went on or ends here
                accepted.extend(outputs)
                if ended:
                    break
                continue
            if decision["action"] == "reject":
                ctx.rejected(self, decision)  # on_reject=cancel cancels; otherwise another iteration runs
                carry = _carry(decision, outputs)
                continue
            ran = [o for o in outputs if not o.skipped]
            if decision["action"] == "edit" and ran:
                ran[-1].content = decision["output"]
                chain.previous_content = decision["output"]
            accepted.extend(outputs)
            carry = {}
            if not _ran(ctx.journal, f"{path}/iter/{index + 1}"):  # (an older run's approval went on)
                break  # approved: the loop ends with this iteration's output
        return await self._complete(ctx, path, accepted, iterations)

    async def _ends(self, ctx: RunContext, path: str, index: int, branch: Chain, outputs: list[StepOutput]) -> bool:
        """True if the loop stops after this iteration: a step stopped it, it was the last one allowed,
        or `end_condition` says so (asked once, journaled)."""
        if branch.stopped or index + 1 >= self.max_iterations:
            return True
        if self.end_condition is None:
            return False
        return bool(await ctx.decide(f"{path}/iter/{index}|end", lambda: self._ended(ctx, index, outputs)))

    async def _review(
        self, ctx: RunContext, path: str, index: int, attempt: int, outputs: list[StepOutput]
    ) -> dict[str, Any]:
        """Pause for the review of one iteration that would be followed by another."""
        review = self.human_review
        ran = [o for o in outputs if not o.skipped]
        reviewed = StepOutput(
            step_name=self.name,
            step_type=self.step_type,
            content=ran[-1].content if ran else None,
            steps=outputs,
        )
        return await ctx.gate(
            self,
            path,
            kinds.ITERATION_REVIEW,
            key=f"{path}/iter/{index}|iteration_review|{attempt}",
            message=review.iteration_review_message or f"Review iteration {index + 1} of loop '{self.name}'",
            step_output=reviewed,
            iteration=index + 1,
            retry_count=index,
        )

    def _iteration_event(self, cls: type[Any], path: str, index: int) -> Any:
        return cls(
            step_name=self.name,
            step_path=path,
            step_type=self.step_type,
            iteration=index + 1,
            max_iterations=self.max_iterations,
        )

    async def _complete(self, ctx: RunContext, path: str, accepted: list[StepOutput], iterations: int) -> StepOutput:
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

    async def _ended(self, ctx: RunContext, index: int, outputs: list[StepOutput]) -> bool:
        if self._cel is not None:
            return self._cel.is_true(iteration_variables(outputs, index + 1, self.max_iterations))
        assert callable(self.end_condition)
        return bool(await call_with(self.end_condition, (outputs,), ctx.user_values))


def _ran(journal: dict[str, Any], prefix: str) -> bool:
    """True if the journal holds anything run at or under the iteration path `prefix`."""
    return any(k == prefix or k.startswith((f"{prefix}/", f"{prefix}|", f"{prefix}.")) for k in journal)


def _count(journal: dict[str, Any], prefix: str) -> int:
    """How many journal entries lie at or under the iteration path `prefix`."""
    return sum(1 for k in journal if k == prefix or k.startswith((f"{prefix}/", f"{prefix}|", f"{prefix}.")))


def _carry(decision: dict[str, Any], outputs: list[StepOutput]) -> dict[str, Any]:
    """What the next iteration gets after a rejection: the feedback and the rejected output."""
    ran = [o for o in outputs if not o.skipped]
    return {"rejection_feedback": decision.get("feedback"), "previous_output": ran[-1].content if ran else None}
