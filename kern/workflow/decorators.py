"""`@pause`: HITL settings on a function step, picked up when it becomes a Step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kern.workflow.hitl import build_human_review
from kern.workflow.step import PAUSE_ATTR
from kern.workflow.types import HumanReview

F = TypeVar("F", bound=Callable[..., Any])


def pause(
    human_review: HumanReview | None = None,
    *,
    name: str | None = None,
    **flat: Any,
) -> Callable[[F], F]:
    """Attach HITL settings (a `HumanReview` or the flat parameters) to a function step.

    The function still runs as a plain function; `Step(executor=fn)` and bare functions in
    `Workflow(steps=[...])` read the settings. Unknown parameters are a `TypeError` naming them.
    """
    from kern.workflow.hitl import FLAT_PARAMS

    unknown = sorted(set(flat) - set(FLAT_PARAMS))
    if unknown:
        raise TypeError(f"@pause got unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(FLAT_PARAMS)}")
    review = build_human_review("Step", human_review, flat)

    def decorate(fn: F) -> F:
        setattr(fn, PAUSE_ATTR, review)
        if name:
            fn.__name__ = name
        return fn

    return decorate
