"""`kern.run.team`: a team run's output and its events.

A `Team` is an `Agent` whose model delegates to members, so its run is the same record as an agent's:
`TeamRunOutput` is `RunOutput` (with `team_name`). Its events are their own classes, as documented: each
subclasses the agent event of the same moment (so code written for agent events still matches a team's)
and carries the documented team value (`"TeamRunPaused"`, ...). This module exports them under the
documented names, so `from kern.run.team import RunPausedEvent as TeamRunPausedEvent` and
`isinstance(event, TeamRunPausedEvent)` tell the team's pause from a member agent's.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from kern.run import agent as _agent
from kern.run.agent import RunEvent, RunOutput, RunRequirement, ToolExecution
from kern.run.base import RunStatus


class TeamRunEvent(StrEnum):
    """The `event` values of a team run's events."""

    run_started = "TeamRunStarted"
    run_content = "TeamRunContent"
    run_continued = "TeamRunContinued"
    run_paused = "TeamRunPaused"
    run_completed = "TeamRunCompleted"
    run_error = "TeamRunError"
    tool_call_started = "TeamToolCallStarted"
    tool_call_completed = "TeamToolCallCompleted"


class _Team:
    """Stamps the team value on `event` after the agent event's own set-up."""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        self.event = "Team" + type(self).__name__.removeprefix("Team").removesuffix("Event")


@dataclass
class TeamRunStartedEvent(_Team, _agent.RunStartedEvent):
    pass


@dataclass
class TeamRunContinuedEvent(_Team, _agent.RunContinuedEvent):
    pass


@dataclass
class TeamRunContentEvent(_Team, _agent.RunContentEvent):
    pass


@dataclass
class TeamToolCallStartedEvent(_Team, _agent.ToolCallStartedEvent):
    pass


@dataclass
class TeamToolCallCompletedEvent(_Team, _agent.ToolCallCompletedEvent):
    pass


@dataclass
class TeamRunPausedEvent(_Team, _agent.RunPausedEvent):
    pass


@dataclass
class TeamRunCompletedEvent(_Team, _agent.RunCompletedEvent):
    pass


@dataclass
class TeamRunErrorEvent(_Team, _agent.RunErrorEvent):
    pass


_FOR_TEAM: dict[type[RunEvent], type[RunEvent]] = {
    _agent.RunStartedEvent: TeamRunStartedEvent,
    _agent.RunContinuedEvent: TeamRunContinuedEvent,
    _agent.RunContentEvent: TeamRunContentEvent,
    _agent.ToolCallStartedEvent: TeamToolCallStartedEvent,
    _agent.ToolCallCompletedEvent: TeamToolCallCompletedEvent,
    _agent.RunPausedEvent: TeamRunPausedEvent,
    _agent.RunCompletedEvent: TeamRunCompletedEvent,
    _agent.RunErrorEvent: TeamRunErrorEvent,
}


def as_team_event(event: RunEvent) -> RunEvent:
    """The team's class of an event the shared agent loop made for a team run (same fields)."""
    team_class = _FOR_TEAM.get(type(event))
    if team_class is None:
        return event
    values = {f.name: getattr(event, f.name) for f in fields(event) if f.init and f.name != "event"}
    return team_class(**values)


# The documented names in this module are the team's classes.
RunStartedEvent = TeamRunStartedEvent
RunContinuedEvent = TeamRunContinuedEvent
RunContentEvent = TeamRunContentEvent
ToolCallStartedEvent = TeamToolCallStartedEvent
ToolCallCompletedEvent = TeamToolCallCompletedEvent
RunPausedEvent = TeamRunPausedEvent
RunCompletedEvent = TeamRunCompletedEvent
RunErrorEvent = TeamRunErrorEvent

TeamRunOutput = RunOutput
# The base of every event a team run streams.
BaseTeamRunEvent = RunEvent
TeamRunOutputEvent = RunEvent

__all__ = [
    "BaseTeamRunEvent",
    "RunCompletedEvent",
    "RunContentEvent",
    "RunContinuedEvent",
    "RunErrorEvent",
    "RunPausedEvent",
    "RunRequirement",
    "RunStartedEvent",
    "RunStatus",
    "TeamRunCompletedEvent",
    "TeamRunContentEvent",
    "TeamRunContinuedEvent",
    "TeamRunErrorEvent",
    "TeamRunEvent",
    "TeamRunOutput",
    "TeamRunOutputEvent",
    "TeamRunPausedEvent",
    "TeamRunStartedEvent",
    "TeamToolCallCompletedEvent",
    "TeamToolCallStartedEvent",
    "ToolCallCompletedEvent",
    "ToolCallStartedEvent",
    "ToolExecution",
    "as_team_event",
]
