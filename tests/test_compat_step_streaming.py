"""An agent (or team) running as a workflow step streams its own events into the workflow's stream, in
order, with the step's context on them; the journal and the pause/continue cycle are the same as without
a listener. Through the real openai client on the scripted server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.run.agent import (
    RunCompletedEvent,
    RunContentEvent,
    RunContinuedEvent,
    RunEvent,
    RunPausedEvent,
    RunStartedEvent,
    ToolCallStartedEvent,
)
from kern.run.requirement import derived_step_id
from kern.run.team import TeamRunContentEvent
from kern.run.workflow import (
    StepCompletedEvent,
    StepExecutorContinuedEvent,
    StepExecutorPausedEvent,
    StepStartedEvent,
    WorkflowCompletedEvent,
    WorkflowPausedEvent,
    WorkflowStartedEvent,
)
from kern.team import Team
from kern.tools import tool
from kern.workflow import RunStatus, Step, StepInput, Workflow
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, text, tool_results

sent: list[str] = []


@tool(requires_confirmation=True)
def send_alert(city: str) -> str:
    sent.append(city)
    return f"alert sent for {city}"


def lookup(city: str) -> str:
    return f"sunny in {city}"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()
    sent.clear()


def agent(server: FakeOpenAI, db: BaseDb, name: str = "Forecaster", tools: list[Any] | None = None) -> Agent:
    model = OpenAIChat(id="gpt-test", base_url=server.base_url, api_key="t")
    return Agent(name=name, model=model, tools=tools if tools is not None else [lookup], db=db)


def kinds(events: list[Any]) -> list[str]:
    return [type(e).__name__ for e in events]


def agent_events(events: list[Any]) -> list[RunEvent]:
    return [e for e in events if isinstance(e, RunEvent)]


def test_agent_events_stream_in_order_with_the_step_context(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("lookup", city="Oslo"), lambda body: text("Forecast: " + tool_results(body)[0]))
    workflow = Workflow(
        name=unique("stream_agent"),
        db=db,
        steps=[Step(name="prep", executor=lambda s: "Oslo"), Step(name="forecast", agent=agent(server, db))],
    )
    events = list(workflow.run("weather", stream=True, stream_events=True))
    # the agent's events sit between its step's started and completed events, in the agent's order
    step_event = next(e for e in events if isinstance(e, StepStartedEvent) and e.step_name == "forecast")
    start = events.index(step_event)
    end = events.index(next(e for e in events if isinstance(e, StepCompletedEvent) and e.step_name == "forecast"))
    inner = agent_events(events)
    assert events[start + 1] is inner[0] and isinstance(events[start + 1], RunStartedEvent)
    assert events.index(inner[-1]) < end
    assert kinds(inner)[:3] == ["RunStartedEvent", "ToolCallStartedEvent", "ToolCallCompletedEvent"]
    assert isinstance(inner[-1], RunCompletedEvent) and inner[-1].content == "Forecast: sunny in Oslo"
    pieces = [e.content for e in inner if isinstance(e, RunContentEvent)]
    assert "".join(pieces) == "Forecast: sunny in Oslo"
    run = workflow.get_session().runs[-1]
    assert run.status == RunStatus.COMPLETED and run.content == "Forecast: sunny in Oslo"
    for event in inner:
        assert event.workflow_id == workflow.id
        assert event.workflow_run_id == run.run_id
        assert event.step_name == "forecast" and event.step_index == 1 and event.nested_depth == 0
        assert event.step_id == step_event.step_id == derived_step_id("1", "forecast")
        assert event.agent_name == "Forecaster" and event.run_id != run.run_id  # the agent run's own id
    assert isinstance(events[0], WorkflowStartedEvent) and isinstance(events[-1], WorkflowCompletedEvent)


def test_an_agent_run_alone_has_no_step_context(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(text("hello"))
    events = list(agent(server, db).run("hi", stream=True))
    assert all(e.workflow_id is None and e.step_id is None and e.step_index is None for e in events)


def test_plain_stream_gets_content_and_completion_and_stream_executor_events_false_completion_only(
    db: BaseDb, server: FakeOpenAI
) -> None:
    server.script(text("part one"), text("part two"))
    steps = [Step(name="talk", agent=agent(server, db, tools=[]))]
    plain = list(Workflow(name=unique("plain"), db=db, steps=steps).run("x", stream=True))
    assert {type(e) for e in agent_events(plain)} == {RunContentEvent, RunCompletedEvent}
    quiet = Workflow(name=unique("quiet"), db=db, steps=steps, stream_executor_events=False)
    events = list(quiet.run("x", stream=True, stream_events=True))
    assert kinds(agent_events(events)) == ["RunCompletedEvent"]
    assert agent_events(events)[0].content == "part two" and agent_events(events)[0].step_name == "talk"


def test_no_listener_no_agent_events_and_the_same_journal(db: BaseDb, server: FakeOpenAI) -> None:
    """Streaming is a view: the run stored and its journal keys are the same as without a listener."""
    reply = lambda body: text("done: " + tool_results(body)[0])  # noqa: E731
    journals = []
    for stream in (False, True):
        server.script(call("lookup", city="Rome"), reply)
        workflow = Workflow(name=unique("view"), db=db, steps=[Step(name="s", agent=agent(server, db))])
        if stream:
            list(workflow.run("x", stream=True, stream_events=True))
            run = workflow.get_session().runs[-1]
        else:
            run = workflow.run("x")
        assert run.content == "done: sunny in Rome"
        stored = asyncio.run(db.load_run(run.run_id))
        journals.append(sorted(stored.journal))
    assert journals[0] == journals[1]


def test_a_step_agent_pauses_mid_stream_and_streams_again_after_continue(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("send_alert", city="Tokyo"), lambda body: text("Done: " + tool_results(body)[-1]))
    alerter = agent(server, db, name="Alerter", tools=[send_alert])
    workflow = Workflow(name=unique("pause_stream"), db=db, steps=[Step(name="alert", agent=alerter)])
    events = list(workflow.run("alert Tokyo", stream=True, stream_events=True))
    inner = agent_events(events)
    assert kinds(inner) == ["RunStartedEvent"]  # the call waits: no tool events yet
    assert not any(isinstance(e, RunPausedEvent) for e in events)  # the executor pause stands for it
    assert kinds(events)[-2:] == ["StepExecutorPausedEvent", "WorkflowPausedEvent"]
    assert sent == []
    run = workflow.get_run(events[-1].run_id)
    assert run.status == RunStatus.PAUSED  # stored before the pause events were sent
    run.step_requirements[-1].executor_requirements[0].confirm()

    continued = list(workflow.continue_run(run, stream=True, stream_events=True))
    assert isinstance(continued[0], StepExecutorContinuedEvent)
    inner = agent_events(continued)
    assert kinds(inner)[:3] == ["RunContinuedEvent", "ToolCallStartedEvent", "ToolCallCompletedEvent"]
    assert isinstance(inner[-1], RunCompletedEvent) and inner[-1].content == "Done: alert sent for Tokyo"
    assert {e.step_name for e in inner} == {"alert"} and {e.workflow_run_id for e in inner} == {run.run_id}
    assert {e.run_id for e in inner} == {run.step_requirements[-1].executor_run_id}
    assert isinstance(continued[-1], WorkflowCompletedEvent)
    assert sent == ["Tokyo"]  # exactly once
    assert workflow.get_run(run.run_id).content == "Done: alert sent for Tokyo"
    again = [e for e in continued if isinstance(e, (RunContinuedEvent, ToolCallStartedEvent))]
    assert len(again) == 2  # the finished agent run is read back on later drives, not streamed again


def test_async_stream_of_a_custom_executor_calling_an_agent(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(text("from inside"))
    helper = agent(server, db, name="Helper", tools=[])

    async def executor(step_input: StepInput) -> str:
        result = await helper.arun(step_input.input)
        return f"wrapped: {result.content}"

    workflow = Workflow(name=unique("custom"), db=db, steps=[Step(name="wrap", executor=executor)])

    async def collect() -> list[Any]:
        return [e async for e in workflow.arun("go", stream=True, stream_events=True)]

    events = asyncio.run(collect())
    inner = agent_events(events)
    assert kinds(inner)[0] == "RunStartedEvent" and inner[-1].content == "from inside"
    assert {e.step_name for e in inner} == {"wrap"} and {e.step_index for e in inner} == {0}
    completed = next(e for e in events if isinstance(e, StepCompletedEvent))
    assert completed.content == "wrapped: from inside" and events.index(inner[-1]) < events.index(completed)


def test_a_team_step_streams_its_team_events(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(text("team answer"))
    team = Team(
        name="Crew",
        members=[agent(server, db, name="Member", tools=[])],
        model=OpenAIChat(id="gpt-test", base_url=server.base_url, api_key="t"),
        db=db,
    )
    workflow = Workflow(name=unique("team_stream"), db=db, steps=[Step(name="crew", team=team)])
    events = list(workflow.run("x", stream=True, stream_events=True))
    content = [e for e in events if isinstance(e, TeamRunContentEvent)]
    assert "".join(e.content for e in content) == "team answer"
    assert {(e.team_name, e.step_name) for e in content} == {("Crew", "crew")}


def test_executor_pause_events_keep_their_order_on_a_chained_pause(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(
        call("send_alert", city="Oslo"),
        call("send_alert", city="Lima"),
        lambda body: text("Done: " + tool_results(body)[-1]),
    )
    alerter = agent(server, db, name="Alerter", tools=[send_alert])
    workflow = Workflow(name=unique("chain_stream"), db=db, steps=[Step(name="alerts", agent=alerter)])
    list(workflow.run("x", stream=True, stream_events=True))
    run = workflow.get_session().runs[-1]
    run.step_requirements[-1].executor_requirements[0].confirm()
    second = list(workflow.continue_run(run, stream=True, stream_events=True))
    assert kinds(agent_events(second)) == ["RunContinuedEvent", "ToolCallStartedEvent", "ToolCallCompletedEvent"]
    assert isinstance(second[-2], StepExecutorPausedEvent) and isinstance(second[-1], WorkflowPausedEvent)
    run = workflow.get_run(run.run_id)
    run.step_requirements[-1].executor_requirements[0].confirm()
    third = list(workflow.continue_run(run, stream=True, stream_events=True))
    assert kinds(agent_events(third))[0] == "RunContinuedEvent" and third[-1].event == "WorkflowCompleted"
    assert sent == ["Oslo", "Lima"]
