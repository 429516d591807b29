"""Parity with the reference documentation's workflow HITL pages (issue 10, items 3, 4, 5 and 9).

The code in these tests is written the way the reference pages write it (output review, router and loop
HITL, error handling, pause anatomy), with `agno` read as `kern` and stand-ins for the agents. Every run
goes through the public API, on SQLite and PostgreSQL, and is continued from what the database holds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIResponses
from kern.run.requirement import StepRequirement
from kern.run.workflow import StepErrorEvent, StepOutputReviewEvent, StepPausedEvent, WorkflowPausedEvent
from kern.tools import tool
from kern.workflow import Loop, OnError, OnReject, Router, RunStatus, Step, StepInput, StepOutput, Workflow
from kern.workflow.types import HumanReview, UserInputField
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, text, tool_results


class Drafts:
    """A draft agent stand-in: `arun(message)` answers with a numbered draft and keeps every message."""

    def __init__(self, name: str = "Drafter") -> None:
        self.name = name
        self.messages: list[str] = []

    async def arun(self, message: str, **_: Any) -> Any:
        self.messages.append(message)
        return type("Out", (), {"content": f"draft {len(self.messages)}", "is_paused": False})()


def fresh(wf: Workflow) -> Workflow:
    """The same definition as a new object: every continue below reads the run from the database."""
    return Workflow(name=wf.name, db=wf.db, steps=wf.steps)


# ----- item 3: output review ------------------------------------------------------------------------------
def test_output_review_step_output_is_a_step_output(db: BaseDb) -> None:
    """The Reject-with-Retry example: `req.step_output.content`, `retry_count`, feedback reaching the agent."""
    draft_agent, send_agent = Drafts(), Drafts("Sender")
    workflow = Workflow(
        name=unique("email_review_workflow"),
        db=db,
        steps=[
            Step(
                name="draft_email",
                agent=draft_agent,
                human_review=HumanReview(
                    requires_output_review=True,
                    output_review_message="Review the email draft",
                    on_reject=OnReject.retry,
                    max_retries=3,
                ),
            ),
            Step(name="send_email", agent=send_agent),
        ],
    )
    run_output = workflow.run("Draft an email about the Friday standup")
    seen: list[tuple[int, Any]] = []
    while run_output.is_paused:
        for req in run_output.steps_requiring_output_review:
            assert isinstance(req.step_output, StepOutput)
            assert req.is_post_execution and req.step_type == "Step" and req.step_output.step_name == "draft_email"
            assert req.output_review_message == "Review the email draft" and req.needs_output_review
            seen.append((req.retry_count, req.step_output.content))
            if req.retry_count == 0:
                req.reject(feedback="Mention the agenda")
            else:
                req.confirm()
        run_output = fresh(workflow).continue_run(
            run_id=run_output.run_id, step_requirements=run_output.step_requirements
        )
        if run_output.is_paused:
            run_output = workflow.get_run(run_output.run_id)  # as stored: step_output comes back a StepOutput
    assert seen == [(0, "draft 1"), (1, "draft 2")]
    assert "Feedback from reviewer: Mention the agenda" in draft_agent.messages[1]
    assert "Feedback from reviewer" not in draft_agent.messages[0]
    assert run_output.status == RunStatus.COMPLETED and send_agent.messages and "draft 2" in send_agent.messages[0]
    history = workflow.get_run(run_output.run_id).step_requirements
    assert [r.step_output.content for r in history] == ["draft 1", "draft 2"]


def test_output_review_async_and_streaming(db: BaseDb) -> None:
    """`arun`/`acontinue_run`, and the streaming pattern (the paused run read from the session)."""

    def draft(step_input: StepInput) -> StepOutput:
        return StepOutput(content={"subject": "Standup", "body": "Friday 10:00"})

    workflow = Workflow(
        name=unique("stream_review"),
        db=db,
        steps=[Step(name="draft", executor=draft, requires_output_review=True), Step(name="send", executor=str)],
    )

    async def run_async() -> Any:
        out = await workflow.arun("x")
        req = out.steps_requiring_output_review[0]
        assert req.step_output.content == {"subject": "Standup", "body": "Friday 10:00"}
        req.edit({"subject": "Standup", "body": "Friday 11:00"})
        return await workflow.acontinue_run(out)

    done = asyncio.run(run_async())
    assert done.status == RunStatus.COMPLETED and "11:00" in str(done.content)

    events = list(workflow.run("x", stream=True, stream_events=True))
    review = next(e for e in events if isinstance(e, StepOutputReviewEvent))
    assert review.requirement.step_output.content["body"] == "Friday 10:00" and isinstance(
        events[-1], WorkflowPausedEvent
    )
    run_output = workflow.get_session().runs[-1]
    assert (
        run_output.is_paused and run_output.steps_requiring_output_review[0].step_output.content["subject"] == "Standup"
    )
    for req in run_output.steps_requiring_output_review:
        req.confirm()
    list(workflow.continue_run(run_output, stream=True, stream_events=True))
    assert workflow.get_session().runs[-1].status == RunStatus.COMPLETED


def test_router_output_review_reject_goes_back_to_route_selection(db: BaseDb) -> None:
    """The Router output-review example: the review carries `available_choices`; a rejection with
    on_reject=retry pauses for route selection, and the chosen route runs and is reviewed again."""
    ran: list[str] = []

    def analysis(kind: str) -> Any:
        def run(step_input: StepInput) -> StepOutput:
            ran.append(kind)
            feedback = step_input.additional_data.get("rejection_feedback")
            return StepOutput(content=f"{kind} analysis" + (f" ({feedback})" if feedback else ""))

        return run

    quick_analysis, deep_analysis, custom_analysis = analysis("quick"), analysis("deep"), analysis("custom")

    def generate_report(step_input: StepInput) -> StepOutput:
        return StepOutput(content=f"Report: {step_input.previous_step_content}")

    workflow = Workflow(
        name=unique("router_review_workflow"),
        db=db,
        steps=[
            Router(
                name="analysis_router",
                selector=lambda si: [Step(name="quick", executor=quick_analysis)],
                choices=[
                    Step(name="quick", description="Fast analysis (2 min)", executor=quick_analysis),
                    Step(name="deep", description="Thorough analysis (10 min)", executor=deep_analysis),
                    Step(name="custom", description="Custom analysis", executor=custom_analysis),
                ],
                human_review=HumanReview(
                    requires_output_review=True,
                    output_review_message="Review the analysis. Approve, or pick a different type?",
                    on_reject=OnReject.retry,
                    max_retries=5,
                ),
            ),
            Step(name="report", executor=generate_report),
        ],
    )
    run_output = workflow.run("Analyze Q4 sales data")
    reviews: list[tuple[str, list[str]]] = []
    routes: list[list[str]] = []
    while run_output.is_paused:
        for req in run_output.steps_requiring_output_review:
            assert req.step_type == "Router" and req.is_post_execution
            reviews.append((req.step_output.content, list(req.available_choices)))
            req.confirm() if len(reviews) > 1 else req.reject(feedback="go deeper")
        for req in run_output.steps_requiring_route:
            routes.append(list(req.available_choices))
            req.select("deep")
        run_output = fresh(workflow).continue_run(run_output)
    choices = ["quick", "deep", "custom"]
    assert reviews == [("quick analysis", choices), ("deep analysis (go deeper)", choices)]
    assert routes == [choices] and ran == ["quick", "deep"]
    assert run_output.content == "Report: deep analysis (go deeper)"
    kinds = [(r.kind, r.step_name) for r in run_output.step_requirements]
    assert kinds == [
        ("output_review", "analysis_router"),
        ("route_selection", "analysis_router"),
        ("output_review", "analysis_router"),
    ]


def test_router_reroute_rejected_skips_and_max_retries_cancels(db: BaseDb) -> None:
    def router(**review: Any) -> Router:
        return Router(
            name="r",
            selector=lambda si: "a",
            choices=[Step(name="a", executor=lambda si: "A"), Step(name="b", executor=lambda si: "B")],
            human_review=HumanReview(requires_output_review=True, on_reject=OnReject.retry, **review),
        )

    # nobody picks a route before the deadline: on_timeout=reject skips the router, approve asks the selector
    for on_timeout, content in (("reject", "S"), ("approve", "A")):
        wf = Workflow(
            name=unique("reroute"),
            db=db,
            steps=[Step(name="s", executor=lambda si: "S"), router(timeout=60, on_timeout=on_timeout)],
        )
        out = wf.run("x")
        out.steps_requiring_output_review[0].reject()
        out = wf.continue_run(out)
        deadline = out.steps_requiring_route[0].deadline
        assert deadline is not None
        (out,) = wf.expire_due(now=deadline + 1)
        if on_timeout == "approve":
            assert out.steps_requiring_output_review[0].step_output.content == "A"
            out.steps_requiring_output_review[0].confirm()
            out = wf.continue_run(out)
        assert out.status == RunStatus.COMPLETED and out.content == content
        assert wf.get_run(out.run_id).step_requirements[1].timed_out

    wf = Workflow(name=unique("reroute-max"), db=db, steps=[router(max_retries=1)])
    out = wf.run("x")
    out.steps_requiring_output_review[0].reject()
    out = wf.continue_run(out)
    out.steps_requiring_route[0].select("b")
    out = wf.continue_run(out)
    assert out.steps_requiring_output_review[0].step_output.content == "B"
    out.steps_requiring_output_review[0].reject()  # a second re-route would exceed max_retries
    out = wf.continue_run(out)
    assert out.status == RunStatus.CANCELLED and "Max retries (1) reached for router 'r'" in str(out.content)


def test_requirements_stored_before_step_output_was_a_step_output_still_load() -> None:
    old = {"requirement_id": "r1", "step_name": "draft", "kind": "output_review", "step_output": "text"}
    req = StepRequirement.from_dict(old)
    assert isinstance(req.step_output, StepOutput) and req.step_output.content == "text"
    assert req.step_output.step_name == "draft" and req.is_post_execution and req.step_type == "Step"
    structured = StepRequirement.from_dict({**old, "step_output": {"content": 1, "success": True}})
    assert structured.step_output.content == {"content": 1, "success": True}  # a dict content stays content
    again = StepRequirement.from_dict(req.to_dict())
    assert again.step_output == req.step_output and again.step_id == req.step_id
    confirm = StepRequirement.from_dict({"requirement_id": "r2", "step_name": "x", "kind": "confirmation"})
    assert confirm.step_output is None and not confirm.is_post_execution


# ----- item 4: loop iteration review ---------------------------------------------------------------------
def refine_workflow(db: BaseDb, seen: list[dict[str, Any]], **review: Any) -> Workflow:
    def refine(step_input: StepInput) -> StepOutput:
        seen.append(dict(step_input.additional_data))
        return StepOutput(content=f"v{len(seen)}")

    def finalize(step_input: StepInput) -> StepOutput:
        return StepOutput(content=f"Final: {step_input.previous_step_content}")

    return Workflow(
        name=unique("iterative_refinement"),
        db=db,
        steps=[
            Loop(
                name="refinement_loop",
                steps=[Step(name="refine", executor=refine)],
                max_iterations=5,
                human_review=HumanReview(
                    requires_iteration_review=True,
                    iteration_review_message="Review this iteration.",
                    **review,
                ),
            ),
            Step(name="finalize", executor=finalize),
        ],
    )


def test_iteration_review_confirm_ends_the_loop_with_that_output(db: BaseDb) -> None:
    seen: list[dict[str, Any]] = []
    workflow = refine_workflow(db, seen, on_reject=OnReject.retry)
    run_output = workflow.run("Improve this paragraph...")
    answers = iter([("no", "shorter"), ("no", ""), ("yes", "")])
    reviewed: list[tuple[Any, int | None, int]] = []
    while run_output.is_paused:
        for req in run_output.steps_requiring_output_review:
            assert req.requires_iteration_review and req.requires_output_review and req.is_post_execution
            assert req.step_type == "Loop" and req.output_review_message == "Review this iteration."
            reviewed.append((req.step_output.content, req.iteration, req.retry_count))
            choice, feedback = next(answers)
            if choice in ("yes", "y"):
                req.confirm()
            elif feedback:
                req.reject(feedback=feedback)
            else:
                req.reject()
        run_output = fresh(workflow).continue_run(run_output)
    assert reviewed == [("v1", 1, 0), ("v2", 2, 1), ("v3", 3, 2)]
    assert run_output.status == RunStatus.COMPLETED and run_output.content == "Final: v3"
    assert len(seen) == 3  # no fourth iteration after the approval
    assert seen[0].get("rejection_feedback") is None
    assert seen[1]["rejection_feedback"] == "shorter" and seen[1]["previous_output"] == "v1"
    assert seen[2]["rejection_feedback"] is None and seen[2]["previous_output"] == "v2"
    loop_result = run_output.step_results[0]
    assert loop_result.content == "v3" and [s.content for s in loop_result.steps or []] == ["v3"]


def test_iteration_review_rejections_run_until_max_iterations(db: BaseDb) -> None:
    """Rejecting every review (any on_reject but cancel) runs the iterations out; the last one allowed
    is not reviewed, and its output is the loop's."""
    seen: list[dict[str, Any]] = []
    workflow = refine_workflow(db, seen)  # on_reject defaults to skip: = another iteration
    out = workflow.run("x")
    reviews = 0
    while out.is_paused:
        reviews += 1
        out.steps_requiring_output_review[0].reject(feedback=f"again {reviews}")
        out = workflow.continue_run(out)
    assert reviews == 4 and len(seen) == 5 and out.content == "Final: v5"
    assert seen[4]["rejection_feedback"] == "again 4" and seen[4]["previous_output"] == "v4"

    cancel = refine_workflow(db, [], on_reject=OnReject.cancel)
    out = cancel.run("x")
    out.steps_requiring_output_review[0].reject(feedback="stop")
    out = cancel.continue_run(out)
    assert out.status == RunStatus.CANCELLED and "stop" in str(out.content)


