"""The reference API's constructors and modules outside workflows: Agent / Team arguments, sessions,
`Toolkit`, `kern.tools.function`, `pprint_run_response`, and mixed tool calls in one model turn, through
the real openai client against the scripted server, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.response import ToolExecution
from kern.run.agent import RunOutput, RunPausedEvent
from kern.run.base import RunStatus
from kern.run.team import RunPausedEvent as TeamRunPausedEvent
from kern.team import Team
from kern.tools import Toolkit, tool
from kern.utils import pprint
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, calls, echo_tool_results, text


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()


def system_text(request: dict[str, Any]) -> str:
    """The system (chat) or developer (responses) message of a request to the model."""
    items = request.get("messages") or request.get("input") or []
    return "\n".join(str(m.get("content")) for m in items if m.get("role") in ("system", "developer"))


def user_texts(request: dict[str, Any]) -> list[str]:
    items = request.get("messages") or request.get("input") or []
    return [str(m.get("content")) for m in items if m.get("role") == "user"]


# ----- Agent and Team arguments ------------------------------------------------------------------------
def test_agent_takes_the_cookbook_arguments(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(text("**hi**"))
    agent = Agent(name=unique("md"), model=model_factory(), db=db, markdown=True, telemetry=False, role="greeter")
    assert agent.run("hello").content == "**hi**"
    assert "Use markdown to format your answers." in system_text(server.requests[0])
    assert agent.role == "greeter" and agent.telemetry is False
    plain = Agent(name=unique("plain"), model=model_factory(), db=db)
    server.script(text("hi"))
    plain.run("hello")
    assert "markdown" not in system_text(server.requests[1])
    with pytest.raises(TypeError, match="marksdown"):
        Agent(name="x", marksdown=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="add_history"):
        Team(name="t", members=[plain], add_history=True)
    with pytest.raises(ValueError, match="num_history_runs"):
        Agent(name="x", num_history_runs=0)


def test_add_history_to_context_sends_the_session_so_far(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    session = unique("session")
    agent = Agent(
        name=unique("hist"), model=model_factory(), db=db, session_id=session, add_history_to_context=True,
        num_history_runs=2,
    )  # fmt: skip
    for i in range(4):
        server.script(text(f"answer {i}"))
        assert agent.run(f"question {i}").content == f"answer {i}"
    # each request holds the last two runs' own messages (not the history they were given), then the input
    assert [user_texts(r) for r in server.requests] == [
        ["question 0"],
        ["question 0", "question 1"],
        ["question 0", "question 1", "question 2"],
        ["question 1", "question 2", "question 3"],
    ]
    # another session, or the same agent without the option, sends no history
    server.script(text("fresh"))
    agent.run("question 4", session_id=unique("other"))
    assert user_texts(server.requests[-1]) == ["question 4"]
    forgetful = Agent(name=agent.name, model=model_factory(), db=db, session_id=session)
    server.script(text("fresh"))
    forgetful.run("question 5")
    assert user_texts(server.requests[-1]) == ["question 5"]


def test_team_reads_member_roles_and_takes_history(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    member = Agent(name="Researcher", model=model_factory(), db=db, role="Finds sources for a claim")
    team = Team(
        name=unique("team"), members=[member], model=model_factory(), db=db, telemetry=False,
        add_history_to_context=True,
    )  # fmt: skip
    server.script(text("first"), text("second"))
    team.run("one")
    team.run("two")
    assert "- Researcher: Finds sources for a claim" in system_text(server.requests[0])
    assert user_texts(server.requests[1]) == ["one", "two"]


def test_sessions_read_from_the_store(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    from kern.session import AgentSession, Session, TeamSession

    agent = Agent(name=unique("sess"), model=model_factory(), db=db, user_id="ana")
    server.script(text("a"), text("b"))
    first = agent.run("one")
    second = agent.run("two")
    session = agent.get_session()
    assert isinstance(session, AgentSession) and session.agent_id == agent.id and session.user_id == "ana"
    assert [r.run_id for r in session.runs] == [first.run_id, second.run_id]
    assert session.get_run(second.run_id).content == "b" and session.get_run("nope") is None
    assert [(m.role, m.content) for m in session.get_messages()] == [
        ("user", "one"),
        ("assistant", "a"),
        ("user", "two"),
        ("assistant", "b"),
    ]
    assert session.created_at == first.created_at and agent.get_session(unique("none")).runs == []
    team = Team(
        name=unique("team"), members=[Agent(name="m", model=model_factory(), db=db)], model=model_factory(), db=db
    )
    server.script(text("t"))
    done = team.run("go")
    team_session = team.get_session()
    assert isinstance(team_session, TeamSession) and team_session.team_id == team.id
    assert [r.run_id for r in team_session.runs] == [done.run_id]
    assert isinstance(team_session, Session)  # type: ignore[arg-type,misc]


# ----- mixed external and regular tools in one model turn ------------------------------------------------
@tool
def get_date() -> str:
    """Today's date."""
    return "August 1st"


