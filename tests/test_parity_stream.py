"""Parity with the reference API's documentation (issue 10, items 6 and 7): the run output and pause
events of agents and teams (`tools_awaiting_external_execution`, `agent_id` / `team_id`, the
user-feedback requirement) and workflow streaming (flat pause-event fields, `WorkflowRunEvent` and the
event registry, `get_run_output`, `acontinue_run(..., stream=True)`). The snippets follow the
documentation's own code, with `agno` read as `kern`. Models are the real `openai` client against the
local scripted server."""

from __future__ import annotations

import json

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat, OpenAIResponses
from kern.run.agent import RunPausedEvent
from kern.run.base import RunStatus
from kern.run.workflow import (
    WORKFLOW_RUN_EVENT_TYPE_REGISTRY,
    ConditionExecutionStartedEvent,
    ConditionStartedEvent,
    RouterPausedEvent,
    StepExecutorContinuedEvent,
    StepExecutorPausedEvent,
    StepOutputReviewEvent,
    StepPausedEvent,
    WorkflowCompletedEvent,
    WorkflowEvent,
    WorkflowPausedEvent,
    WorkflowRunEvent,
    workflow_run_output_event_from_dict,
)
from kern.team import Team
from kern.tools import tool
from kern.tools.user_feedback import UserFeedbackTools
from kern.workflow import Condition, Router, Step, Workflow
from kern.workflow.types import StepInput, StepOutput, UserInputField
from tests.conftest import unique
from tests.openai_stub import (
    FakeOpenAI,
    call,
    calls,
    echo_tool_results,
    text,
    tool_results,
)

ran: list[str] = []


@tool(requires_confirmation=True)
def deploy(app: str) -> str:
    """Deploy an application."""
    ran.append(app)
    return f"Deployed {app}"


@tool(external_execution=True)
def execute_shell_command(command: str) -> str:
    """Execute a shell command (outside the agent)."""
    raise AssertionError("never called: external")


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()
    ran.clear()


WHERE, WHAT = "Where do you want to go?", "What do you like doing?"
QUESTIONS = [
    {
        "question": "Where do you want to go?",
        "header": "Destination",
        "options": [{"label": "Beach", "description": "Sun and sea"}, {"label": "Mountains"}],
        "multi_select": False,
    },
    {
        "question": "What do you like doing?",
        "header": "Activities",
        "options": [{"label": "Hiking"}, {"label": "Museums"}, {"label": "Food"}],
        "multi_select": True,
    },
]


# ----- item 6: agents and teams ----------------------------------------------------------------------
def test_tools_awaiting_external_execution_on_output_and_paused_event(
    db: BaseDb, server: FakeOpenAI, model_factory
) -> None:
    server.script(calls(("execute_shell_command", {"command": "ls"}), ("deploy", {"app": "web"})), echo_tool_results)
    agent = Agent(name=unique("ops"), model=model_factory(), tools=[execute_shell_command, deploy], db=db)
    run_response = agent.run("What files do I have?")
    assert [t.tool_name for t in run_response.tools_awaiting_external_execution] == ["execute_shell_command"]
    assert [t.tool_name for t in run_response.tools_requiring_confirmation] == ["deploy"]
    assert run_response.tools_requiring_user_input == []
    assert [r.needs_external_execution for r in run_response.active_requirements] == [True, False]
    # The documentation's loop: set `tool.result` on each awaiting tool, then continue with the output.
    while run_response.is_paused and len(run_response.tools_awaiting_external_execution) > 0:
        for t in run_response.tools_awaiting_external_execution:
            t.result = f"files for {t.tool_args['command']}: a.txt"
        assert run_response.tools_awaiting_external_execution == []  # a result resolves it
        for t in run_response.tools_requiring_confirmation:
            t.confirmed = True
        run_response = agent.continue_run(run_response=run_response)
    assert run_response.status == RunStatus.COMPLETED
    assert run_response.content == "Final: files for ls: a.txt | Deployed web"
    assert run_response.tools_awaiting_external_execution == [] and ran == ["web"]

    # Streaming: the paused event carries the same lists.
    server.script(call("execute_shell_command", command="pwd"), echo_tool_results)
    paused = [e for e in agent.run("Where am I?", stream=True) if isinstance(e, RunPausedEvent)]
    assert [t.tool_args for t in paused[0].tools_awaiting_external_execution] == [{"command": "pwd"}]
    paused[0].tools_awaiting_external_execution[0].result = "/home"
    done = agent.continue_run(run_id=paused[0].run_id, requirements=paused[0].requirements)
    assert done.content == "Final: /home"


