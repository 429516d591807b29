"""Sessions: the runs made under one session id (`AgentSession`, `TeamSession`, `WorkflowSession`).

Read one with `agent.get_session()`, `team.get_session()` or `workflow.get_session()`; `Session` is
any of the three.
"""

from kern.session.agent import AgentSession
from kern.session.team import TeamSession
from kern.session.workflow import WorkflowSession

Session = AgentSession | TeamSession | WorkflowSession

__all__ = ["AgentSession", "Session", "TeamSession", "WorkflowSession"]
