"""RunContext: what a run hands to the user code it calls (step functions, selectors, evaluators)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class RunContext:
    """The run a piece of user code is called in.

    A step executor, Router selector, Condition evaluator or Loop end condition that declares a
    `run_context` parameter receives one. `session_state` is the run's own dict: changes made to it are
    stored with the run (they survive a pause and are seen by the steps after `continue_run`).
    """

    run_id: str
    session_id: str
    user_id: str | None = None
    workflow_id: str | None = None
    workflow_name: str | None = None
    dependencies: dict[str, Any] | None = None
    knowledge_filters: dict[str, Any] | list[Any] | None = None
    metadata: dict[str, Any] | None = None
    session_state: dict[str, Any] | None = None
    output_schema: Any = None
    messages: list[Any] | None = None
    tools: list[Any] | None = None
    knowledge: Any = None
    members: list[Any] | None = None
    client_tools: list[Any] | None = None