async def test_external_execution_async_stream_as_documented(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("execute_shell_command", command="ls"), text("Here are your files."))
    agent = Agent(name=unique("ops"), model=model_factory(), tools=[execute_shell_command], db=db)
    printed: list[str] = []
    async for run_event in agent.arun("What files are in my directory?", stream=True):
        if run_event.is_paused:
            assert [t.tool_name for t in run_event.tools_awaiting_external_execution] == ["execute_shell_command"]
            for requirement in run_event.active_requirements:
                if requirement.needs_external_execution:
                    requirement.set_external_execution_result("a.txt b.txt")
            # continued while the first stream is still open, as the documentation does
            async for resp in agent.acontinue_run(
                run_id=run_event.run_id, requirements=run_event.requirements, stream=True
            ):
                if resp.content:
                    printed.append(resp.content)
    assert "".join(printed).endswith("Here are your files.")
    assert tool_results(server.requests[-1]) == ["a.txt b.txt"]


def test_agent_id_and_team_id_on_events_and_outputs(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("deploy", app="api"), text("deployed"))
    agent = Agent(name=unique("deployer"), model=model_factory(), tools=[deploy], db=db)
    assert agent.id == Agent(name=agent.name).id  # stable: another process builds the same id
    events = list(agent.run("ship api", stream=True))
    assert {e.agent_id for e in events} == {agent.id} and {e.team_id for e in events} == {None}
    paused = events[-1]
    paused.active_requirements[0].confirm()
    continued = list(agent.continue_run(run_id=paused.run_id, requirements=paused.requirements, stream=True))
    assert {e.agent_id for e in continued} == {agent.id}
    assert agent.get_run(paused.run_id).agent_id == agent.id

    server.script(call("delegate_task_to_member", member_name="Deployer", task="ship web"), text("m"), text("t"))
    member = Agent(name="Deployer", id="deployer-7", model=model_factory(), db=db)
    team = Team(name=unique("devops"), id="team-42", members=[member], model=model_factory(), db=db)
    events = list(team.run("ship web", stream=True))
    assert {(e.team_id, e.team_name) for e in events} == {("team-42", team.name)}
    assert {e.agent_id for e in events} == {None}
    assert team.get_run(events[0].run_id).team_id == "team-42"


def test_user_feedback_agent(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("ask_user", questions=QUESTIONS), echo_tool_results)
    name = unique("travel")
    agent = Agent(
        name=name,
        model=model_factory(),
        tools=[UserFeedbackTools()],
        instructions=["You are a helpful travel assistant."],
        db=db,
    )
    run_response = agent.run("Help me plan a vacation")
    sent = json.dumps(server.requests[0]["tools"])
    assert "ask_user" in sent and "selected_options" not in sent
    prompt = (server.requests[0].get("messages") or server.requests[0].get("input"))[0]["content"]
    assert "call ask_user" in prompt  # the toolkit's instructions reach the system prompt
    requirement = run_response.active_requirements[0]
    assert requirement.needs_user_feedback and not requirement.needs_user_input
    with pytest.raises(ValueError, match="confirm"):
        requirement.confirm()
    with pytest.raises(ValueError, match="choose one option"):
        requirement.provide_user_feedback(
            {"Where do you want to go?": ["Beach", "Mountains"], "What do you like doing?": "Food"}
        )
    with pytest.raises(ValueError, match="'Skiing' not among"):
        requirement.provide_user_feedback({"Where do you want to go?": "Beach", "What do you like doing?": ["Skiing"]})
    assert not requirement.is_resolved
    # The documentation's loop, from a fresh Agent object reading the stored run (another process).
    fresh = Agent(name=name, model=model_factory(), tools=[UserFeedbackTools()], db=db)
    run_response = fresh.get_run(run_response.run_id)
    while run_response.is_paused:
        for requirement in run_response.active_requirements:
            if requirement.needs_user_feedback:
                selections = {}
                for question in requirement.user_feedback_schema:
                    assert question.header in ("Destination", "Activities") and len(question.options) >= 2
                    labels = [o.label for o in question.options]
                    selections[question.question] = labels[:2] if question.multi_select else [labels[0]]
                requirement.provide_user_feedback(selections)
        run_response = fresh.continue_run(run_id=run_response.run_id, requirements=run_response.requirements)
    answer = json.loads(run_response.content.removeprefix("Final: "))
    assert answer == {"Where do you want to go?": ["Beach"], "What do you like doing?": ["Hiking", "Museums"]}
    stored = fresh.get_run(run_response.run_id).requirements[0]
    assert [q.selected_options for q in stored.user_feedback_schema] == [["Beach"], ["Hiking", "Museums"]]