def test_iteration_review_skipped_when_end_condition_stops_and_streaming(db: BaseDb) -> None:
    def improve(step_input: StepInput) -> StepOutput:
        previous = step_input.previous_step_content or ""
        return StepOutput(content=previous + "+")

    def quality_met(outputs: list[StepOutput]) -> bool:
        return any(o.content and o.content.endswith("++") for o in outputs)

    workflow = Workflow(
        name=unique("quality"),
        db=db,
        steps=[
            Loop(
                name="quality_loop",
                steps=[Step(name="improve", executor=improve)],
                end_condition=quality_met,
                max_iterations=5,
                requires_iteration_review=True,
                forward_iteration_output=True,
            )
        ],
    )
    paused_at: list[str | None] = []
    for event in workflow.run("input", stream=True, stream_events=True):
        if isinstance(event, StepPausedEvent):
            paused_at.append(event.step_name)
    run_output = workflow.get_session().runs[-1]
    while run_output.is_paused:
        for req in run_output.steps_requiring_output_review:
            req.reject()
        for _event in workflow.continue_run(run_output, stream=True, stream_events=True):
            pass
        run_output = workflow.get_session().runs[-1]
    # iteration 1 reviewed and rejected; iteration 2 met the end condition: no review, the loop ends
    assert paused_at == ["quality_loop"] and run_output.content == "++"
    assert [r.iteration for r in run_output.step_requirements] == [1]


