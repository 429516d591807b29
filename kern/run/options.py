"""The keyword options of the run methods, typed once for their `stream=` overloads (PEP 692 `Unpack`).

`Workflow.run(..., stream=False)` returns a `WorkflowRunOutput` and `stream=True` an iterator of events;
each overload takes the same options, spelled out here instead of in every overload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from kern.media import Audio, File, Image, Video
from kern.run.agent import RunRequirement
from kern.run.requirement import StepRequirement


class WorkflowRunOptions(TypedDict, total=False):
    """`Workflow.run` / `arun`."""

    additional_data: dict[str, Any] | None
    user_id: str | None
    session_id: str | None
    session_state: dict[str, Any] | None
    run_id: str | None
    stream_events: bool
    audio: Sequence[Audio] | None
    images: Sequence[Image] | None
    videos: Sequence[Video] | None
    files: Sequence[File] | None


class WorkflowContinueOptions(TypedDict, total=False):
    """`Workflow.continue_run`."""

    run_id: str | None
    session_id: str | None
    step_requirements: list[StepRequirement] | None
    stream_events: bool


class WorkflowAsyncContinueOptions(WorkflowContinueOptions, total=False):
    """`Workflow.acontinue_run`."""

    only_requirement: str | None
    now: float | None


class AgentRunOptions(TypedDict, total=False):
    """`Agent.run` / `arun` (and a `Team`'s)."""

    session_id: str | None
    user_id: str | None
    run_id: str | None
    messages: list[Any] | None
    session_state: dict[str, Any] | None
    dependencies: dict[str, Any] | None
    audio: Sequence[Audio] | None
    images: Sequence[Image] | None
    videos: Sequence[Video] | None
    files: Sequence[File] | None


class AgentContinueOptions(TypedDict, total=False):
    """`Agent.continue_run` / `acontinue_run` (and a `Team`'s)."""

    run_id: str | None
    requirements: list[RunRequirement] | None
    session_id: str | None
    dependencies: dict[str, Any] | None