def test_user_feedback_bad_questions_go_back_to_the_model(db: BaseDb, server: FakeOpenAI) -> None:
    model = OpenAIChat(id="m", base_url=server.base_url, api_key="t")
    server.script(call("ask_user", questions=[{"question": "Where?", "header": "X", "options": []}]), echo_tool_results)
    done = Agent(name=unique("travel"), model=model, tools=[UserFeedbackTools()], db=db).run("plan")
    assert done.status == RunStatus.COMPLETED and "Invalid arguments for ask_user" in done.content


async def test_user_feedback_team_member_async(db: BaseDb, server: FakeOpenAI) -> None:
    model = OpenAIResponses(id="m", base_url=server.base_url, api_key="t")
    server.script(
        call("delegate_task_to_member", member_name="Planner", task="ask"),
        call("ask_user", questions=QUESTIONS[:1]),
        echo_tool_results,  # the member, with the answer
        echo_tool_results,  # the leader
    )
    member = Agent(name="Planner", model=model, tools=[UserFeedbackTools()], db=db)
    team = Team(name=unique("trip"), members=[member], model=model, db=db)
    run_response = await team.arun("Plan a trip")
    assert run_response.is_paused
    requirement = run_response.active_requirements[0]
    assert requirement.needs_user_feedback and requirement.member_agent_name == "Planner"
    requirement.provide_user_feedback({"Where do you want to go?": "Mountains"})
    done = await team.acontinue_run(run_response)
    assert done.content == 'Final: Final: {"Where do you want to go?": ["Mountains"]}'


def test_user_feedback_in_a_workflow_step(db: BaseDb, server: FakeOpenAI) -> None:
    model = OpenAIResponses(id="m", base_url=server.base_url, api_key="t")
    server.script(call("ask_user", questions=QUESTIONS[:1]), echo_tool_results)
    agent = Agent(name="Planner", model=model, tools=[UserFeedbackTools()], db=db)
    workflow = Workflow(name=unique("trip"), db=db, steps=[Step(name="plan", agent=agent)])
    run_output = workflow.run("Plan a trip")
    assert run_output.is_paused and run_output.pause_kind == "executor"
    executor_req = run_output.step_requirements[-1].executor_requirements[0]
    assert executor_req.needs_user_feedback
    executor_req.provide_user_feedback({"Where do you want to go?": ["Beach"]})
    done = workflow.continue_run(run_output)
    assert done.status == RunStatus.COMPLETED and done.content == 'Final: {"Where do you want to go?": ["Beach"]}'


