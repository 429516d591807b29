"""The types a decision is made on, shared by approvals and the surfaces above them: a pause loaded for a
click (`Loaded`) and a rule asked of it (`Check`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.registry import BotWorkflow
from bot.store import Card, PauseMessage
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput


@dataclass
class Loaded:
    entry: BotWorkflow
    card: Card
    pause: PauseMessage
    run: WorkflowRunOutput
    req: StepRequirement


# A rule asked of a loaded pause and a person: why they may not (None: they may).
Check = Callable[[Loaded, str], Awaitable[str | None]]
