"""Team: a leader that delegates tasks to member agents through a tool call.

A member given no `db` stores its runs in the team's.
A member's HITL tool pauses the whole team run; each requirement carries `member_agent_name`.
`team.continue_run(run_response)` forwards the decisions to the member's own (stored) run, and the
member's answer becomes the result of the leader's delegation call. HITL tools on the team itself work
as on any agent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kern._sync import run_sync
from kern.agent.agent import Agent
from kern.exceptions import RunNotPausedError
from kern.models.base import Model
from kern.run.agent import RunOutput, ToolExecution
from kern.run.base import RunStatus
from kern.session.agent import session_fields
from kern.session.team import TeamSession
from kern.tools.tool import Tool

DELEGATE = "delegate_task_to_member"


class Team(Agent):
    """`Team(name, members=[agent, ...], model, tools, instructions, db)`."""

    kind = "team"

    def __init__(
        self,
        name: str | None = None,
        members: Iterable[Agent] | None = None,
        model: Model | None = None,
        tools: Iterable[Any] | None = None,
        instructions: str | list[str] | None = None,
        db: Any = None,
        *,
        store_member_responses: bool = False,
        **kwargs: Any,
    ) -> None:
        """A team with no members is a leader with its own tools only (it has no delegation tool).
        `store_member_responses`: kern stores every member's run as its own run whatever the value (a
        delegation's requirements name it by `member_run_id`); the team's output has no
        `member_responses` list (docs/differences.md)."""
        super().__init__(name=name or "team", model=model, tools=tools, instructions=instructions, db=db, **kwargs)
        self.members = list(members or [])
        self.store_member_responses = store_member_responses
        for member in self.members:  # a member given no db keeps its runs (and approvals) in the team's
            if not member.db_given and self.db_given:
                member.db = self.db
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"Team '{self.name}': member names must be unique, got {names}.")
        self._delegate = self._delegation_tool(names) if names else None

    def _delegation_tool(self, names: list[str]) -> Tool:
        def delegate_task_to_member(member_name: str, task: str) -> str:
            """Give a task to one team member and get their answer.

            Args:
                member_name: The member to delegate to.
                task: What the member should do, with everything they need to know.
            """
            raise AssertionError("handled by Team.run_tool")  # pragma: no cover

        tool = Tool(delegate_task_to_member, name=DELEGATE)
        tool.parameters["properties"]["member_name"]["enum"] = names
        tool.delegates = True
        return tool

    def member(self, name: str) -> Agent:
        for m in self.members:
            if m.name == name:
                return m
        raise ValueError(f"Team '{self.name}' has no member {name!r}; members: {[m.name for m in self.members]}")

    def system_prompt(self) -> str | None:
        if not self.members:
            return super().system_prompt()
        roster = "\n".join(
            f"- {m.name}: {m.role or m.description or m.system_prompt() or 'a team member'}" for m in self.members
        )
        base = super().system_prompt()
        lead = f"You lead a team. Delegate tasks with {DELEGATE}. Members:\n{roster}"
        return f"{base}\n\n{lead}" if base else lead

    async def aget_session(self, session_id: str | None = None) -> TeamSession:  # type: ignore[override]
        """The session (default: this team's) with its runs, oldest first, as stored."""
        sid = session_id or self.session_id
        return TeamSession(team_id=self.id, **session_fields(sid, await self._stored_runs(sid)))

    def get_session(self, session_id: str | None = None) -> TeamSession:  # type: ignore[override]
        return run_sync(self.aget_session(session_id))

    def tools_for_run(self, run: RunOutput) -> list[Tool]:
        return [*self.tools, self._delegate] if self._delegate is not None else list(self.tools)

    def _delegations(self, run: RunOutput) -> dict[str, dict[str, Any]]:
        run.team_state = run.team_state or {}
        return run.team_state.setdefault("delegations", {})

    async def run_tool(self, run: RunOutput, tool: Tool, execution: ToolExecution) -> str | None:  # type: ignore[override]
        if self._delegate is None or tool is not self._delegate:
            return await super().run_tool(run, tool, execution)
        args = execution.tool_args
        try:
            member = self.member(str(args.get("member_name")))
        except ValueError as exc:
            return str(exc)
        result = await member.arun(
            str(args.get("task", "")), session_id=run.session_id, user_id=run.user_id, dependencies=run.dependencies
        )
        return self._absorb(run, execution.tool_call_id or "", member, result)  # the model's calls have ids

    def _absorb(self, run: RunOutput, call_id: str, member: Agent, result: RunOutput) -> str | None:
        """The delegation's result, or None while the member waits (its requirements join the team run)."""
        delegations = self._delegations(run)
        if not result.is_paused:
            delegations[call_id] = {"member": member.name, "run_id": result.run_id, "done": True}
            if result.status == RunStatus.ERROR:
                return f"{member.name} failed: {result.error}"
            return str(result.content)
        delegations[call_id] = {"member": member.name, "run_id": result.run_id, "done": False}
        known = {r.id for r in run.requirements}
        for req in result.active_requirements:
            if req.id in known:
                continue
            req.member_agent_name = member.name
            req.member_run_id = result.run_id
            req.tool_execution.member_agent_name = member.name
            run.requirements.append(req)
        return None

    async def settle_delegations(self, run: RunOutput) -> list[tuple[str, str, str]]:
        finished: list[tuple[str, str, str]] = []
        for call_id, state in list(self._delegations(run).items()):
            if state.get("done"):
                continue
            mine = [r for r in run.requirements if r.member_run_id == state["run_id"]]
            if any(r.status == "pending" for r in mine):
                continue
            forwarded = set(state.setdefault("forwarded", []))
            decisions = [r for r in mine if r.id not in forwarded]
            if not decisions:
                continue
            member = self.member(state["member"])
            try:
                result = await member.acontinue_run(
                    run_id=state["run_id"], requirements=decisions, dependencies=run.dependencies
                )
            except RunNotPausedError:  # continued before a crash: read where it got to
                result = await member.aget_run(state["run_id"])
                if result.status == RunStatus.RUNNING:
                    result = await member.acontinue_run(run_id=state["run_id"])
            state["forwarded"] = sorted(forwarded | {r.id for r in decisions})
            answer = self._absorb(run, call_id, member, result)
            if answer is not None:
                finished.append((call_id, DELEGATE, answer))
        return finished


__all__ = ["Team"]