# ----- item 7: workflow streaming --------------------------------------------------------------------
def test_pause_events_carry_the_documented_flat_fields(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("flat"),
        db=db,
        steps=[
            Step(name="gate", executor=lambda s: "G", requires_confirmation=True, confirmation_message="Go?"),
            Step(
                name="params",
                executor=lambda s: f"n={s.additional_data['user_input']['n']}",
                requires_user_input=True,
                user_input_message="How many?",
                user_input_schema=[UserInputField(name="n", field_type="int")],
            ),
            Router(
                name="route",
                choices=[Step(name="fast", executor=lambda s: "F"), Step(name="slow", executor=lambda s: "S")],
                requires_user_input=True,
                user_input_message="Pick one",
            ),
            Step(name="draft", executor=lambda s: "D", requires_output_review=True, output_review_message="Ok?"),
        ],
    )
    seen: list[WorkflowEvent] = []
    for event in workflow.run("x", stream=True):
        seen.append(event)
    pause, paused = seen[-2], seen[-1]
    assert isinstance(pause, StepPausedEvent) and pause.event == WorkflowRunEvent.step_paused.value
    assert (pause.requires_confirmation, pause.confirmation_message, pause.requires_user_input) == (True, "Go?", False)
    assert (pause.step_name, pause.step_index, pause.step_id) == ("gate", 0, pause.requirement.step_id)
    assert pause.step_id is not None
    assert isinstance(paused, WorkflowPausedEvent) and paused.event == "WorkflowPaused"
    assert (paused.status, paused.paused_step_name, paused.paused_step_index, paused.pause_kind) == (
        "PAUSED",
        "gate",
        0,
        "step",
    )
    assert paused.step_requirements[-1].requirement_id == pause.requirement.requirement_id

    run_output = workflow.get_run_output(paused.run_id, session_id=paused.session_id)
    run_output.steps_requiring_confirmation[0].confirm()
    seen = list(workflow.continue_run(run_output, stream=True))
    pause = seen[-2]
    assert pause.requires_user_input and not pause.requires_confirmation and pause.user_input_message == "How many?"
    assert pause.user_input_schema[0]["name"] == "n" and pause.user_input_schema[0]["field_type"] == "int"
    assert [r.step_name for r in seen[-1].step_requirements] == ["gate", "params"]
    assert [o.content for o in seen[-1].step_results] == ["G"]

    run_output = workflow.get_last_run_output()
    run_output.steps_requiring_user_input[0].set_user_input(n="3")
    seen = list(workflow.continue_run(run_output, stream=True))
    pause = seen[-2]
    assert isinstance(pause, RouterPausedEvent) and pause.event == "RouterPaused"
    assert (pause.available_choices, pause.user_input_message, pause.allow_multiple_selections) == (
        ["fast", "slow"],
        "Pick one",
        False,
    )

    # The paused event alone is enough to continue: its requirements are the run's.
    paused = seen[-1]
    paused.step_requirements[-1].select("slow")
    seen = list(workflow.continue_run(run_id=paused.run_id, step_requirements=paused.step_requirements, stream=True))
    pause = seen[-2]
    assert isinstance(pause, StepOutputReviewEvent) and pause.event == "StepOutputReview"
    assert (pause.requires_output_review, pause.output_review_message, pause.step_index) == (True, "Ok?", 3)


async def test_executor_pause_events_name_the_executor(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("deploy", app="web"), echo_tool_results)
    agent = Agent(
        name="DeployAgent", model=OpenAIResponses(id="m", base_url=server.base_url, api_key="t"), tools=[deploy], db=db
    )
    workflow = Workflow(name=unique("exec"), db=db, steps=[Step(name="ship", agent=agent)])
    events = [e async for e in workflow.arun("ship it", stream=True)]
    paused = next(e for e in events if isinstance(e, StepExecutorPausedEvent))
    assert (paused.event, paused.executor_name, paused.executor_type, paused.executor_id) == (
        "StepExecutorPaused",
        "DeployAgent",
        "agent",
        agent.id,
    )
    assert agent.get_run(paused.executor_run_id).is_paused
    assert paused.executor_requirements[0].tool_execution.tool_name == "deploy"
    assert events[-1].pause_kind == "executor"

    run_output = await workflow.aget_run_output(paused.run_id, session_id=paused.session_id)
    for step_req in run_output.step_requirements:
        for executor_req in step_req.executor_requirements or []:
            executor_req.confirm()
    # `acontinue_run(..., stream=True)` is iterated directly (the documentation's form), or awaited first.
    events = [e async for e in workflow.acontinue_run(run_output, stream=True)]
    resumed = events[0]
    assert isinstance(resumed, StepExecutorContinuedEvent) and resumed.event == "StepExecutorContinued"
    assert (resumed.executor_name, resumed.executor_run_id) == ("DeployAgent", paused.executor_run_id)
    assert isinstance(events[-1], WorkflowCompletedEvent) and events[-1].content == "Final: Deployed web"
    assert ran == ["web"]


async def test_acontinue_run_stream_awaited_or_not(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("awaited"),
        db=db,
        steps=[
            Step(name="first", executor=lambda s: "1", requires_confirmation=True),
            Step(name="second", executor=lambda s: "2", requires_confirmation=True),
        ],
    )
    events = [e async for e in workflow.arun("x", stream=True, stream_events=True)]
    run_output = await workflow.aget_run_output(run_id=events[-1].run_id, session_id=events[-1].session_id)
    run_output.steps_requiring_confirmation[0].confirm()
    stream_iter = await workflow.acontinue_run(run_output, stream=True, stream_events=True)
    events = [e async for e in stream_iter]
    assert [e.step_name for e in events if isinstance(e, StepPausedEvent)] == ["second"]
    run_output = await workflow.aget_last_run_output()
    run_output.steps_requiring_confirmation[0].confirm()
    events = [e async for e in workflow.acontinue_run(run_output, stream=True)]
    assert isinstance(events[-1], WorkflowCompletedEvent) and events[-1].content == "2"