# ----- item 5: errors ------------------------------------------------------------------------------------
def test_error_pause_error_message_and_error_requirements(db: BaseDb) -> None:
    attempts: list[int] = []

    def unreliable_api_call(step_input: StepInput) -> StepOutput:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("API call failed: Connection timeout")
        return StepOutput(content="API call succeeded")

    def process_data(step_input: StepInput) -> StepOutput:
        return StepOutput(content=f"Processed: {step_input.previous_step_content}")

    workflow = Workflow(
        name=unique("api_workflow"),
        db=db,
        steps=[
            Step(name="fetch_data", executor=unreliable_api_call, on_error=OnError.pause),
            Step(name="process", executor=process_data),
        ],
    )
    run_output = workflow.run("Fetch and process")
    seen: list[tuple[str, str | None, str | None, int]] = []
    while run_output.is_paused:
        assert run_output.error_requirements and run_output.active_error_requirements == run_output.steps_with_errors
        for req in run_output.steps_with_errors:
            seen.append((req.step_name, req.error_message, req.error_type, req.retry_count))
            assert "timeout" in req.error_message.lower()
            req.retry()
        run_output = fresh(workflow).continue_run(run_output)
        if run_output.is_paused:
            run_output = workflow.get_run(run_output.run_id)
    assert seen == [
        ("fetch_data", "API call failed: Connection timeout", "ConnectionError", 0),
        ("fetch_data", "API call failed: Connection timeout", "ConnectionError", 1),
    ]
    assert run_output.content == "Processed: API call succeeded"
    stored = workflow.get_run(run_output.run_id)
    assert [r.error_action for r in stored.error_requirements] == ["retry", "retry"]
    assert stored.steps_with_errors == [] and stored.active_error_requirements == []