@tool(external_execution=True)
def get_user_location(reason: str) -> str:
    """Where the user is (asked from the user's device, outside the agent)."""
    raise AssertionError("never called: external")


def tool_outputs(request: dict[str, Any]) -> dict[str, str]:
    """{call id: output} of every tool result in a request, in either API's shape."""
    if "messages" in request:
        return {m["tool_call_id"]: m["content"] for m in request["messages"] if m.get("role") == "tool"}
    return {i["call_id"]: i["output"] for i in request["input"] if i.get("type") == "function_call_output"}


def tool_call_ids(request: dict[str, Any]) -> dict[str, str]:
    """{call id: tool name} of every call the model made, in either API's shape."""
    if "messages" in request:
        return {c["id"]: c["function"]["name"] for m in request["messages"] for c in m.get("tool_calls") or []}
    return {i["call_id"]: i["name"] for i in request["input"] if i.get("type") == "function_call"}


@pytest.mark.parametrize("external_first", [True, False])
def test_external_and_regular_tools_in_one_turn(
    db: BaseDb, server: FakeOpenAI, model_factory, external_first: bool
) -> None:
    pair = [("get_user_location", {"reason": "weather"}), ("get_date", {})]
    server.script(calls(*(pair if external_first else pair[::-1])), echo_tool_results)
    agent = Agent(name=unique("mixed"), model=model_factory(), tools=[get_date, get_user_location], db=db)
    run = agent.run("What is the weather?")
    assert run.is_paused and [t.tool_name for t in run.tools_awaiting_external_execution] == ["get_user_location"]
    run.active_requirements[0].set_external_execution_result("Tokyo")
    done = agent.continue_run(run_response=run)
    assert done.status == RunStatus.COMPLETED
    final = server.requests[-1]
    names = tool_call_ids(final)
    outputs = {names[call_id]: output for call_id, output in tool_outputs(final).items()}
    assert outputs == {"get_user_location": "Tokyo", "get_date": "August 1st"}  # each result under its call


def test_team_pause_event_lists_the_calls_it_waits_on() -> None:
    external = ToolExecution(tool_name="send_email", external_execution_required=True)
    internal = ToolExecution(tool_name="get_weather")
    for cls in (RunPausedEvent, TeamRunPausedEvent):
        event = cls(run_id="r", tools=[external, internal])
        assert [t.tool_name for t in event.tools_awaiting_external_execution] == ["send_email"]
        assert cls(run_id="r", tools=None).tools_awaiting_external_execution == []
    external.result = "sent"
    assert TeamRunPausedEvent(tools=[external]).tools_awaiting_external_execution == []


