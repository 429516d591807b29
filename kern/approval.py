"""`@approval`: an admin must approve a tool call (`type="required"`), or its HITL decision is recorded
as an approval for audit (`type="audit"`).

Layer it on a `@tool`. A required approval persists a pending record when the call happens; the run's
`continue_run` refuses until the record is resolved (`db.resolve_approval(id, approved=..., ...)`, from
any process); the approver's decision then confirms or rejects the call. Bare `@approval` on a tool with
no HITL flag makes it `requires_confirmation`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kern.tools.tool import Tool

APPROVAL_TYPES = ("required", "audit")


def approval(fn: Tool | Callable[..., Any] | None = None, /, *, type: str = "required") -> Any:
    """`@approval` or `@approval(type="audit")` above `@tool(...)`."""
    if type not in APPROVAL_TYPES:
        raise ValueError(f"@approval type must be one of {', '.join(APPROVAL_TYPES)}, got {type!r}.")

    def apply(target: Tool | Callable[..., Any]) -> Tool:
        tool = target if isinstance(target, Tool) else Tool(target)
        if not tool.requires_hitl:
            if type == "audit":
                raise ValueError(
                    f"@approval(type='audit') on tool '{tool.name}' needs a HITL flag to audit: use "
                    "@tool(requires_confirmation=True), requires_user_input=True or external_execution=True."
                )
            tool.requires_confirmation = True
        tool.approval_type = type
        return tool

    return apply(fn) if fn is not None else apply