def test_error_skip_and_a_returned_error_keeps_its_text(db: BaseDb) -> None:
    def fails(step_input: StepInput) -> StepOutput:
        return StepOutput(content=None, success=False, error="Upstream: quota exhausted")

    workflow = Workflow(
        name=unique("skip_error"),
        db=db,
        steps=[
            Step(name="first", executor=lambda si: "first ok"),
            Step(name="flaky", executor=fails, on_error="pause"),
            Step(name="after", executor=lambda si: f"after {si.previous_step_content}"),
        ],
    )
    out = workflow.run("x")
    req = out.steps_with_errors[0]
    assert req.error_message == "Upstream: quota exhausted" and req.error_type is None
    req.skip()
    out = workflow.continue_run(out)
    assert out.content == "after first ok"  # from the last successful step


def test_error_pause_async_streaming(db: BaseDb) -> None:
    """The streaming pattern of the error-handling page, async: StepErrorEvent, then the paused run from
    the session, `error_message`, retry, continue streaming."""
    tries: list[int] = []

    async def flaky(step_input: StepInput) -> StepOutput:
        tries.append(1)
        if len(tries) == 1:
            raise TimeoutError("upstream timed out")
        return StepOutput(content="fetched")

    workflow = Workflow(name=unique("async_err"), db=db, steps=[Step(name="fetch", executor=flaky, on_error="pause")])

    async def main() -> tuple[list[str], Any]:
        failed: list[str] = []
        async for event in workflow.arun("input", stream=True, stream_events=True):
            if isinstance(event, StepErrorEvent):
                failed.append(f"{event.step_name}: {event.error}")
        run_output = (await workflow.aget_session()).runs[-1]
        while run_output.is_paused:
            for req in run_output.steps_with_errors:
                assert req.error_message == "upstream timed out" and req.error_type == "TimeoutError"
                req.retry()
            async for _event in workflow.acontinue_run(run_output, stream=True, stream_events=True):
                pass
            run_output = (await workflow.aget_session()).runs[-1]
        return failed, run_output

    failed, run_output = asyncio.run(main())
    assert failed == ["fetch: TimeoutError: upstream timed out"]
    assert run_output.content == "fetched" and len(run_output.error_requirements) == 1


