"""`kern.run.team`: a team run's output and its events.

A `Team` is an `Agent` whose model delegates to members, so its run is the same record as an agent's:
`TeamRunOutput` is `RunOutput` (with `team_name`), and a team streams the agent events. Members run
unstreamed inside the team's delegation tool, so every event a team stream yields is the team's own:
`isinstance(event, RunPausedEvent)` (as `from kern.run.team import RunPausedEvent as TeamRunPausedEvent`)
is the team's pause.
"""

from kern.run.agent import (
    RunCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunErrorEvent,
    RunEvent,
    RunOutput,
    RunPausedEvent,
    RunRequirement,
    RunStartedEvent,
    ToolCallCompletedEvent,
    ToolCallStartedEvent,
    ToolExecution,
)
from kern.run.base import RunStatus

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
    "TeamRunOutput",
    "TeamRunOutputEvent",
    "ToolCallCompletedEvent",
    "ToolCallStartedEvent",
    "ToolExecution",
]
