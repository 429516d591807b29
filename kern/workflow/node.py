"""The base of every workflow primitive."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from kern.workflow.hitl import FLAT_PARAMS, build_human_review
from kern.workflow.types import HumanReview, OnReject, StepOutput

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
