"""Agents, teams, approvals and executor-level HITL, through the real openai client against a local
scripted OpenAI-compatible server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kern import RequirementNotResolvedError
from kern.agent import Agent
from kern.approval import approval
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.run.agent import RunContentEvent, RunPausedEvent
from kern.run.base import RunStatus
from kern.team import Team
from kern.tools import UserInputTools, tool
from tests.conftest import unique
from tests.openai_stub import (
    FakeOpenAI,
    call,
    calls,
    echo_tool_results,
    text,
)

ROOT = Path(__file__).resolve().parent.parent
sent: list[str] = []


@tool(requires_confirmation=True)
def send_alert(city: str, message: str) -> str:
    """Send a weather alert.

    Args:
        city: The city to alert.
        message: The alert text.
    """
    sent.append(city)
    return f"Alert sent for {city}: {message}"


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return f"Rain in {city}"


@tool(requires_user_input=True, user_input_fields=["account"])
def transfer(amount: float, account: str) -> str:
    """Transfer money.

    Args:
        amount: How much.
        account: Destination account (given by the user).
    """
    return f"Transferred {amount} to {account}"


@tool(external_execution=True)
def run_sql(query: str) -> str:
    """Run SQL in the warehouse (executed outside the agent)."""
    raise AssertionError("never called: external")


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()
    sent.clear()


def test_confirmation_from_a_new_agent_object(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(
        calls(("get_weather", {"city": "Tokyo"}), ("send_alert", {"city": "Tokyo", "message": "rain"})),
        echo_tool_results,
    )
    name = unique("alerts")
    agent = Agent(name=name, model=model_factory(), tools=[send_alert, get_weather], db=db)
    run = agent.run("Warn Tokyo")
    assert run.is_paused and len(run.active_requirements) == 1  # get_weather needed nobody and ran
    req = run.active_requirements[0]
    assert req.needs_confirmation and req.tool.tool_name == "send_alert"
    assert req.tool_execution.tool_args == {"city": "Tokyo", "message": "rain"}
    with pytest.raises(ValueError, match="needs confirm"):
        req.provide_user_input({"x": 1})
    req.confirm(by="alice")
    fresh = Agent(name=name, model=model_factory(), tools=[send_alert, get_weather], db=db)
    done = fresh.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.status == RunStatus.COMPLETED
    assert done.content == "Final: Rain in Tokyo | Alert sent for Tokyo: rain"
    assert sent == ["Tokyo"]
    audit = asyncio.run(db.audit_log(run_id=run.run_id))
    assert [(a["actor"], a["decision"]) for a in audit] == [("alice", "confirm")]
    schema = server.requests[0]
    tools = schema["tools"]
    names = [t.get("name") or t["function"]["name"] for t in tools]
    assert names == ["send_alert", "get_weather"]


def test_rejection_is_reported_and_the_run_goes_on(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("send_alert", city="Oslo", message="snow"), echo_tool_results)
    agent = Agent(name=unique("alerts"), model=model_factory(), tools=[send_alert], db=db)
    run = agent.run("Warn Oslo")
    run.active_requirements[0].reject(note="not today")
    done = agent.continue_run(run_response=run)
    assert done.content == "Final: The user rejected the call to send_alert. Note: not today"
    assert sent == []


def test_user_input_and_external_execution(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(calls(("transfer", {"amount": 12.5}), ("run_sql", {"query": "select 1"})), echo_tool_results)
    agent = Agent(name=unique("bank"), model=model_factory(), tools=[transfer, run_sql], db=db)
    run = agent.run("pay and query")
    sent_schema = json.dumps(server.requests[0]["tools"])
    assert "account" not in sent_schema  # user-input fields are hidden from the model
    by_tool = {r.tool.tool_name: r for r in run.active_requirements}
    assert by_tool["transfer"].needs_user_input and by_tool["run_sql"].is_external_tool_execution
    with pytest.raises(RequirementNotResolvedError, match="transfer"):
        agent.continue_run(run_response=run)
    with pytest.raises(ValueError, match="account: required"):
        by_tool["transfer"].provide_user_input({})
    by_tool["transfer"].provide_user_input({"account": "ACME-1"})
    by_tool["run_sql"].set_external_execution_result([{"one": 1}])
    done = agent.continue_run(run_response=run)
    assert done.content == 'Final: Transferred 12.5 to ACME-1 | [{"one": 1}]'


def test_streaming_and_paused_event(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("send_alert", city="Rome", message="heat"), text("All done, alert sent."))
    agent = Agent(name=unique("alerts"), model=model_factory(), tools=[send_alert], db=db)
    resumed = None
    for run_event in agent.run("Warn Rome", stream=True):
        if run_event.is_paused:
            assert isinstance(run_event, RunPausedEvent)
            for requirement in run_event.active_requirements:
                requirement.confirm()
            resumed = agent.continue_run(run_id=run_event.run_id, requirements=run_event.requirements, stream=True)
    assert resumed is not None
    events = list(resumed)
    streamed = "".join(e.content for e in events if isinstance(e, RunContentEvent))
    assert streamed == "All done, alert sent."
    assert sent == ["Rome"]


def test_dynamic_user_input(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    fields = [
        {"field_name": "recipient", "field_type": "str", "field_description": "Who gets it"},
        {"field_name": "copies", "field_type": "int"},
    ]
    server.script(call("get_user_input", user_input_fields=fields), echo_tool_results)
    agent = Agent(name=unique("asker"), model=model_factory(), tools=[UserInputTools()], db=db)
    run = agent.run("send a letter")
    req = run.active_requirements[0]
    assert req.needs_user_input
    assert [(f.name, f.field_type, f.description) for f in req.user_input_schema] == [
        ("recipient", "str", "Who gets it"),
        ("copies", "int", None),
    ]
    req.provide_user_input({"recipient": "Ada", "copies": "2"})
    assert agent.continue_run(run_response=run).content == 'Final: {"recipient": "Ada", "copies": 2}'


@approval
@tool(requires_confirmation=True)
def delete_user(user_id: str) -> str:
    """Delete a user's data."""
    return f"Deleted {user_id}"