@pytest.mark.parametrize("on_error", ["fail", OnError.fail, None])
def test_on_error_fail_fails_the_workflow_immediately(db: BaseDb, on_error: Any) -> None:
    ran: list[str] = []

    def broken(step_input: StepInput) -> StepOutput:
        raise ValueError("bad input")

    workflow = Workflow(
        name=unique("fail"),
        db=db,
        steps=[Step(name="broken", executor=broken, on_error=on_error), Step(name="next", executor=ran.append)],
    )
    if on_error is None:  # unset: the run ends with ERROR, returned
        out = workflow.run("x")
    else:  # an explicit "fail" raises the step's exception, as in the reference, once the run is stored
        with pytest.raises(ValueError, match="bad input"):
            workflow.run("x")
        out = workflow.get_session().runs[-1]
    assert out.status == RunStatus.ERROR and "ValueError: bad input" in (out.error or "")
    assert not out.is_paused and out.error_requirements == [] and out.step_requirements == [] and ran == []
    assert workflow.get_run(out.run_id).status == RunStatus.ERROR

    events: list[Any] = []
    with contextlib.nullcontext() if on_error is None else pytest.raises(ValueError, match="bad input"):
        events.extend(workflow.run("x", stream=True, stream_events=True))
    errors = [e for e in events if isinstance(e, StepErrorEvent)]
    assert [(e.step_name, e.error) for e in errors] == [("broken", "ValueError: bad input")]
    assert workflow.get_session().runs[-1].status == RunStatus.ERROR and ran == []