# ----- Toolkit -----------------------------------------------------------------------------------------
class MailTools(Toolkit):
    """A toolkit as the reference's examples write one: bound methods, options passed through."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(name="mail", tools=[self.send_email, self.list_emails, self.delete_email], **kwargs)

    def send_email(self, to: str, body: str) -> str:
        """Send an email.

        Args:
            to: The address.
            body: The text.
        """
        return f"sent to {to}"

    def list_emails(self) -> str:
        """List the inbox."""
        return "2 emails"

    def delete_email(self, email_id: str) -> str:
        """Delete an email."""
        return f"deleted {email_id}"


def test_toolkit_gates_its_named_tools(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    kit = MailTools(
        requires_confirmation_tools=["send_email"],
        external_execution_required_tools=["delete_email"],
        exclude_tools=["list_emails"],
        instructions="Sign every email.",
        add_instructions=True,
    )
    assert [t.name for t in kit.tools] == ["send_email", "delete_email"] and set(kit.functions) == {
        "send_email",
        "delete_email",
    }
    server.script(
        calls(("send_email", {"to": "a@b.c", "body": "hi"}), ("delete_email", {"email_id": "7"})), echo_tool_results
    )
    agent = Agent(name=unique("kit"), model=model_factory(), tools=[kit], db=db)
    run = agent.run("mail")
    assert "Sign every email." in system_text(server.requests[0])
    sent = server.requests[0]["tools"]
    assert sorted(t.get("name") or t["function"]["name"] for t in sent) == ["delete_email", "send_email"]
    by_tool = {r.tool_execution.tool_name: r for r in run.active_requirements}
    assert by_tool["send_email"].needs_confirmation and by_tool["delete_email"].needs_external_execution
    by_tool["send_email"].confirm()
    by_tool["delete_email"].set_external_execution_result("deleted 7 (outside)")
    assert agent.continue_run(run_response=run).content == "Final: sent to a@b.c | deleted 7 (outside)"
    quiet = MailTools(instructions="Sign every email.")  # instructions not asked to be added
    assert "Sign" not in (Agent(name="q", tools=[quiet]).system_prompt() or "")
    assert [t.name for t in MailTools(include_tools=["list_emails"]).tools] == ["list_emails"]


def test_toolkit_refuses_names_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="requires_confirmation_tools names send_mail, not tools of it"):
        MailTools(requires_confirmation_tools=["send_mail"])
    with pytest.raises(ValueError, match="send_email cannot both"):
        MailTools(requires_confirmation_tools=["send_email"], external_execution_required_tools=["send_email"])
    with pytest.raises(TypeError, match="cache_results"):
        Toolkit(name="x", cache_results=True)  # type: ignore[call-arg]


# ----- modules under the reference's paths -------------------------------------------------------------
def test_reference_module_paths_name_kern_classes() -> None:
    import kern.utils.http as http_utils
    from kern.models.response import UserInputField as FromResponse
    from kern.run.values import UserInputField
    from kern.session.agent import AgentSession
    from kern.session.workflow import WorkflowSession
    from kern.tools import Function as FromTools
    from kern.tools.function import Function
    from kern.tools.function import UserInputField as FromFunction
    from kern.tools.tool import Tool
    from kern.tools.user_control_flow import UserControlFlowTools
    from kern.tools.user_input import UserInputTools
    from kern.workflow.workflow import Workflow

    assert FromResponse is FromFunction is UserInputField and Function is FromTools is Tool
    assert UserControlFlowTools is UserInputTools
    assert UserInputField(name="city", field_type=str).field_type == "str"
    assert http_utils._global_async_client is None
    assert AgentSession(session_id="s").runs == [] and WorkflowSession(session_id="s").get_run("r") is None
    assert hasattr(Workflow, "get_session") and Workflow(name="w", telemetry=False).telemetry is False


def test_pprint_run_response_prints_the_answer(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    agent = Agent(name=unique("pp"), model=model_factory(), db=db)
    server.script(text("The answer."))
    out = io.StringIO()
    pprint.pprint_run_response(agent.run("q"), markdown=True, file=out)
    assert out.getvalue() == "The answer.\n"
    server.script(text("Streamed answer."))
    out = io.StringIO()
    pprint.pprint_run_response(agent.run("q", stream=True), show_time=True, file=out)
    printed = out.getvalue().splitlines()
    assert printed[0] == "Streamed answer." and printed[1].startswith("(") and printed[1].endswith("s)")
    out = io.StringIO()
    pprint.pprint_run_response(RunOutput(run_id="r", session_id="s", content={"k": [1]}), file=out)
    assert json.loads(out.getvalue()) == {"k": [1]}
    out = io.StringIO()
    pprint.pprint_run_response(RunOutput(run_id="r", session_id="s"), file=out)
    assert out.getvalue() == "\n"


def test_pprint_prints_a_workflow_run_and_its_stream(db: BaseDb) -> None:
    from kern.workflow import Step, Workflow
    from kern.workflow.types import StepInput

    def shout(step_input: StepInput) -> str:
        return str(step_input.input).upper()

    wf = Workflow(name=unique("pp-wf"), db=db, steps=[Step(name="s", executor=shout)])
    out = io.StringIO()
    pprint.pprint_run_response(wf.run("hey"), file=out)
    assert out.getvalue() == "HEY\n"
    out = io.StringIO()
    pprint.pprint_run_response(wf.run("ho", stream=True), file=out)
    assert out.getvalue() == "HO\n"


def test_member_requirements_route_back_through_a_team(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    """A team's continue_run with a member's confirmation and a team-level external call in one pause."""
    server.script(
        calls(
            ("delegate_task_to_member", {"member_name": "Mailer", "task": "email ana"}),
            ("get_user_location", {"reason": "sign-off"}),
        ),  # leader: one delegation, one external call of its own
        call("send_email", to="ana@x", body="hi"),  # member
        text("Member: mailed"),  # member after its confirmed tool ran
        echo_tool_results,  # leader's answer
    )
    kit = MailTools(requires_confirmation_tools=["send_email"], include_tools=["send_email"])
    member = Agent(name="Mailer", model=model_factory(), tools=[kit], db=db)
    team = Team(name=unique("crew"), members=[member], model=model_factory(), tools=[get_user_location], db=db)
    run = team.run("email ana and tell me where I am")
    assert run.is_paused
    kinds = {(r.member_agent_name, r.tool_execution.tool_name) for r in run.active_requirements}
    assert kinds == {(None, "get_user_location"), ("Mailer", "send_email")}
    for req in run.active_requirements:
        if req.needs_confirmation:
            req.confirm()
        else:
            req.set_external_execution_result("Lisbon")
    done = team.continue_run(run)
    assert done.status == RunStatus.COMPLETED
    assert sorted(done.content.removeprefix("Final: ").split(" | ")) == ["Lisbon", "Member: mailed"]
