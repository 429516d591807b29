"""Parity with the reference documentation, the remaining gaps of issue 10.

Loop iteration forwarding (`forward_iteration_output`), error pauses as `ErrorRequirement`, team and
workflow event identities, `StepRequirement`'s documented constructor, and `Message` objects as agent
input. Code is written the way the reference pages write it, with `agno` read as `kern`; every run goes
through the public API, on SQLite and PostgreSQL wherever something is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIResponses
from kern.run import agent as agent_events
from kern.team import Team
from kern.tools import tool
from kern.workflow import Loop, RunStatus, Step, StepInput, StepOutput, Workflow
from kern.workflow.types import HumanReview
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, text

# ---------------------------------------------------------------- 1. Loop(forward_iteration_output=...)


def increment_executor(step_input: StepInput) -> StepOutput:
    """Increment the previous step's numeric content by 10."""
    last_content = step_input.get_last_step_content()
    if last_content and last_content.isdigit():
        new_value = int(last_content) + 10
        return StepOutput(content=str(new_value))
    return StepOutput(content="0")


def accumulation(db: BaseDb, **forward: Any) -> Workflow:
    """The documented iterative-accumulation workflow (with a db, and the flag passed by the test)."""
    return Workflow(
        name=unique("Iterative Accumulation Workflow"),
        db=db,
        steps=[
            Step(
                name="Initial Value",
                executor=lambda step_input: StepOutput(content=step_input.input),
            ),
            Loop(
                name="Increment Loop",
                steps=[
                    Step(
                        name="Increment Step",
                        executor=increment_executor,
                    )
                ],
                end_condition=lambda step_outputs: int(step_outputs[-1].content) >= 50,
                max_iterations=10,
                **forward,
            ),
        ],
    )


def test_forward_iteration_output_carries_each_iteration_into_the_next(db: BaseDb) -> None:
    """The documented example: starting from 35, iteration 1 -> 45, iteration 2 -> 55 and the loop stops."""
    run_output = accumulation(db, forward_iteration_output=True).run("35")
    assert run_output.status == RunStatus.completed and run_output.content == "55"
    loop = run_output.step_results[-1]
    assert [o.content for o in loop.steps] == ["45", "55"]


def test_by_default_every_iteration_starts_from_the_loops_input(db: BaseDb) -> None:
    """Documented default False: each iteration gets what the loop got (35 -> 45, ten times)."""
    loop = Loop(name="l", steps=[Step(name="s", executor=increment_executor)])
    assert loop.forward_iteration_output is False
    run_output = accumulation(db).run("35")
    assert run_output.status == RunStatus.completed and run_output.content == "45"
    assert [o.content for o in run_output.step_results[-1].steps] == ["45"] * 10


def test_iteration_review_with_forwarding_refines_the_last_output(db: BaseDb) -> None:
    """The loop page's iteration-review example: reject runs another iteration on the previous output."""
    seen: list[Any] = []

    def refine(step_input: StepInput) -> StepOutput:
        seen.append(step_input.previous_step_content)
        return StepOutput(content=f"{step_input.previous_step_content} +refined")

    def build() -> Workflow:
        return Workflow(
            name=name,
            db=db,
            steps=[
                Loop(
                    name="refinement_loop",
                    steps=[Step(name="refine", executor=refine)],
                    max_iterations=3,
                    forward_iteration_output=True,
                    human_review=HumanReview(requires_iteration_review=True),
                ),
            ],
        )

    name = unique("iterative_refinement")
    prepare = Step(name="prepare", executor=lambda s: StepOutput(content=s.input))
    workflow = build()
    workflow.steps.insert(0, prepare)
    run_output = workflow.run("draft")
    assert run_output.is_paused
    run_output.steps_requiring_output_review[0].reject(feedback="shorter")
    run_output = workflow.continue_run(run_output)
    assert run_output.is_paused
    run_output.steps_requiring_output_review[0].confirm()
    run_output = workflow.continue_run(run_output)
    assert run_output.status == RunStatus.completed
    assert run_output.content == "draft +refined +refined"
    assert seen == ["draft", "draft +refined"]


# ---------------------------------------------------------------- 2. error pauses are ErrorRequirement


def test_error_pauses_are_error_requirements_and_load_back(db: BaseDb) -> None:
    from kern.workflow.types import ErrorRequirement, StepRequirement

    calls: list[int] = []

    def flaky(step_input: StepInput) -> StepOutput:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bad input")
        return StepOutput(content="ok")

    workflow = Workflow(name=unique("errors"), db=db, steps=[Step(name="fetch", executor=flaky, on_error="pause")])
    run_output = workflow.run("go")
    assert run_output.is_paused
    [req] = run_output.error_requirements
    assert isinstance(req, ErrorRequirement) and req is run_output.steps_with_errors[0]
    assert (req.error_message, req.error_type, req.step_name, req.decision) == (
        "bad input",
        "ValueError",
        "fetch",
        None,
    )
    stored = workflow.get_run(run_output.run_id)
    [again] = stored.error_requirements
    assert isinstance(again, ErrorRequirement) and again.step_id == req.step_id and again.error == req.error
    # a record written before error pauses were ErrorRequirements (no step_id, no error_message) loads as one
    old = {
        k: v
        for k, v in req.to_dict().items()
        if k not in ("step_id", "step_index", "error_message", "error_type", "decision", "step_input")
    }
    legacy = StepRequirement.from_dict(old)
    assert isinstance(legacy, ErrorRequirement) and legacy.step_id == req.step_id
    assert (legacy.error_message, legacy.error_type, legacy.message) == ("bad input", "ValueError", req.message)
    again.retry()
    done = workflow.continue_run(stored)
    assert done.status == RunStatus.completed and done.content == "ok"
    assert done.error_requirements[0].decision == "retry" and isinstance(done.error_requirements[0], ErrorRequirement)