# ----- item 9: pause anatomy -----------------------------------------------------------------------------
def test_pause_anatomy_step_level_fields(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("anatomy"),
        db=db,
        steps=[
            Step(name="prepare", executor=lambda si: "prepared"),
            Step(
                name="configure",
                executor=lambda si: f"mode={si.additional_data['user_input']['mode']}",
                requires_user_input=True,
                user_input_schema=[UserInputField(name="mode", field_type="str", allowed_values=["fast", "slow"])],
            ),
            Router(
                name="pick",
                choices=[Step(name="a", executor=lambda si: "A"), Step(name="b", executor=lambda si: "B")],
                requires_user_input=True,
            ),
            Step(
                name="publish",
                executor=lambda si: "published",
                requires_confirmation=True,
                confirmation_message="Go?",
                hitl_timeout=600,
            ),
        ],
    )
    run_output = workflow.run("...")
    assert run_output.is_paused and run_output.pause_kind == "step"
    assert run_output.paused_step_name == "configure" and run_output.paused_step_index == 1
    req = run_output.step_requirements[-1]
    assert (req.step_name, req.step_index, req.step_type) == ("configure", 1, "Step")
    assert isinstance(req.step_id, str) and req.step_id
    assert req.requires_user_input and req.needs_user_input and not req.needs_confirmation
    assert [f.name for f in req.user_input_schema] == ["mode"] and not req.is_resolved and not req.is_timed_out
    assert run_output.active_step_requirements == [req] == run_output.steps_requiring_user_input
    req.set_user_input(mode="fast")
    assert req.is_resolved and not req.needs_user_input

    run_output = fresh(workflow).continue_run(run_output)
    req = run_output.step_requirements[-1]
    assert run_output.paused_step_index == 2 and req.requires_route_selection and req.needs_route_selection
    assert req.available_choices == ["a", "b"] and run_output.steps_requiring_route == [req]
    assert run_output.active_step_requirements == [req]  # the resolved input pause is history now
    req.select("b")
    run_output = workflow.continue_run(run_output)

    req = workflow.get_run(run_output.run_id).step_requirements[-1]
    assert req.requires_confirmation and req.needs_confirmation and req.confirmation_message == "Go?"
    assert isinstance(req.timeout_at, datetime) and abs(req.timeout_at.timestamp() - req.deadline) < 1e-6
    # the same step keeps its id across runs and processes
    again = workflow.run("...")
    assert again.step_requirements[-1].step_id == workflow.get_run(run_output.run_id).step_requirements[0].step_id

    # the documented resolution flow
    run_output = workflow.get_run(run_output.run_id)
    while run_output.is_paused:
        for step_req in (run_output.step_requirements or [])[-1:]:
            if step_req.requires_executor_input:
                for executor_req in step_req.executor_requirements or []:
                    executor_req.confirm()
            elif step_req.needs_confirmation:
                step_req.confirm()
            elif step_req.needs_user_input:
                step_req.set_user_input(mode="slow")
            elif step_req.needs_route_selection:
                step_req.select(step_req.available_choices[0])
        run_output = workflow.continue_run(run_output)
    assert run_output.content == "published" and run_output.paused_step_index is None


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@tool(requires_confirmation=True)
def delete_user(user_id: str) -> str:
    return f"deleted {user_id}"


@tool(external_execution=True)
def run_query(sql: str) -> str:
    raise AssertionError("runs outside the agent")


@tool(requires_user_input=True, user_input_fields=["recipient"])
def send_money(amount: float, recipient: str) -> str:
    return f"sent {amount} to {recipient}"