@approval(type="audit")
@tool(requires_confirmation=True)
def rotate_key(key: str) -> str:
    """Rotate a key."""
    return f"Rotated {key}"


def test_required_approval_and_audit(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(calls(("delete_user", {"user_id": "u7"}), ("rotate_key", {"key": "k1"})), echo_tool_results)
    name = unique("admin")
    agent = Agent(name=name, model=model_factory(), tools=[delete_user, rotate_key], db=db)
    run = agent.run("clean up")
    pending = asyncio.run(db.list_approvals(run_id=run.run_id, status="pending"))
    assert [(p["tool_name"], p["tool_args"]) for p in pending] == [("delete_user", {"user_id": "u7"})]
    for req in run.active_requirements:
        if req.tool.tool_name == "rotate_key":
            req.confirm(by="bob")
    with pytest.raises(RequirementNotResolvedError, match="still pending"):
        agent.continue_run(run_response=run)
    # the admin decides from "another process": a new store object on the same database
    other_db = type(db)(db_file=db.db_file) if hasattr(db, "db_file") else type(db)(db_url=db.db_url)  # type: ignore[attr-defined]
    asyncio.run(other_db.resolve_approval(pending[0]["id"], approved=True, resolved_by="admin"))
    with pytest.raises(ValueError, match="already approved by admin"):
        asyncio.run(other_db.resolve_approval(pending[0]["id"], approved=False, resolved_by="eve"))
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.content == "Final: Deleted u7 | Rotated k1"
    records = {a["tool_name"]: a for a in asyncio.run(db.list_approvals(run_id=run.run_id))}
    assert records["delete_user"]["status"] == "approved" and records["delete_user"]["resolved_by"] == "admin"
    assert records["rotate_key"]["approval_type"] == "audit" and records["rotate_key"]["resolved_by"] == "bob"
    assert {a["actor"] for a in asyncio.run(db.audit_log(run_id=run.run_id))} == {"admin", "bob"}
    assert asyncio.run(db.list_approvals(resolved_by="admin", run_id=run.run_id))[0]["tool_name"] == "delete_user"


def test_team_member_pause_routes_back(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(
        call("delegate_task_to_member", member_name="Weather", task="alert Tokyo"),  # leader
        call("send_alert", city="Tokyo", message="storm"),  # member
        text("Member: alert sent"),  # member after its tool ran
        call("transfer", amount=3),  # leader calls its own HITL tool
        echo_tool_results,  # leader's final answer
    )
    member = Agent(name="Weather", model=model_factory(), tools=[send_alert], db=db)
    team = Team(name=unique("ops"), members=[member], model=model_factory(), tools=[transfer], db=db)
    run_response = team.run("What is the weather in Tokyo?")
    seen = []
    while run_response.is_paused:
        for requirement in run_response.active_requirements:
            seen.append((requirement.member_agent_name, requirement.tool_execution.tool_name))
            if requirement.needs_confirmation:
                requirement.confirm()
            else:
                requirement.provide_user_input({"account": "ops"})
        run_response = team.continue_run(run_response)
    assert seen == [("Weather", "send_alert"), (None, "transfer")]
    assert run_response.content == "Final: Member: alert sent | Transferred 3.0 to ops"
    assert sent == ["Tokyo"]


CONTINUE_IN_SUBPROCESS = """
import os, sys
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from tests.conftest import make_db
from tests.test_agents import send_alert
from pathlib import Path
db = make_db(sys.argv[1], Path(sys.argv[2]))
agent = Agent(name=sys.argv[3], model=OpenAIChat(id="m"), tools=[send_alert], db=db)
run = agent.get_run(sys.argv[4])
run.active_requirements[0].confirm(by="subprocess")
print(agent.continue_run(run_response=run).content)
"""


def test_agent_resumes_in_another_process(db_kind: str, db: BaseDb, server: FakeOpenAI, tmp_path: Path) -> None:
    server.script(call("send_alert", city="Lima", message="fog"), echo_tool_results)
    name = unique("xagent")
    agent = Agent(name=name, model=OpenAIChat(id="m", base_url=server.base_url, api_key="t"), tools=[send_alert], db=db)
    run = agent.run("Warn Lima")
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "t", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", CONTINUE_IN_SUBPROCESS, db_kind, str(tmp_path), name, run.run_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Final: Alert sent for Lima: fog"
