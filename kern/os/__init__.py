"""AgentOS: agents, teams and workflows served over HTTP, with the human-in-the-loop routes."""

from kern.os.app import AgentOS

__all__ = ["AgentOS"]
