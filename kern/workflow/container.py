"""Shared behaviour of primitives that hold other primitives."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kern.run import requirement as kinds
from kern.workflow.engine import skipped
from kern.workflow.hitl import flat_params
from kern.workflow.node import Node
from kern.workflow.types import StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import RunContext


class Container(Node):
    """A primitive with children; confirmation before it runs is handled here for all of them."""

    def _setup_container(
        self, name: str | None, description: str | None, human_review: Any, hitl: dict[str, Any]
    ) -> None:
        self._setup(name, description, human_review, flat_params(self.step_type, hitl))

    async def confirm_start(self, ctx: RunContext, path: str) -> str:
        """Ask for confirmation if configured: returns "run", "skip" or "else" (or raises Cancel)."""
        review = self.human_review
        if not review.requires_confirmation:
            return "run"
        decision = await ctx.gate(
            self,
            path,
            kinds.CONFIRMATION,
            message=review.confirmation_message or f"Run {self.step_type.lower()} '{self.name}'?",
        )
        if decision["action"] != "reject":
            return "run"
        outcome = ctx.rejected(self, decision)
        return "run" if outcome == "retry" else outcome

    def result(self, outputs: list[StepOutput], **extra: Any) -> StepOutput:
        ran = [o for o in outputs if not o.skipped]
        content = ran[-1].content if ran else None
        stop = any(o.stop for o in outputs)
        return StepOutput(
            step_name=self.name, step_type=self.step_type, content=content, steps=outputs, stop=stop, **extra
        )

    def skip(self, ctx: RunContext, path: str) -> StepOutput:
        return ctx.finish(path, skipped(self.name, self.step_type))
