"""The base of every workflow primitive."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.workflow.hitl import FLAT_PARAMS, build_human_review
from kern.workflow.types import HumanReview, OnReject, StepInput, StepOutput

if TYPE_CHECKING:
    from kern.workflow.engine import Chain, RunContext


class Node(ABC):
    """A primitive of the step tree. Subclasses set `step_type` and implement `execute`."""

    step_type: str = "Step"
    default_on_reject: OnReject = OnReject.skip

    name: str
    description: str | None
    human_review: HumanReview

    def _setup(self, name: str | None, description: str | None, human_review: Any, flat: dict[str, Any]) -> None:
        if not name:
            if self.step_type == "Step":
                raise ValueError(f"{self.step_type} needs a name.")
            name = self.step_type  # a container's name is optional, as in the reference API ("Parallel")
        self.name = name
        self.description = description
        self.human_review = build_human_review(
            self.step_type, human_review, flat, default_on_reject=self.default_on_reject
        )

    @abstractmethod
    async def execute(self, ctx: RunContext, path: str, chain: Chain) -> StepOutput:
        """Run (or replay from the journal) this node at `path`."""

    def create_step_requirement(self, step_index: int, step_input: StepInput | None = None) -> StepRequirement:
        """The confirmation pause this primitive asks for before it runs, as a detached requirement (the
        engine builds its own at the pause; this is for callers that present or test one)."""
        message = self.human_review.confirmation_message or f"Run {self.step_type.lower()} '{self.name}'?"
        return self._requirement(kinds.CONFIRMATION, step_index, message, step_input=step_input)

    def create_output_review_requirement(
        self, step_index: int, step_input: StepInput | None, step_output: StepOutput, retry_count: int = 0
    ) -> StepRequirement:
        """The review pause after this primitive ran, as a detached requirement (as `create_step_requirement`)."""
        review = self.human_review
        message = review.output_review_message or f"Review the output of {self.step_type.lower()} '{self.name}'"
        return self._requirement(
            kinds.OUTPUT_REVIEW,
            step_index,
            message,
            step_input=step_input,
            step_output=step_output,
            retry_count=retry_count,
        )

    def _requirement(self, kind: str, step_index: int, message: str, **fields: Any) -> StepRequirement:
        review = self.human_review
        now = time.time()
        return StepRequirement(
            step_name=self.name,
            kind=kind,
            step_path=str(step_index),
            step_type=self.step_type,
            message=message,
            on_reject=review.on_reject,
            max_retries=review.max_retries,
            timeout=review.timeout,
            on_timeout=review.on_timeout,
            deadline=now + review.timeout if review.timeout else None,
            created_at=now,
            **fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """A description of this node with its HITL settings under one `"human_review"` key."""
        return {
            "type": self.step_type,
            "name": self.name,
            "description": self.description,
            "human_review": self.human_review.to_dict(),
        }

    def __repr__(self) -> str:
        return f"{self.step_type}(name={self.name!r})"

    def _set_review(self, field: str, value: Any) -> None:
        """Change one HITL setting after construction: validated as at construction, never half-applied."""
        values = {name: getattr(self.human_review, name) for name in HumanReview.model_fields}
        values[field] = value
        self.human_review = build_human_review(self.step_type, HumanReview(**values), {})


def _flat_setting(flat_name: str, field: str) -> property:
    """`node.<flat_name>`: the primitive's HITL setting, read from (and written through) `human_review`.

    The configuration is the primitive's alone: runs read it and never write it.
    """

    def get(self: Node) -> Any:
        return getattr(self.human_review, field)

    def set_(self: Node, value: Any) -> None:
        self._set_review(field, value)

    return property(get, set_, doc=f"The `{field}` of this primitive's `human_review`.")


for _flat_name, _field in FLAT_PARAMS.items():
    setattr(Node, _flat_name, _flat_setting(_flat_name, _field))
