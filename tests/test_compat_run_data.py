"""The reference API's run and requirement data, on kern: the documented constructors, properties and dict
forms of `StepRequirement`, `ErrorRequirement`, `WorkflowRunOutput`, `StepOutput`, `RunRequirement`,
`ToolExecution` and `RunPausedEvent`, and that stored runs keep them across a pause and a `continue_run` made
by new `Workflow` / `Agent` and database objects, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kern.agent import Agent
from kern.models.response import ToolExecution
from kern.models.response import UserInputField as ResponseUserInputField
from kern.run.agent import RunPausedEvent
from kern.run.base import RunStatus
from kern.run.requirement import RunRequirement
from kern.run.workflow import WorkflowRunOutput
from kern.tools import tool
from kern.workflow import OnTimeout, Step, Workflow
from kern.workflow.types import ErrorRequirement, StepInput, StepOutput, StepRequirement, UserInputField
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results


# ----- StepRequirement ---------------------------------------------------------------------------------------
def test_a_requirement_without_a_flag_asks_for_nothing() -> None:
    req = StepRequirement(step_id="s1", step_name="plain", retry_count=2)
    assert (req.kind, req.is_resolved, req.needs_confirmation, req.requires_confirmation) == ("", True, False, False)
    assert (req.on_reject, req.max_retries, req.retry_count) == ("cancel", None, 2)  # the documented defaults
    with pytest.raises(ValueError, match="asks for nothing"):
        req.confirm()
    back = StepRequirement.from_dict(json.loads(json.dumps(req.to_dict())))
    assert (back.kind, back.max_retries, back.retry_count, back.on_reject) == ("", None, 2, "cancel")
    assert WorkflowRunOutput(status=RunStatus.PAUSED, step_requirements=[req]).active_step_requirements == []


def test_documented_keys_in_to_dict_and_back() -> None:
    at = datetime(2031, 6, 15, 12, 0, tzinfo=UTC)
    req = StepRequirement(
        step_id="s1", step_name="gate", step_index=2, requires_confirmation=True, confirmation_message="Go?",
        timeout_at=at, on_timeout="skip", max_retries=5,
    )  # fmt: skip
    req.confirm()
    data = req.to_dict()
    assert {k: data[k] for k in ("step_id", "step_index", "requires_confirmation", "confirmation_message")} == {
        "step_id": "s1",
        "step_index": 2,
        "requires_confirmation": True,
        "confirmation_message": "Go?",
    }
    assert (data["requires_user_input"], data["requires_output_review"], data["confirmed"]) == (False, False, True)
    assert (data["timeout_at"], data["on_timeout"], data["max_retries"]) == ("2031-06-15T12:00:00+00:00", "skip", 5)
    assert "requires_executor_input" not in data
    back = StepRequirement.from_dict(json.loads(json.dumps(data)))
    assert (back.timeout_at, back.on_timeout, back.confirmed, back.step_index) == (at, OnTimeout.skip, True, 2)
    assert back.on_timeout == "skip" and back.on_timeout.rejects

    review = StepRequirement(
        step_id="r", requires_output_review=True, output_review_message="Check", is_post_execution=True,
        step_output=StepOutput(content="draft"),
    )  # fmt: skip
    data = StepRequirement.from_dict(review.to_dict()).to_dict()
    assert (data["requires_output_review"], data["output_review_message"], data["is_post_execution"]) == (
        True,
        "Check",
        True,
    )
    assert data["step_output"]["content"] == "draft"


def test_is_timed_out_by_the_deadline_unless_decided_before() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert not StepRequirement(step_id="s").is_timed_out
    assert not StepRequirement(step_id="s", timeout_at=datetime.now(UTC) + timedelta(hours=1)).is_timed_out
    waiting = StepRequirement(step_id="s", requires_confirmation=True, timeout_at=past)
    assert waiting.is_timed_out and not waiting.timed_out  # passed, not yet applied
    decided = StepRequirement(step_id="s", requires_confirmation=True, timeout_at=datetime.now(UTC) + timedelta(1))
    decided.confirm()
    decided.deadline = time.time() - 1  # the deadline passes after the decision: the decision stands
    assert not decided.is_timed_out


def test_executor_requirement_without_calls_needs_nothing() -> None:
    empty = StepRequirement(step_id="s", requires_executor_input=True, executor_requirements=None)
    assert not empty.needs_executor_resolution and empty.is_resolved
    pending = {"tool_execution": {"tool_name": "x", "tool_args": {}, "requires_confirmation": True}}
    req = StepRequirement(step_id="s", requires_executor_input=True, executor_requirements=[pending])
    assert req.needs_executor_resolution and req.to_dict()["requires_executor_input"] is True
    assert isinstance(req.executor_requirements, list)
    call_req = req.executor_requirements[0]
    assert call_req.tool_execution.tool_call_id is None and call_req.needs_confirmation
    call_req.confirm()
    assert not req.needs_executor_resolution and not call_req.needs_confirmation and call_req.kind == "confirmation"


# ----- ErrorRequirement and WorkflowRunOutput ----------------------------------------------------------------
def test_error_requirement_decision_properties() -> None:
    req = ErrorRequirement(step_id="s", step_name="load", step_index=0, error_message="boom")
    assert req.needs_decision and not req.should_retry and not req.should_skip
    req.retry()
    assert (req.needs_decision, req.should_retry, req.should_skip, req.decision) == (False, True, False, "retry")
    loaded = ErrorRequirement.from_dict({"step_id": "s", "error_message": "x", "retry_count": 2, "decision": "skip"})
    assert loaded.should_skip and loaded.is_resolved and loaded.retry_count == 2


def test_run_output_documented_arguments() -> None:
    run = WorkflowRunOutput(status=RunStatus.PAUSED, paused_step_index=3, paused_step_name="final", workflow_id="w")
    data = run.to_dict()
    assert (data["paused_step_index"], data["paused_step_name"], data["workflow_id"]) == (3, "final", "w")
    again = WorkflowRunOutput.from_dict(json.loads(json.dumps(data)))
    assert (again.paused_step_index, again.paused_step_name, again.workflow_id) == (3, "final", "w")

    error = ErrorRequirement(step_id="s", step_name="load", error_message="boom")
    with_error = WorkflowRunOutput(status=RunStatus.PAUSED, error_requirements=[error])
    assert with_error.error_requirements == [error] and with_error.step_requirements == [error]
    assert with_error.steps_with_errors == [error] and with_error.paused_step_name == "load"
    reference_form = {
        "run_id": "r",
        "status": "PAUSED",
        "error_requirements": [{"step_id": "s", "step_name": "load", "error_message": "boom"}],
    }
    loaded = WorkflowRunOutput.from_dict(reference_form)
    assert [type(r) for r in loaded.step_requirements] == [ErrorRequirement]
    assert loaded.error_requirements[0].needs_decision
    # an error requirement already among step_requirements is not added twice
    assert len(WorkflowRunOutput.from_dict({**with_error.to_dict(), **reference_form}).step_requirements) == 2
    assert len(WorkflowRunOutput(step_requirements=[error], error_requirements=[error]).step_requirements) == 1
    with pytest.raises(ValueError, match="error_requirements holds error pauses"):
        WorkflowRunOutput(error_requirements=[StepRequirement(step_id="x", requires_confirmation=True)])
    with pytest.raises(TypeError, match="paused_step"):
        WorkflowRunOutput(paused_step="x")  # type: ignore[call-arg]

    none = WorkflowRunOutput()
    none.step_requirements = None  # type: ignore[assignment]
    assert none.steps_requiring_executor_resolution == [] and none.error_requirements == []


def test_step_output_pause_flags() -> None:
    out = StepOutput(content="c", is_paused=True, requires_iteration_review_pause=True)
    data = out.to_dict()
    assert data["is_paused"] is True and "requires_iteration_review_pause" not in data  # transient
    back = StepOutput.from_dict(data)
    assert back.is_paused and not back.requires_iteration_review_pause
    assert StepOutput.from_dict({"content": "c"}).is_paused is False


# ----- tool-call requirements --------------------------------------------------------------------------------
def test_run_requirement_needs_are_false_once_decided() -> None:
    confirm = RunRequirement(tool_execution=ToolExecution(tool_name="rm", requires_confirmation=True))
    assert confirm.needs_confirmation and not confirm.is_resolved
    confirm.reject("no")
    assert not confirm.needs_confirmation and confirm.is_resolved and confirm.kind == "confirmation"

    fields = [UserInputField(name="to", field_type=str)]
    ask = RunRequirement(
        tool_execution=ToolExecution(tool_name="mail", requires_user_input=True, user_input_schema=fields)
    )
    assert ask.needs_user_input and ask.tool_execution.answered is None
    with pytest.raises(ValueError, match="to: required"):
        ask.provide_user_input({})
    assert ask.needs_user_input  # a refused input changes nothing
    ask.provide_user_input({"to": "a@b.c"})
    assert not ask.needs_user_input and ask.kind == "user_input" and ask.tool_execution.answered is True

    external = RunRequirement(tool_execution=ToolExecution(tool_name="sql", external_execution_required=True))
    external.set_external_execution_result("1 row")
    assert not external.needs_external_execution and external.is_external_tool_execution
    assert ResponseUserInputField is UserInputField


def test_run_requirement_from_the_reference_form() -> None:
    data = {
        "id": "req",
        "tool_execution": {"tool_name": "mail", "requires_user_input": True, "user_input_schema": [
            {"name": "to", "field_type": "str", "value": None}, {"name": "n", "field_type": "int", "value": None}]},
        "user_input_schema": [{"name": "to", "field_type": "str", "value": "a@b.c"}, {"name": "n", "field_type": "int",
                                                                                   "value": "3"}],
    }  # fmt: skip
    req = RunRequirement.from_dict(data)
    assert req.tool_execution.answered is True and not req.needs_user_input
    assert req.tool_execution.tool_args == {"to": "a@b.c", "n": 3}  # coerced like provide_user_input
    with pytest.raises(ValueError, match="expected int"):
        RunRequirement.from_dict({**data, "user_input_schema": [{"name": "n", "field_type": "int", "value": "x"}]})
    bare = RunRequirement.from_dict({"id": "r1", "confirmation": True})
    assert bare.tool_execution.tool_name == "unknown" and bare.tool_execution.confirmed is True


def test_paused_event_from_tools() -> None:
    calls = [ToolExecution(tool_name="rm", requires_confirmation=True), ToolExecution(tool_name="ls")]
    event = RunPausedEvent(tools=calls, workflow_id="w", step_name="s", nested_depth=1)
    assert [r.tool_execution.tool_name for r in event.requirements] == ["rm"]
    assert event.tools == calls and event.tools_requiring_confirmation == [calls[0]]
    given = RunPausedEvent(requirements=[RunRequirement(tool_execution=calls[0])])
    assert given.tools == [calls[0]] and given.is_paused


# ----- stored runs keep it all across a pause and a continue from new objects ----------------------------------
def boom(step_input: StepInput) -> str:
    raise ValueError("bad input")


def test_stored_pause_and_continue_from_new_objects(db_kind: str, tmp_path: Path) -> None:
    name = unique("compat-data")

    def build() -> Workflow:
        gate = Step(name="gate", executor=lambda s: "gated", requires_confirmation=True, hitl_timeout=3600,
                    on_timeout="skip", on_reject="cancel")  # fmt: skip
        flaky = Step(name="flaky", executor=boom, on_error="pause")
        return Workflow(name=name, db=make_db(db_kind, tmp_path), steps=[gate, flaky])

    first = build()
    paused = first.run("x")
    assert paused.workflow_id == first.id and (paused.paused_step_index, paused.paused_step_name) == (0, "gate")
    assert paused.to_dict()["paused_step_index"] == 0

    # another process: new objects, the run read from the store
    second = build()
    loaded = second.get_run(paused.run_id)
    req = loaded.step_requirements[-1]
    assert (loaded.workflow_id, loaded.paused_step_name, req.on_timeout, req.max_retries) == (
        first.id,
        "gate",
        OnTimeout.skip,
        3,
    )
    assert req.timeout_at is not None and not req.is_timed_out and req.needs_confirmation
    req.confirm()
    errored = second.continue_run(loaded)
    assert errored.is_paused and (errored.paused_step_index, errored.paused_step_name) == (1, "flaky")

    third = build()
    again = third.get_run(paused.run_id)
    error = again.error_requirements[-1]
    assert isinstance(error, ErrorRequirement) and error.needs_decision and error.error_type == "ValueError"
    assert again.step_requirements[0].confirmed is True and again.step_requirements[0].on_timeout == "skip"
    error.skip()
    done = third.continue_run(run_id=again.run_id, session_id=again.session_id, step_requirements=[error])
    assert done.status == RunStatus.COMPLETED and done.paused_step_index is None

    final = build().get_run(paused.run_id)
    assert final.workflow_id == first.id and final.error_requirements[-1].should_skip
    assert not final.error_requirements[-1].needs_decision and final.paused_step_name is None


@tool(requires_confirmation=True)
def wipe(table: str) -> str:
    """Wipe a table."""
    return f"wiped {table}"


def test_tool_call_decision_survives_a_reload(tmp_path: Path, db_kind: str) -> None:
    with FakeOpenAI() as server:
        server.script(call("wipe", table="logs"), echo_tool_results)
        name = unique("wiper")

        def agent() -> Agent:
            from kern.models.openai import OpenAIChat

            model = OpenAIChat(id="m", base_url=server.base_url, api_key="t")
            return Agent(name=name, model=model, tools=[wipe], db=make_db(db_kind, tmp_path))

        run = agent().run("Wipe the logs")
        req = run.active_requirements[0]
        assert req.needs_confirmation and req.tool_execution.tool_call_id
        req.confirm()
        assert not req.needs_confirmation and req.kind == "confirmation"
        done = agent().continue_run(run_id=run.run_id, requirements=run.requirements)
        assert done.status == RunStatus.COMPLETED and done.content == "Final: wiped logs"
        kept = done.requirements[0]
        assert kept.is_resolved and not kept.needs_confirmation and kept.tool_execution.confirmed is True


def test_check_timeout() -> None:
    from kern.workflow.utils.hitl import check_timeout

    past = datetime.now(UTC) - timedelta(seconds=1)
    assert check_timeout(StepRequirement(step_id="s")) is None
    assert check_timeout(StepRequirement(step_id="s", timeout_at=past, on_timeout="approve")) == "approve"
    assert check_timeout(StepRequirement(step_id="s", requires_confirmation=True, timeout_at=past)) is OnTimeout.cancel
    decided = StepRequirement(step_id="s", requires_confirmation=True, timeout_at=past, on_timeout="skip")
    decided.reject()
    assert check_timeout(decided) is None  # a decision there when the deadline is applied wins, as in continue_run