def test_pause_anatomy_executor_fields(db: BaseDb, server: FakeOpenAI) -> None:
    server._script.clear()
    server.script(
        call("delete_user", user_id="u1"),
        call("run_query", sql="select 1"),
        call("send_money", amount=5, recipient=""),
        lambda body: text("Done: " + " | ".join(tool_results(body))),
    )
    agent = Agent(
        name="OpsAgent",
        model=OpenAIResponses(id="gpt-5.4", base_url=server.base_url, api_key="t"),
        tools=[delete_user, run_query, send_money],
        db=db,
    )
    workflow = Workflow(name=unique("ops"), db=db, steps=[Step(name="ops", agent=agent)])
    response = workflow.run("clean up")
    handled: list[str] = []
    while response.is_paused:
        assert response.pause_kind == "executor" and response.paused_step_name == "ops"
        step_req = response.step_requirements[-1]
        assert step_req.requires_executor_input and step_req.needs_executor_resolution
        assert step_req.executor_name == "OpsAgent" and step_req.executor_type == "agent"
        assert step_req.executor_id and step_req.executor_run_id
        assert response.steps_requiring_executor_resolution == [step_req]
        for executor_req in step_req.executor_requirements or []:
            assert not executor_req.is_resolved() and not executor_req.is_resolved
            te = executor_req.tool_execution
            handled.append(te.tool_name)
            if executor_req.needs_confirmation:
                assert te.tool_args == {"user_id": "u1"}
                executor_req.confirm()
            elif executor_req.needs_external_execution:
                te.result = "1 row"  # "set tool_execution.result"
            elif executor_req.needs_user_input:
                assert [f.name for f in executor_req.user_input_schema] == ["recipient"]
                executor_req.provide_user_input({"recipient": "ana"})
            assert executor_req.is_resolved() is True and executor_req.is_resolved
        response = fresh(workflow).continue_run(response)
    assert handled == ["delete_user", "run_query", "send_money"]
    assert response.content == "Done: deleted u1 | 1 row | sent 5.0 to ana"
    stored = workflow.get_run(response.run_id).step_requirements
    assert {r.executor_name for r in stored} == {"OpsAgent"} and all(r.executor_type == "agent" for r in stored)


def test_router_run_paused_by_the_older_retry_rule_keeps_its_routes(db: BaseDb) -> None:
    """Before re-routing, a rejected router review with on_reject=retry re-ran the same routes under
    `<path>~1` and paused at the review of that attempt. Such a stored run continues as it was decided:
    its second attempt is reviewed and kept, and no route selection is asked for."""
    import uuid

    from kern._sync import run_sync
    from kern.workflow.journal import NODES

    calls: list[str] = []

    def route(name: str) -> Step:
        return Step(name=name, executor=lambda si: calls.append(name) or f"{name.upper()}{len(calls)}")

    def build() -> list[Any]:
        return [
            Router(
                name="r",
                selector=lambda si: "a",
                choices=[route("a"), route("b")],
                requires_output_review=True,
                on_reject=OnReject.retry,
            ),
            Step(name="after", executor=lambda si: f"after {si.previous_step_content}"),
        ]

    name = unique("legacy-router")
    out = Workflow(name=name, db=db, steps=build()).run("x")
    stored = run_sync(db.load_run(out.run_id))
    journal, output = dict(stored.journal), dict(stored.output)
    first = dict(output["step_requirements"][-1], status="resolved", confirmed=False)
    first["step_output"] = first["step_output"]["content"]  # stored as bare content back then
    journal["0|output_review|0"] = {"action": "reject", "feedback": None}
    second_try = StepOutput(content="A-again", step_name="a").to_dict()
    journal["0~1/0"] = journal["0~1/0~0"] = second_try
    journal[NODES] = {**journal[NODES], "0~1/0": "Step:a"}
    second = {
        **first,
        "requirement_id": uuid.uuid4().hex,
        "gate_key": "0|output_review|1",
        "retry_count": 1,
        "step_output": "A-again",
        "status": "pending",
    }
    second.pop("confirmed")
    output.update(run_id=uuid.uuid4().hex, step_requirements=[first, second])
    run_sync(db.save_run(output, journal, version=0, new_requirement=second))

    wf = Workflow(name=name, db=db, steps=build())
    old = wf.get_run(output["run_id"])
    assert old.steps_requiring_output_review[0].step_output.content == "A-again"
    old.steps_requiring_output_review[0].confirm()
    done = wf.continue_run(old)
    assert done.status == RunStatus.COMPLETED and done.content == "after A-again"
    assert calls == ["a"]  # the first attempt, when the run started; nothing ran again
    assert [r.kind for r in done.step_requirements] == ["output_review", "output_review"]
