"""Workflows: primitives, human-review configuration, and the Workflow that runs them."""

from kern.run.base import RunStatus
from kern.workflow.condition import Condition
from kern.workflow.loop import Loop
from kern.workflow.parallel import Parallel
from kern.workflow.router import Router
from kern.workflow.step import Step
from kern.workflow.steps import Steps
from kern.workflow.types import (
    HumanReview,
    OnError,
    OnReject,
    OnTimeout,
    StepInput,
    StepOutput,
    UserInputField,
)
from kern.workflow.workflow import Workflow

__all__ = [
    "Condition",
    "HumanReview",
    "Loop",
    "OnError",
    "OnReject",
    "OnTimeout",
    "Parallel",
    "Router",
    "RunStatus",
    "Step",
    "StepInput",
    "StepOutput",
    "Steps",
    "UserInputField",
    "Workflow",
]
