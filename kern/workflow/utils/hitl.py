"""`kern.workflow.utils.hitl`: the reference API's pause helpers that have a meaning in kern.

kern applies deadlines itself (`Workflow.expire_due`, `continue_run`, kern-bot's sweeper); `check_timeout` tells
code written for the reference API what a requirement's deadline would decide now.
"""

from __future__ import annotations

from kern.run.requirement import StepRequirement
from kern.run.values import OnTimeout


def check_timeout(step_requirement: StepRequirement) -> OnTimeout | None:
    """The `on_timeout` action (`OnTimeout.cancel` when none is set) if the requirement's deadline has passed
    with no decision made, else None (see `StepRequirement.is_timed_out`)."""
    if not step_requirement.is_timed_out:
        return None
    return step_requirement.on_timeout or OnTimeout.cancel


__all__ = ["check_timeout"]
