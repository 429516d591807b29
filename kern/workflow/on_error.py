"""What a failure does under a primitive's `on_error`: one implementation for Step and Condition.

`fail` (and an unset `on_error`) ends the run with ERROR (an explicit `fail` raises the exception to the
caller as well); `skip` records the primitive as skipped with the error and the run goes on; `pause` waits
for a person, whose `retry()` runs the primitive again and `skip()` skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kern.run import requirement as kinds
from kern.workflow.engine import StepFailed, skipped
from kern.workflow.types import OnError, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import RunContext
    from kern.workflow.node import Node


async def on_failure(
    ctx: RunContext,
    node: Node,
    path: str,
    attempt: int,
    error: str,
    exception: BaseException | None = None,
    *,
    failed_step: str | None = None,
) -> StepOutput | None:
    """Apply `node`'s `on_error` to a failure of its attempt `attempt`: returns the node's (journaled)
    skipped output, or None when a person chose to retry; raises `StepFailed` for `fail`, `Pause` while
    the person has not decided. `failed_step` names the step that failed inside a container."""
    review = node.human_review
    on_error = review.on_error or OnError.fail
    if on_error is OnError.fail:
        explicit = review.on_error is OnError.fail  # explicit: the caller gets the exception, as in the reference
        raise StepFailed(failed_step or node.name, error, exception=exception, reraise=explicit)
    if on_error is OnError.pause:
        decision = await ctx.gate(
            node,
            path,
            kinds.ERROR,
            key=f"{path}|error|{attempt}",
            message=f"{node.step_type} '{node.name}' failed: {error}",
            error=error,
            retry_count=attempt,
        )
        if decision["action"] == "retry":
            return None
    return ctx.finish(path, skipped(node.name, node.step_type, error))
