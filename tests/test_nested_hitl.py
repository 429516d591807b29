"""Executor-level and nested HITL in workflows (seeds/001), through the real openai client."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat, OpenAIResponses
from kern.run.workflow import StepExecutorContinuedEvent, StepExecutorPausedEvent, WorkflowPausedEvent
from kern.tools import tool
from kern.workflow import Condition, Loop, OnReject, Router, RunStatus, Step, StepInput, StepOutput, Workflow
from kern.workflow.types import UserInputField
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, Reply, call, text, tool_results

ROOT = Path(__file__).resolve().parent.parent
alerts: list[str] = []


@tool(requires_confirmation=True)
def send_alert(city: str, message: str) -> str:
    alerts.append(city)
    return f"Alert sent for {city}: {message}"


def last_tool_result(body: dict) -> Reply:
    return text(f"Done: {tool_results(body)[-1]}")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()
    alerts.clear()


def alert_agent(server: FakeOpenAI, db: BaseDb) -> Agent:
    return Agent(
        name="AlertAgent",
        model=OpenAIResponses(id="gpt-5.4", base_url=server.base_url, api_key="t"),
        tools=[send_alert],
        db=db,
    )


# The resolution loop of seeds/001, verbatim.
def resolve_step_pause(run_output):
    for req in (run_output.step_requirements or [])[-1:]:
        if req.requires_confirmation and not req.requires_executor_input:
            req.confirm()  # or req.reject()


def resolve_executor_pause(run_output):
    for req in (run_output.step_requirements or [])[-1:]:
        if req.requires_executor_input:
            for executor_req in req.executor_requirements or []:
                executor_req.confirm()  # or .reject(note=...) / .provide_user_input(...)


def drive(workflow: Workflow, run_output, on_other: Callable | None = None) -> tuple:
    kinds = []
    while run_output.is_paused:
        _active = (run_output.step_requirements or [])[-1:]
        kinds.append((run_output.pause_kind, _active[0].kind, _active[0].step_name))
        if any(r.requires_executor_input for r in _active):
            resolve_executor_pause(run_output)
        elif on_other is not None and not _active[0].requires_confirmation:
            on_other(_active[0])
        else:
            resolve_step_pause(run_output)
        run_output = workflow.continue_run(run_output)
    return run_output, kinds


def test_dual_confirmation_verbatim(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("send_alert", city="Tokyo", message="heavy rain"), last_tool_result)
    workflow = Workflow(
        name=unique("DualConfirmation"),
        db=db,
        steps=[
            Step(
                name="send_alert",
                agent=alert_agent(server, db),
                requires_confirmation=True,  # step-level gate
                confirmation_message="Proceed with sending the alert?",
            ),
        ],
    )
    run_output = workflow.run("Send a weather alert for Tokyo about heavy rain")
    out, kinds = drive(workflow, run_output)
    assert kinds == [("step", "confirmation", "send_alert"), ("executor", "executor", "send_alert")]
    assert out.status == RunStatus.COMPLETED
    assert out.content == "Done: Alert sent for Tokyo: heavy rain"
    assert alerts == ["Tokyo"]
    # the step requirements accumulated; only the last is active, none is open now
    assert [r.kind for r in out.step_requirements] == ["confirmation", "executor"]
    assert out.steps_requiring_executor_resolution == [] and out.steps_requiring_confirmation == []


def test_chained_executor_pauses_and_events(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(
        call("send_alert", city="Tokyo", message="rain"),
        call("send_alert", city="Osaka", message="rain"),
        last_tool_result,
    )
    workflow = Workflow(name=unique("chain"), db=db, steps=[Step(name="alerts", agent=alert_agent(server, db))])
    events = list(workflow.run("alert two cities", stream=True))
    assert isinstance(events[-2], StepExecutorPausedEvent) and isinstance(events[-1], WorkflowPausedEvent)
    run = workflow.get_session().runs[-1]
    assert run.pause_kind == "executor" and run.steps_requiring_executor_resolution
    run.step_requirements[-1].executor_requirements[0].confirm()
    continued = list(workflow.continue_run(run, stream=True))
    assert isinstance(continued[0], StepExecutorContinuedEvent)
    run = workflow.get_session().runs[-1]
    assert run.is_paused and len(run.step_requirements) == 2  # the agent paused again: a chained pause
    run.step_requirements[-1].executor_requirements[0].reject(note="one is enough")
    done = workflow.continue_run(run)
    assert done.content == "Done: The user rejected the call to send_alert. Note: one is enough"
    assert alerts == ["Tokyo"]


def _cookbook(server: FakeOpenAI, db: BaseDb) -> dict[str, tuple[list, Callable | None]]:
    def agent_step(name: str, **kwargs: object) -> Step:
        return Step(name=name, agent=alert_agent(server, db), **kwargs)  # type: ignore[arg-type]

    def plain(name: str) -> Step:
        return Step(name=name, executor=lambda s: f"{name} ok")

    def answer_input(req) -> None:
        req.set_user_input(region="apac")

    def pick_route(req) -> None:
        req.select("alert_route")

    def approve_review(req) -> None:
        req.confirm()

    return {
        "step_confirmation": ([agent_step("a", requires_confirmation=True)], None),
        "step_user_input": (
            [agent_step("a", requires_user_input=True, user_input_schema=[UserInputField(name="region")])],
            answer_input,
        ),
        "condition": ([Condition(name="c", steps=[agent_step("a")], requires_confirmation=True)], None),
        "router_selection": (
            [Router(name="r", choices=[agent_step("alert_route"), plain("quiet_route")], requires_user_input=True)],
            pick_route,
        ),
        "output_review": ([agent_step("a", requires_output_review=True)], approve_review),
        "loop_confirmation": (
            [Loop(name="l", steps=[agent_step("a")], max_iterations=1, requires_confirmation=True)],
            None,
        ),
        "router_confirmation": (
            [
                Router(
                    name="r",
                    selector=lambda s: "alert_route",
                    choices=[agent_step("alert_route"), plain("quiet_route")],
                    requires_confirmation=True,
                )
            ],
            None,
        ),
        "multi_step_mixed": (
            [
                plain("prep"),
                agent_step("a", requires_confirmation=True),
                Step(
                    name="post",
                    executor=lambda s: f"post<{s.previous_step_content}>",
                    requires_output_review=True,
                    on_reject=OnReject.retry,
                ),
            ],
            approve_review,
        ),
    }


@pytest.mark.parametrize(
    "combo",
    [
        "step_confirmation",
        "step_user_input",
        "condition",
        "router_selection",
        "output_review",
        "loop_confirmation",
        "router_confirmation",
        "multi_step_mixed",
    ],
)
def test_cookbook_combinations(combo: str, db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("send_alert", city="Tokyo", message="rain"), last_tool_result)
    steps, on_other = _cookbook(server, db)[combo]
    workflow = Workflow(name=unique(combo), db=db, steps=steps)
    out, kinds = drive(workflow, workflow.run("alert Tokyo"), on_other)
    assert out.status == RunStatus.COMPLETED, out.content
    order = [k[0] for k in kinds]
    assert "executor" in order and "step" in order
    if combo == "output_review":  # reviewed after the agent finished
        assert order == ["executor", "step"] and kinds[-1][1] == "output_review"
    else:  # the step-level gate comes before the tool call
        assert order[0] == "step"
    assert alerts == ["Tokyo"]
    assert "Alert sent for Tokyo: rain" in str(out.content)


def test_agent_inside_a_function_executor(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("send_alert", city="Kyiv", message="wind"), last_tool_result)
    agent = alert_agent(server, db)
    before: list[str] = []

    async def custom(step_input: StepInput) -> StepOutput:
        before.append("ran")
        response = await agent.arun(f"alert for {step_input.input}")
        return StepOutput(content=f"wrapped[{response.content}]")

    workflow = Workflow(name=unique("fn"), db=db, steps=[Step(name="custom", executor=custom)])
    out, kinds = drive(workflow, workflow.run("Kyiv"))
    assert kinds == [("executor", "executor", "custom")]
    assert out.content == "wrapped[Done: Alert sent for Kyiv: wind]"
    assert alerts == ["Kyiv"] and before == ["ran", "ran"]  # the function re-runs; its agent run resumes


NESTED_CONTINUE = """
import sys
from pathlib import Path
from kern.workflow import Step, Workflow
from kern.agent import Agent
from kern.models.openai import OpenAIResponses
from tests.conftest import make_db
from tests.test_nested_hitl import send_alert
db = make_db(sys.argv[1], Path(sys.argv[2]))
agent = Agent(name="AlertAgent", model=OpenAIResponses(id="gpt-5.4"), tools=[send_alert], db=db)
wf = Workflow(name=sys.argv[3], db=db, steps=[Step(name="send_alert", agent=agent, requires_confirmation=True)])
run = wf.get_run(sys.argv[4])
for r in run.step_requirements[-1].executor_requirements:
    r.confirm(by="subprocess")