def test_get_run_output(db: BaseDb) -> None:
    workflow = Workflow(name=unique("lookup"), db=db, steps=[Step(name="a", executor=lambda s: "A")])
    done = workflow.run("x")
    assert workflow.get_run_output(done.run_id).content == "A"
    assert workflow.get_run_output(done.run_id, session_id=done.session_id).run_id == done.run_id
    assert workflow.get_run_output(done.run_id, session_id="another-session") is None
    assert workflow.get_run_output("no-such-run") is None
    assert workflow.get_last_run_output().run_id == done.run_id
    assert workflow.get_last_run_output(session_id="empty-session") is None


def _branch(step_input: StepInput) -> StepOutput:
    return StepOutput(content=f"B({step_input.previous_step_content})")


def test_event_enum_registry_and_round_trip(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("registry"),
        db=db,
        steps=[
            Step(name="a", executor=lambda s: {"n": 1}),
            Condition(name="c", evaluator=True, steps=[Step(name="b", executor=_branch)]),
            Router(
                name="r",
                choices=[Step(name="x", executor=lambda s: "X"), Step(name="y", executor=lambda s: "Y")],
                requires_user_input=True,
            ),
        ],
    )
    events = list(workflow.run("go", stream=True, stream_events=True))
    run_output = workflow.get_last_run_output()
    run_output.steps_requiring_route[0].select("y")
    events += list(workflow.continue_run(run_output, stream=True, stream_events=True))
    assert {m.value for m in WorkflowRunEvent} == set(WORKFLOW_RUN_EVENT_TYPE_REGISTRY)
    condition = next(e for e in events if isinstance(e, ConditionStartedEvent))
    assert ConditionExecutionStartedEvent is ConditionStartedEvent
    assert condition.event == WorkflowRunEvent.condition_execution_started.value == "ConditionExecutionStarted"
    assert {e.event for e in events} >= {"WorkflowStarted", "StepStarted", "RouterPaused", "StepContinued"}
    for event in events:
        assert WORKFLOW_RUN_EVENT_TYPE_REGISTRY[event.event] is type(event)
        data = json.loads(event.to_json())  # through JSON, as across a process
        again = workflow_run_output_event_from_dict(data)
        assert type(again) is type(event) and again.to_dict() == event.to_dict()
        assert type(WorkflowEvent.from_dict(data)) is type(event)
    router = next(e for e in events if isinstance(e, RouterPausedEvent))
    started = next(e for e in events if e.event == "RouterExecutionStarted")
    assert started.step_id == router.step_id == router.requirement.step_id  # one id per step, across events
    again = workflow_run_output_event_from_dict(json.loads(router.to_json()))
    assert again.requirement.available_choices == ["x", "y"] and again.available_choices == ["x", "y"]
    assert again.requirement.requirement_id == router.requirement.requirement_id
    with pytest.raises(ValueError, match="Unknown workflow event"):
        workflow_run_output_event_from_dict({"event": "NoSuchEvent"})


def test_team_external_execution_stream_as_documented(db: BaseDb, server: FakeOpenAI) -> None:
    model = OpenAIChat(id="m", base_url=server.base_url, api_key="t")
    server.script(
        call("delegate_task_to_member", member_name="Ops Agent", task="list files"),
        call("execute_shell_command", command="ls"),
        echo_tool_results,  # the member
        echo_tool_results,  # the leader
    )
    ops_agent = Agent(name="Ops Agent", model=model, tools=[execute_shell_command], db=db)
    team = Team(name=unique("SRE Team"), members=[ops_agent], model=model, db=db)
    response = None
    for run_event in team.run("List the files in the current directory", stream=True):
        if isinstance(run_event, RunPausedEvent):
            assert run_event.team_id == team.id
            assert [t.tool_name for t in run_event.tools_awaiting_external_execution] == ["execute_shell_command"]
            for req in run_event.active_requirements:
                if req.needs_external_execution:
                    req.set_external_execution_result("a.txt")
            response = team.continue_run(
                run_id=run_event.run_id,
                session_id=run_event.session_id,
                requirements=run_event.requirements,
                stream=True,
            )
    events = list(response)
    assert events[-1].content == "Final: Final: a.txt" and {e.team_id for e in events} == {team.id}
