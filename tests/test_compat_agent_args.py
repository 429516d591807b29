"""The reference API's Agent/Team arguments: session_state, dependencies, post_hooks, and user input given
by setting each field's value; through the public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.run import RunContext
from kern.run.agent import RunOutput
from kern.team import Team
from kern.tools import tool
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results


@tool(requires_confirmation=True)
def watch(run_context: RunContext, symbol: str) -> str:
    """Add a symbol to the watchlist."""
    state = run_context.session_state
    assert state is not None
    state["watchlist"] = [*state.get("watchlist", []), symbol]
    return f"watching {state['watchlist']}"


@tool(requires_confirmation=True)
def authorised(order: str, dependencies: dict[str, Any] | None = None) -> str:
    """Cancel an order with the caller's token."""
    token = (dependencies or {}).get("token")
    return f"cancelled {order} with {token}" if token else "missing token"


@tool(requires_user_input=True, user_input_fields=["to"])
def send(subject: str, to: str) -> str:
    """Send a message."""
    return f"sent {subject} to {to}"


def test_session_state_survives_the_pause_and_carries_to_the_next_run(
    db: BaseDb, server: FakeOpenAI, model_factory
) -> None:
    agent = Agent(
        name=unique("watcher"),
        model=model_factory(),
        tools=[watch],
        db=db,
        session_state={"watchlist": []},
        instructions="The watchlist is: {watchlist}. Keep {unknown} as written.",
    )
    server.script(call("watch", symbol="AAPL"))
    run = agent.run("add AAPL")
    assert "symbol" in str(agent.tools[0].parameters) and "run_context" not in str(agent.tools[0].parameters)
    assert run.messages[0]["content"] == "The watchlist is: []. Keep {unknown} as written."
    run.active_requirements[0].confirm()
    server.script(echo_tool_results)
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.content == "Final: watching ['AAPL']"
    assert agent.get_session_state() == {"watchlist": ["AAPL"]}
    server.script(call("watch", symbol="TSLA"))
    second = agent.run("add TSLA", session_state={"mode": "pro"})
    assert second.session_state == {"watchlist": ["AAPL"], "mode": "pro"}


def test_dependencies_reach_tools_are_not_stored_and_a_missing_one_shows(
    db: BaseDb, server: FakeOpenAI, model_factory
) -> None:
    agent = Agent(name=unique("orders"), model=model_factory(), tools=[authorised], db=db)
    server.script(call("authorised", order="O-1"))
    run = agent.run("cancel O-1", dependencies={"token": "T-9"})
    assert "dependencies" not in str(agent.tools[0].parameters)
    assert "T-9" not in str(run.to_dict())  # never stored
    run.active_requirements[0].confirm()
    server.script(echo_tool_results)
    done = agent.continue_run(run_response=run, dependencies={"token": "T-9"})
    assert done.content == "Final: cancelled O-1 with T-9"

    server.script(call("authorised", order="O-2"))
    run = agent.run("cancel O-2", dependencies={"token": "T-9"})
    run.active_requirements[0].confirm()
    server.script(echo_tool_results)
    done = agent.continue_run(run_response=run)  # not given again: the tool sees none
    assert done.content == "Final: missing token"
    with pytest.raises(TypeError, match="colour"):
        agent.run("x", colour="red")  # type: ignore[call-arg]


def test_team_forwards_dependencies_to_a_paused_member(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    member = Agent(name="Orders", model=model_factory(), tools=[authorised])
    team = Team(name=unique("desk"), members=[member], model=model_factory(), db=db)
    assert member.db is db  # a member given no db keeps its runs in the team's
    server.script(
        call("delegate_task_to_member", member_name="Orders", task="cancel O-3"), call("authorised", order="O-3")
    )
    run = team.run("cancel O-3", dependencies={"token": "T-1"})
    run.active_requirements[0].confirm()
    server.script(echo_tool_results, echo_tool_results)
    done = team.continue_run(run, dependencies={"token": "T-1"})
    assert "cancelled O-3 with T-1" in done.content


def test_post_hooks_see_the_output_and_a_failing_one_is_logged(
    db: BaseDb, server: FakeOpenAI, model_factory, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str | None]] = []

    def record(run_output: RunOutput, agent: Agent) -> None:
        seen.append((agent.name, run_output.content))

    def broken(run_output: RunOutput) -> None:
        raise RuntimeError("hook broke")

    agent = Agent(name=unique("hooked"), model=model_factory(), db=db, post_hooks=[broken, record])
    server.script(echo_tool_results)
    with caplog.at_level(logging.ERROR, logger="kern.agent"):
        run = agent.run("hello")
    assert run.status == "COMPLETED" and seen == [(agent.name, run.content)]
    assert "Post-hook broken" in caplog.text and "hook broke" in caplog.text


def test_user_input_given_by_setting_field_values(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    agent = Agent(name=unique("mailer"), model=model_factory(), tools=[send], db=db)
    server.script(call("send", subject="Hi"))
    run = agent.run("send hi")
    [req] = run.active_requirements
    for field in req.user_input_schema or []:
        field.value = "ann@example.com"
    server.script(echo_tool_results)
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.content == "Final: sent Hi to ann@example.com"

    server.script(call("send", subject="Yo"))
    run = agent.run("send yo")  # no value set: still waits, naming the call
    with pytest.raises(ValueError, match="send"):
        agent.continue_run(run_id=run.run_id, requirements=run.requirements)