print(wf.continue_run(run).content)
"""


def test_nested_pause_resumes_in_another_process(db_kind: str, db: BaseDb, server: FakeOpenAI, tmp_path: Path) -> None:
    server.script(call("send_alert", city="Quito", message="ash"), last_tool_result)
    name = unique("xnested")
    wf = Workflow(
        name=name, db=db, steps=[Step(name="send_alert", agent=alert_agent(server, db), requires_confirmation=True)]
    )
    run = wf.run("alert Quito")
    run.step_requirements[-1].confirm()
    run = wf.continue_run(run)
    assert run.pause_kind == "executor"
    env = {**os.environ, "OPENAI_BASE_URL": server.base_url, "OPENAI_API_KEY": "t", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", NESTED_CONTINUE, db_kind, str(tmp_path), name, run.run_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "Done: Alert sent for Quito: ash"
    assert wf.get_run(run.run_id).status == RunStatus.COMPLETED


def test_openai_chat_model_in_a_step(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("send_alert", city="Nairobi", message="flood"), last_tool_result)
    agent = Agent(
        name="ChatAgent", model=OpenAIChat(id="m", base_url=server.base_url, api_key="t"), tools=[send_alert], db=db
    )
    wf = Workflow(name=unique("chatstep"), db=db, steps=[Step(name="s", agent=agent)])
    out, _ = drive(wf, wf.run("x"))
    assert out.content == "Done: Alert sent for Nairobi: flood"