# ---------------------------------------------------------------- 3. team event names, workflow_id


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@tool(requires_confirmation=True)
def deploy_to_production(app_name: str, version: str) -> str:
    """Deploy an application to production."""
    return f"Deployed {app_name} v{version}"


def test_team_events_use_the_team_classes_and_values(db: BaseDb, server: FakeOpenAI) -> None:
    from kern.run.team import RunPausedEvent as TeamRunPausedEvent
    from kern.run.team import TeamRunEvent

    server._script.clear()
    server.script(
        call("delegate_task_to_member", member_name="Deployer", task="ship"),
        call("deploy_to_production", app_name="api", version="2"),
        text("member done"),
        text("team done"),
    )
    model = OpenAIResponses(id="m", base_url=server.base_url, api_key="t")
    member = Agent(name="Deployer", model=model, tools=[deploy_to_production], db=db)
    team = Team(name=unique("Release Team"), members=[member], model=model, db=db)
    events = list(team.run("ship api 2", stream=True))
    assert events[0].event == TeamRunEvent.run_started.value == "TeamRunStarted"
    paused = [e for e in events if isinstance(e, TeamRunPausedEvent)]
    assert len(paused) == 1 and paused[0] is events[-1] and paused[0].event == "TeamRunPaused"
    assert isinstance(paused[0], agent_events.RunPausedEvent)  # code written for agent events still matches
    assert {e.event for e in events} <= {v.value for v in TeamRunEvent}
    for requirement in paused[0].active_requirements:
        requirement.confirm()
    resumed = list(team.continue_run(run_id=paused[0].run_id, requirements=paused[0].requirements, stream=True))
    assert resumed[0].event == "TeamRunContinued" and resumed[-1].event == "TeamRunCompleted"
    assert resumed[-1].content == "team done"
    # an agent's own events keep the agent values
    server.script(text("hi"))
    solo = list(Agent(name=unique("solo"), model=model, db=db).run("hello", stream=True))
    assert [e.event for e in (solo[0], solo[-1])] == ["RunStarted", "RunCompleted"]
    assert not any(isinstance(e, TeamRunPausedEvent) for e in solo)


def test_workflow_events_carry_the_workflow_id(db: BaseDb) -> None:
    def build(**kwargs: Any) -> Workflow:
        return Workflow(name=name, db=db, steps=[Step(name="s", executor=lambda s: StepOutput(content="x"))], **kwargs)

    name = unique("ids")
    workflow = build()
    assert workflow.id == build().id and workflow.id != Workflow(name=unique("other")).id  # stable per name
    events = list(workflow.run("go", stream=True, stream_events=True))
    assert events and {e.workflow_id for e in events} == {workflow.id}
    events = list(build(id="wf-7").run("go", stream=True, stream_events=True))
    assert {e.workflow_id for e in events} == {"wf-7"}


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_messages_as_agent_input(db: BaseDb, server: FakeOpenAI, api: str) -> None:
    """The documented `from agno.agent import Agent, Message` with `messages=[Message(...)]`, and a Message
    or a list of them as the input itself: the model receives them as the conversation."""
    from kern.agent import Message
    from kern.models.openai import OpenAIChat

    model_class = OpenAIChat if api == "chat" else OpenAIResponses
    model = model_class(id="m", base_url=server.base_url, api_key="t")
    agent = Agent(name=unique("talker"), model=model, db=db)
    first = Message(role="user", content=[{"type": "text", "text": "Hi! My name is John."}])
    second = Message(role="user", content=[{"type": "text", "text": "What are you capable of?"}])
    for given in ({"messages": [first, second]}, {"input": [first, second]}, {"input": second}):
        server._script.clear()
        server.requests.clear()
        server.script(text("Hello John"))
        out = agent.run(**given)
        assert out.content == "Hello John" and out.status == RunStatus.completed
        body = server.requests[-1]
        sent = body.get("messages") or body.get("input")
        texts = [m.get("content") for m in sent if m.get("role") == "user"]
        expected = (
            ["What are you capable of?"]
            if given.get("input") is second
            else [
                "Hi! My name is John.",
                "What are you capable of?",
            ]
        )
        assert [t if isinstance(t, str) else t[0]["text"] for t in texts] == expected
        assert agent.get_run(out.run_id).input  # stored as plain data (JSON), and read back
