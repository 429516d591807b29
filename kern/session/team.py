"""`TeamSession`: a team's runs under one session id, as read from the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kern.run.agent import RunOutput
from kern.session.agent import SessionRuns


@dataclass
class TeamSession(SessionRuns):
    """The runs of one team session, oldest first (`team.get_session()` reads it from the store).

    As for `AgentSession`, `session_data`, `metadata` and `team_data` are only what the caller puts here.
    """

    session_id: str
    team_id: str | None = None
    user_id: str | None = None
    workflow_id: str | None = None
    team_data: dict[str, Any] | None = None
    session_data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    runs: list[RunOutput] = field(default_factory=list)
    created_at: float | None = None
    updated_at: float | None = None


__all__ = ["TeamSession"]
