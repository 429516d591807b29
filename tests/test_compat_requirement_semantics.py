"""The reference API's reading of requirements: a review is also a confirmation (`requires_confirmation`)
but is listed as a review; a tool call's requirement is resolved once everything it asks for is given,
and a method for something the call does not ask for is refused. Stored and read back on SQLite and
PostgreSQL through a workflow run."""

from __future__ import annotations

import pytest

from kern import RequirementNotResolvedError
from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.models.response import ToolExecution
from kern.run.requirement import RunRequirement
from kern.tools import tool
from kern.workflow import Loop, OnReject, Step, Workflow
from kern.workflow.types import StepInput, StepOutput
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results


def answer(step_input: StepInput) -> str:
    return "draft"


def test_a_review_is_a_confirmation_listed_as_a_review(db: BaseDb) -> None:
    step = Step(name="write", executor=answer, requires_output_review=True, on_reject=OnReject.retry)
    workflow = Workflow(name=unique("review"), db=db, steps=[step])
    run = workflow.run("x")
    req = run.step_requirements[-1]
    assert req.kind == "output_review" and req.requires_output_review and req.requires_confirmation
    assert not req.needs_confirmation and req.needs_output_review
    assert run.steps_requiring_confirmation == [] and run.steps_requiring_output_review == [req]
    stored = workflow.get_run(run.run_id).step_requirements[-1]
    assert stored.to_dict()["requires_confirmation"] is True and stored.kind == "output_review"
    req.confirm()
    assert workflow.continue_run(run).content == "draft"


def test_a_plain_confirmation_is_not_a_review(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("confirm"), db=db, steps=[Step(name="go", executor=answer, requires_confirmation=True)]
    )
    req = workflow.run("x").step_requirements[-1]
    assert req.requires_confirmation and req.needs_confirmation and not req.requires_output_review


def test_an_iteration_review_is_a_confirmation_too() -> None:
    loop = Loop(name="l", steps=[Step(name="s", executor=answer)], requires_iteration_review=True)
    req = loop.create_output_review_requirement(0, None, StepOutput(content="it"))
    assert req.requires_confirmation and not req.needs_confirmation


def _req(**flags: bool) -> RunRequirement:
    return RunRequirement(tool_execution=ToolExecution(tool_name="act", tool_args={}, **flags))


def test_a_call_that_asks_for_nothing_is_resolved_and_cannot_be_rejected() -> None:
    req = _req()
    assert req.is_resolved and req.is_resolved() is True
    with pytest.raises(ValueError, match="does not require confirmation"):
        req.reject(note="no")


def test_every_thing_asked_for_must_be_given() -> None:
    req = _req(requires_confirmation=True, external_execution_required=True)
    req.confirm()
    assert not req.is_resolved
    req.set_external_execution_result("done")
    assert req.is_resolved
    rejected = _req(requires_confirmation=True, external_execution_required=True)
    rejected.reject(note="no")
    assert rejected.is_resolved  # a rejection decides the call, whatever else it asked


def test_methods_the_call_does_not_ask_for_say_so() -> None:
    with pytest.raises(ValueError, match="does not require user input; it needs confirm"):
        _req(requires_confirmation=True).provide_user_input({"name": "Ann"})
    with pytest.raises(ValueError, match="does not require external execution"):
        _req(requires_confirmation=True).set_external_execution_result("x")
    with pytest.raises(ValueError, match="does not require confirmation; it needs provide_user_input"):
        _req(requires_user_input=True).confirm()


@tool(requires_user_input=True, user_input_fields=["to"])
def send_email(subject: str, to: str) -> str:
    """Send an email.

    Args:
        subject: The subject.
        to: Who gets it.
    """
    return f"sent {subject!r} to {to}"


def test_fields_filled_in_place_answer_the_call(db: BaseDb, server: FakeOpenAI) -> None:
    """The reference's user_input_required example sets `field.value` and continues with the requirements."""
    server.script(call("send_email", subject="Hello"), echo_tool_results)
    model = OpenAIChat(id="gpt-test", base_url=server.base_url, api_key="t")
    agent = Agent(name=unique("mailer"), model=model, tools=[send_email], db=db)
    run = agent.run("mail")
    [req] = run.active_requirements
    with pytest.raises(RequirementNotResolvedError):  # nothing filled in yet
        agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    for field in req.user_input_schema or []:
        field.value = "  "
    with pytest.raises(ValueError, match="to: required"):  # checked as provide_user_input checks it
        agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    for field in req.user_input_schema or []:
        field.value = "ann@example.com"
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.content == "Final: sent 'Hello' to ann@example.com"
