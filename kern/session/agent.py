"""`AgentSession`: an agent's runs under one session id, as read from the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kern.models.message import Message
from kern.run.agent import RunOutput


class SessionRuns:
    """What an agent's and a team's session read from their runs."""

    runs: list[RunOutput]

    def get_run(self, run_id: str) -> RunOutput | None:
        """The session's run with this id, or None."""
        return next((run for run in self.runs if run.run_id == run_id), None)

    def get_messages(self, skip_roles: list[str] | None = None) -> list[Message]:
        """Every message of the session's runs, in order, the system prompts (and `skip_roles`) left out."""
        skipped = {"system", *(skip_roles or [])}
        return [
            Message.from_dict(message)
            for run in self.runs
            for message in run.messages
            if message.get("role") not in skipped
        ]


@dataclass
class AgentSession(SessionRuns):
    """The runs of one session, oldest first (`agent.get_session()` reads it from the store).

    `created_at` / `updated_at` are those of its first and newest run. kern keeps no session-level
    data beyond its runs: `session_data`, `metadata` and `agent_data` are only what the caller puts
    here (kern writes none of them back).
    """

    session_id: str
    agent_id: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    workflow_id: str | None = None
    session_data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    agent_data: dict[str, Any] | None = None
    runs: list[RunOutput] = field(default_factory=list)
    created_at: float | None = None
    updated_at: float | None = None


def session_fields(session_id: str, runs: list[RunOutput]) -> dict[str, Any]:
    """The fields an agent's or a team's session takes from its stored runs (oldest first)."""
    return {
        "session_id": session_id,
        "user_id": runs[0].user_id if runs else None,
        "runs": runs,
        "created_at": runs[0].created_at if runs else None,
        "updated_at": runs[-1].updated_at if runs else None,
    }


__all__ = ["AgentSession", "SessionRuns", "session_fields"]
