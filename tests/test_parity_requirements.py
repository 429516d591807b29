"""Parity with the reference API's documentation (issue 10, items 8 and 9, and the streaming events):
requirements built with the documented constructor fields, executor requirements resolved dict-style,
and the loop-iteration and step-output events. Models are the real `openai` client against the local
scripted server; both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.run.base import RunStatus
from kern.run.requirement import RunRequirement
from kern.run.workflow import (
    LoopIterationCompletedEvent,
    LoopIterationStartedEvent,
    StepCompletedEvent,
    StepOutputEvent,
    WorkflowEvent,
)
from kern.tools import tool
from kern.workflow import Loop, Step, Workflow
from kern.workflow.types import HumanReview, StepInput, StepOutput, StepRequirement, UserInputField
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results, text
from tests.test_parity_stream import deploy, ran  # the same confirmation tool and its call log


@tool(external_execution=True)
def run_query(sql: str) -> str:
    """Run SQL somewhere the agent cannot reach."""
    raise AssertionError("never called: external")


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server._script.clear()
    server.requests.clear()
    ran.clear()


# ----- the documented constructor ------------------------------------------------------------------
def test_documented_constructor_fields_make_each_kind() -> None:
    gate = StepRequirement(step_id="s1", step_name="deploy", requires_confirmation=True, confirmation_message="Go?")
    assert (gate.kind, gate.step_id, gate.confirmation_message, gate.needs_confirmation) == (
        "confirmation",
        "s1",
        "Go?",
        True,
    )
    gate.confirm()
    assert gate.is_resolved and gate.confirmed is True

    form = StepRequirement(
        step_id="s2",
        step_name="details",
        requires_user_input=True,
        user_input_message="Fill in",
        user_input_schema=[UserInputField(name="n", field_type="int", required=True)],
    )
    assert form.requires_user_input and form.user_input_message == "Fill in"
    form.set_user_input(n="4")
    assert form.user_input == {"n": 4}

    route = StepRequirement(step_id="s3", requires_route_selection=True, available_choices=["a", "b"])
    assert route.needs_route_selection and route.step_name == ""  # step_name is optional, as documented
    route.select("b")
    assert route.selected_choices == ["b"]

    # a review also carries requires_confirmation in the reference API: that is not a clash
    deadline = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    review = StepRequirement(
        step_id="s4",
        step_name="draft",
        step_index=2,
        requires_output_review=True,
        requires_confirmation=True,
        output_review_message="Check it",
        is_post_execution=True,
        step_output=StepOutput(content="text"),
        timeout_at=deadline,
    )
    assert review.kind == "output_review" and review.is_post_execution and review.step_output.content == "text"
    assert (review.step_index, review.timeout_at, review.output_review_message) == (2, deadline, "Check it")
    assert not review.needs_confirmation or review.kind == "output_review"


def test_documented_constructor_refuses_what_it_cannot_mean() -> None:
    nothing = StepRequirement(step_id="s", step_name="x")  # no flag: it asks for nothing, as documented
    assert nothing.is_resolved and not nothing.needs_confirmation
    with pytest.raises(ValueError, match="asks for nothing"):
        nothing.confirm()
    with pytest.raises(ValueError, match="cannot also have requires_confirmation=True"):
        StepRequirement(step_name="x", requires_user_input=True, requires_confirmation=True)
    with pytest.raises(ValueError, match="is_post_execution=True applies to output and iteration reviews"):
        StepRequirement(step_name="x", requires_confirmation=True, is_post_execution=True)
    with pytest.raises(ValueError, match="timeout_at: 'soon' is not an ISO 8601"):
        StepRequirement(step_name="x", requires_confirmation=True, timeout_at="soon")


def test_documented_requirements_round_trip_and_load_from_documented_dicts() -> None:
    review = StepRequirement(
        step_id="s4", step_name="draft", step_index=3, requires_output_review=True, step_output="v1"
    )
    again = StepRequirement.from_dict(review.to_dict())
    assert (again.kind, again.step_id, again.step_index, again.step_output.content) == ("output_review", "s4", 3, "v1")

    documented = {
        "step_id": "s9",
        "step_name": "ship",
        "step_index": 1,
        "requires_confirmation": True,
        "confirmation_message": "Ship it?",
        "on_reject": "cancel",
        "timeout_at": "2031-01-01T00:00:00Z",
        "executor_session_id": "sess",
    }
    loaded = StepRequirement.from_dict(documented)
    assert (loaded.kind, loaded.message, loaded.on_reject.value, loaded.step_index) == (
        "confirmation",
        "Ship it?",
        "cancel",
        1,
    )
    assert loaded.timeout_at == datetime(2031, 1, 1, tzinfo=UTC) and loaded.executor_session_id == "sess"
    assert StepRequirement.from_dict(loaded.to_dict()).executor_session_id == "sess"


def test_executor_requirements_given_as_dicts_become_run_requirements() -> None:
    call_dict = {
        "id": "r1",
        "tool_execution": {"tool_call_id": "c1", "tool_name": "deploy", "requires_confirmation": True},
        "confirmation": False,
        "confirmation_note": "not today",
        "created_at": "2031-01-01T00:00:00+00:00",
    }
    req = StepRequirement(
        step_id="s", step_name="agent", requires_executor_input=True, executor_requirements=[call_dict]
    )
    executor_req = req.executor_requirements[0]
    assert isinstance(executor_req, RunRequirement)
    assert executor_req["confirmation"] is False and executor_req["confirmation_note"] == "not today"
    assert req.is_resolved and executor_req.created_at == datetime(2031, 1, 1, tzinfo=UTC).timestamp()
    with pytest.raises(KeyError, match="no key 'confirmed'; its keys are: id, tool_execution, confirmation"):
        executor_req["confirmed"]


# ----- dict-style resolution of a real agent pause ----------------------------------------------------
def _deploy_workflow(db: BaseDb, server: FakeOpenAI, *tools: object) -> Workflow:
    model = OpenAIChat(id="m", base_url=server.base_url, api_key="t")
    agent = Agent(name="Deployer", model=model, tools=list(tools), db=db)
    return Workflow(name=unique("dictstyle"), db=db, steps=[Step(name="deploy", agent=agent)])


def test_executor_requirement_confirmed_dict_style(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("deploy", app="api"), echo_tool_results)
    workflow = _deploy_workflow(db, server, deploy)
    run_output = workflow.run("ship api")
    assert run_output.is_paused
    for step_req in run_output.step_requirements or []:
        if step_req.requires_executor_input:
            for executor_req in step_req.executor_requirements or []:
                executor_req["confirmation"] = True  # the documented dict form
    done = workflow.continue_run(run_output)
    assert done.status == RunStatus.COMPLETED and ran == ["api"] and done.content == "Final: Deployed api"


def test_executor_requirement_rejected_and_answered_dict_style(db: BaseDb, server: FakeOpenAI) -> None:
    server.script(call("deploy", app="web"), echo_tool_results)
    workflow = _deploy_workflow(db, server, deploy)
    run_output = workflow.run("ship web")
    executor_req = run_output.step_requirements[-1].executor_requirements[0]
    executor_req["confirmation_note"] = "frozen this week"
    executor_req["confirmation"] = False
    assert executor_req.tool_execution["confirmed"] is False
    done = workflow.continue_run(run_output)
    assert done.status == RunStatus.COMPLETED and ran == []
    assert "frozen this week" in str(done.content)

    server.script(call("run_query", sql="select 1"), echo_tool_results)
    workflow = _deploy_workflow(db, server, run_query)
    run_output = workflow.run("count")
    executor_req = run_output.step_requirements[-1].executor_requirements[0]
    assert executor_req.pause_type == "external_execution"
    executor_req["external_execution_result"] = "1 row"
    done = workflow.continue_run(run_output)
    assert done.status == RunStatus.COMPLETED and done.content == "Final: 1 row"


# ----- loop-iteration and step-output events ----------------------------------------------------------
def _review_loop(db: BaseDb) -> Workflow:
    def draft(step_input: StepInput) -> StepOutput:
        feedback = (step_input.additional_data or {}).get("rejection_feedback")
        return StepOutput(content=f"draft ({feedback})" if feedback else "draft")

    return Workflow(
        name=unique("iterevents"),
        db=db,
        steps=[
            Loop(
                name="refine",
                steps=[Step(name="draft", executor=draft)],
                max_iterations=3,
                human_review=HumanReview(requires_iteration_review=True),
            )
        ],
    )


def _iterations(events: list[WorkflowEvent]) -> list[tuple[str, int]]:
    return [
        (type(e).__name__.removeprefix("LoopIteration").removesuffix("Event"), e.iteration)
        for e in events
        if isinstance(e, (LoopIterationStartedEvent, LoopIterationCompletedEvent))
    ]


def test_loop_iteration_events_stream_once_per_iteration(db: BaseDb) -> None:
    workflow = _review_loop(db)
    events = list(workflow.run("topic", stream=True, stream_events=True))
    assert _iterations(events) == [("Started", 1), ("Completed", 1)]
    completed = next(e for e in events if isinstance(e, LoopIterationCompletedEvent))
    assert completed.should_continue and completed.max_iterations == 3
    assert [o.content for o in completed.iteration_results] == ["draft"]
    # the step's output comes as its own event, just before the step completes
    names = [type(e).__name__ for e in events]
    assert names.index("StepOutputEvent") + 1 == names.index("StepCompletedEvent")
    output_event = next(e for e in events if isinstance(e, StepOutputEvent))
    assert output_event.content == "draft" and output_event.step_name == "draft" and output_event.success

    run = workflow.get_run(events[-1].run_id)
    run.steps_requiring_output_review[0].reject(feedback="shorter")
    continued = list(workflow.continue_run(run, stream=True, stream_events=True))
    # iteration 1 is replayed from the journal, not announced again; iteration 2 runs with the feedback
    assert _iterations(continued) == [("Started", 2), ("Completed", 2)]
    second = next(e for e in continued if isinstance(e, LoopIterationCompletedEvent))
    assert [o.content for o in second.iteration_results] == ["draft (shorter)"]

    run = workflow.get_run(run.run_id)
    run.steps_requiring_output_review[0].confirm()
    finished = list(workflow.continue_run(run, stream=True, stream_events=True))
    assert _iterations(finished) == [] and finished[-1].content == "draft (shorter)"
    round_tripped = WorkflowEvent.from_dict(second.to_dict())
    assert isinstance(round_tripped, LoopIterationCompletedEvent) and round_tripped.iteration == 2


async def test_loop_iteration_events_async_and_only_with_stream_events(db: BaseDb) -> None:
    workflow = _review_loop(db)
    events = [e async for e in workflow.arun("topic", stream=True, stream_events=True)]
    assert _iterations(events) == [("Started", 1), ("Completed", 1)]
    quiet = [e async for e in _review_loop(db).arun("topic", stream=True)]
    assert not [e for e in quiet if isinstance(e, (LoopIterationStartedEvent, StepOutputEvent, StepCompletedEvent))]


# ----- the loop page's iteration-review example, as published ----------------------------------------
def test_loop_iteration_review_example_as_documented(db: BaseDb, server: FakeOpenAI) -> None:
    """The documentation's `loop_iteration_review.py`, with `input()` answered from a list and the model
    served by the scripted server: reject with feedback, reject without, then accept."""
    from kern.agent import Agent
    from kern.models.openai import OpenAIResponses
    from kern.workflow import OnReject

    server.script(text("Fox ate."), text("A hungry fox shopped."), text("Hungry, the fox shopped."))
    refine_agent = Agent(
        name="Refiner",
        model=OpenAIResponses(id="gpt-5.4", base_url=server.base_url, api_key="t"),
        instructions=(
            "You refine and improve text. Each time you receive text, "
            "make it more concise and polished. If the reviewer provides feedback, "
            "incorporate it. Return only the improved text."
        ),
    )
    workflow = Workflow(
        name=unique("iterative_refinement"),
        db=db,
        steps=[
            Loop(
                name="refinement_loop",
                steps=[Step(name="refine", agent=refine_agent)],
                max_iterations=5,
                forward_iteration_output=True,
                human_review=HumanReview(
                    requires_iteration_review=True,
                    iteration_review_message="Review this iteration.",
                    on_reject=OnReject.retry,  # Reject = try another iteration
                ),
            ),
        ],
    )
    run_output = workflow.run("The quick brown fox jumped over the lazy dog and went to buy groceries.")
    answers = iter([("no", "mention hunger"), ("no", ""), ("yes", "")])
    shown: list[tuple[str | None, str]] = []
    while run_output.is_paused:
        for requirement in run_output.steps_requiring_output_review:
            shown.append((requirement.confirmation_message, requirement.step_output.content))
            choice, feedback = next(answers)
            if choice in ("yes", "y"):
                requirement.confirm()
            elif feedback:
                requirement.reject(feedback=feedback)
            else:
                requirement.reject()
        run_output = workflow.continue_run(run_output)
    assert shown == [
        ("Review this iteration.", "Fox ate."),
        ("Review this iteration.", "A hungry fox shopped."),
        ("Review this iteration.", "Hungry, the fox shopped."),
    ]
    assert run_output.status == RunStatus.COMPLETED and run_output.content == "Hungry, the fox shopped."
    # each iteration refines the previous one's output (forwarded), and the feedback reaches the model
    second, third = (json.dumps(r) for r in server.requests[1:3])
    assert "Fox ate." in second and "mention hunger" in second
    assert "A hungry fox shopped." in third and "mention hunger" not in third
