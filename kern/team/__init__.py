"""Teams: a leader model that delegates to member agents."""

from kern.team.team import Team

__all__ = ["Team"]
