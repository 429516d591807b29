"""Stored runs are written and read by pydantic TypeAdapters (kern.run.stored): rows written by the
hand-written `to_dict` before them still load and continue, user values are written as `to_jsonable` gives
them, and every stored type reads back what it wrote."""

from __future__ import annotations

import copy
import enum
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from kern._json import to_jsonable
from kern._sync import run_sync
from kern.db.base import BaseDb
from kern.run.agent import RunOutput, RunRequirement, ToolExecution
from kern.run.base import RunStatus
from kern.run.error_requirement import ErrorRequirement
from kern.run.requirement import StepRequirement
from kern.run.workflow import WorkflowRunOutput
from kern.tools.user_feedback import AskUserQuestion
from kern.workflow import Workflow
from kern.workflow.types import HumanReview, StepOutput, UserInputField
from tests.conftest import unique
from tests.fixtures import stored_run_flows as flows

FIXTURE = json.loads(flows.FIXTURE.read_text())


def store_fixture_row(db: BaseDb) -> tuple[str, str]:
    """The workflow row of the fixture, stored under fresh ids (the PostgreSQL tables are shared)."""
    output, journal = copy.deepcopy(FIXTURE["workflow"]["output"]), FIXTURE["workflow"]["journal"]
    name = unique("stored-forms")
    output.update(run_id=uuid.uuid4().hex, session_id=uuid.uuid4().hex, workflow_name=name)
    for req in output["step_requirements"]:
        req["requirement_id"] = uuid.uuid4().hex
    run_sync(db.save_run(output, journal, version=0, new_requirement=output["step_requirements"][-1]))
    return output["run_id"], name


def test_a_row_in_the_old_form_loads_and_continues(db: BaseDb) -> None:
    run_id, name = store_fixture_row(db)
    calls = flows.Calls()
    wf = Workflow(name=name, db=db, steps=flows.steps(calls))
    run = wf.get_run(run_id)

    ask, flaky, draft, publish = run.step_requirements
    assert type(flaky) is ErrorRequirement and flaky.decision == "retry" and flaky.error_type == "ValueError"
    assert flaky.error_message == "first try fails" and flaky.step_index == 1
    assert type(ask) is StepRequirement and ask.user_input == {"count": 3, "note": None}
    assert [(f.name, f.field_type, f.required, f.value) for f in ask.user_input_schema or []] == [
        ("count", "int", True, 3),
        ("note", "str", False, None),
    ]
    assert draft.step_output is not None and draft.step_output.content == {
        "title": "first",
        "when": "2026-01-02 00:00:00+00:00",
    }
    assert draft.edited_output == {"title": "edited", "when": "2026-02-03 00:00:00+00:00"}
    assert run.input == {"item": "pen", "qty": 2}
    assert run.session_state == {"color": "red", "since": "2026-01-02 03:04:05+00:00", "tags": ["a"]}
    assert [r.content for r in run.step_results][:2] == ["count=3", "flaky ok"]

    publish.confirm(by="bob")
    done = wf.continue_run(run)
    assert done.status == RunStatus.COMPLETED
    assert calls.log == ["publish"]  # everything before the pause came from the journal
    assert done.content == "published {'title': 'edited', 'when': '2026-02-03 00:00:00+00:00'}"

    # written back in today's form, and read back the same
    stored = run_sync(db.load_run(run_id))
    assert "error" not in stored.output and "user_id" not in stored.output  # None fields are left out
    again = WorkflowRunOutput.from_dict(stored.output, stored.version)
    assert again == wf.get_run(run_id) and again.to_dict() == stored.output
    assert type(again.step_requirements[1]) is ErrorRequirement


def test_an_agent_output_in_the_old_form_loads() -> None:
    old = FIXTURE["agent"]
    run = RunOutput.from_dict(old, version=4)
    assert run.version == 4 and run.status == RunStatus.PAUSED and run.input == {"item": "pen", "qty": 2}
    confirm, feedback, external = run.requirements
    assert confirm.tool_execution.confirmed is True and confirm.resolved_by == "alice"
    assert confirm.tool_execution.tool_args == {"at": "red", "env": "prod"}
    questions = feedback.user_feedback_schema or []
    assert [type(q) for q in questions] == [AskUserQuestion] and [o.label for o in questions[0].options] == ["EU", "US"]
    assert external.needs_external_execution and not external.is_resolved

    new = run.to_dict()
    assert new["workflow_name"] == "helper" and "agent_id" not in new  # None fields are left out
    assert RunOutput.from_dict(new, version=4) == run
    feedback.provide_user_feedback({"Which region?": "EU"})
    external.set_external_execution_result({"rows": 2})
    assert RunOutput.from_dict(run.to_dict(), version=4) == run
    assert RunRequirement.from_dict(external.to_dict()).tool_execution.result == '{"rows": 2}'


# ----- user values ----------------------------------------------------------------------------------------
class Point(BaseModel):
    x: int
    at: datetime


@dataclass
class Box:
    size: tuple[int, int]
    tags: frozenset[str]


class Mode(enum.Enum):
    FAST = "fast"


class Opaque:
    def __str__(self) -> str:
        return "<opaque>"


# Values JSON cannot hold as they are, in every shape a user value takes.
ODD_VALUES: list[Any] = [
    Point(x=1, at=datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)),
    Box(size=(2, 3), tags=frozenset({"t"})),
    Mode.FAST,
    {1: Mode.FAST, "nested": [Box(size=(1, 1), tags=frozenset()), {"p": Point(x=2, at=datetime(2026, 1, 1))}]},
    (1, "two", None),
    datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    Opaque(),
    float("inf"),
    b"bytes",
    {"kept": None, "empty": {}},
]


@pytest.mark.parametrize("value", ODD_VALUES, ids=lambda v: type(v).__name__)
def test_user_values_are_stored_as_to_jsonable_gives_them(value: Any) -> None:
    expected = to_jsonable(value)
    run = WorkflowRunOutput(input=value, content=value, session_state={"v": value}, additional_data={"v": value})
    data = run.to_dict()
    assert (data["input"], data["content"]) == (expected, expected)
    assert data["session_state"] == data["additional_data"] == {"v": expected}
    json.dumps(data)  # JSON-ready
    assert StepOutput(content=value, images=[value]).to_dict()["content"] == expected
    assert StepOutput(content=value, images=[value]).to_dict()["images"] == [expected]
    req = StepRequirement(step_name="s", kind="output_review", step_output=value, edited_output=value)
    req_data = req.to_dict()
    assert req_data["edited_output"] == expected and req_data["step_output"]["content"] == expected
    assert ToolExecution(tool_call_id="c", tool_name="t", tool_args={"v": value}).to_dict()["tool_args"] == {
        "v": expected
    }
    assert UserInputField(name="f", value=value, allowed_values=[value]).to_dict()["value"] == expected
    # read back as that JSON
    assert WorkflowRunOutput.from_dict(json.loads(json.dumps(data))).content == json.loads(json.dumps(expected))


# ----- each stored type reads back what it wrote --------------------------------------------------------------
def test_step_requirements_round_trip() -> None:
    schema = [UserInputField(name="n", field_type="int", description=None, allowed_values=[1, 2])]
    reqs = [
        StepRequirement(step_name="a", kind="user_input", step_path="0", user_input_schema=schema, timeout=5,
                        on_timeout="approve", deadline=123.0),
        StepRequirement(step_name="b", kind="route_selection", step_path="1/then/0", available_choices=["x", "y"]),
        StepRequirement(step_name="c", kind="iteration_review", step_path="2", iteration=1, step_output="out",
                        on_reject="cancel"),
        StepRequirement(step_name="d", kind="confirmation", step_id="my-id", step_index=7),
        ErrorRequirement(step_id="e", step_name="e", error_message="boom", error_type="KeyError", decision="skip"),
    ]  # fmt: skip
    reqs[1].select("y", by="carol")
    for req in reqs:
        data = req.to_dict()
        assert None not in data.values()
        back = StepRequirement.from_dict(json.loads(json.dumps(data)))
        assert type(back) is type(req) and back == req
        assert (back.step_id, back.step_index, back.error_type) == (req.step_id, req.step_index, req.error_type)
    # a derived id is not stored (it is derived from the path and name again when read); to_dict() shows it
    stored = WorkflowRunOutput(step_requirements=[reqs[0]]).to_dict()["step_requirements"][0]
    assert "step_id" not in stored and reqs[0].to_dict()["step_id"] == reqs[0].step_id
    assert reqs[3].to_dict()["step_id"] == "my-id" and reqs[3].to_dict()["step_index"] == 7
    error = reqs[4].to_dict()
    assert (error["error_message"], error["error_type"], error["decision"]) == ("boom", "KeyError", "skip")
    assert ErrorRequirement.from_dict(error) == reqs[4]


def test_requirement_rows_of_older_forms() -> None:
    # a step_output stored as the bare content (before it was a StepOutput)
    old = {"requirement_id": "r", "step_name": "s", "kind": "output_review", "step_output": {"a": 1}}
    req = StepRequirement.from_dict(old)
    assert isinstance(req.step_output, StepOutput) and req.step_output.content == {"a": 1}
    assert StepRequirement.from_dict({**old, "step_output": "text"}).step_output.content == "text"  # type: ignore[union-attr]
    # an error pause stored as a plain StepRequirement comes back as an ErrorRequirement
    plain = {
        "requirement_id": "r",
        "step_name": "s",
        "kind": "error",
        "error": "ValueError: x",
        "error_action": "retry",
    }
    error = StepRequirement.from_dict(plain)
    assert type(error) is ErrorRequirement and error.decision == "retry" and error.error_type == "ValueError"
    # the reference API's forms
    documented = StepRequirement.from_dict({"step_name": "s", "requires_confirmation": True, "step_index": 2})
    assert documented.kind == "confirmation" and documented.step_index == 2
    tool = {"tool_call_id": "c", "tool_name": "t", "requires_confirmation": True}
    reference = RunRequirement.from_dict(
        {"tool_execution": tool, "confirmation": False, "confirmation_note": "no", "created_at": "2026-01-01T00:00:00Z"}
    )
    assert reference.id == "c" and reference.tool_execution.confirmed is False
    assert reference.tool_execution.confirmation_note == "no" and reference.created_at == 1767225600.0


def test_step_outputs_and_fields_round_trip() -> None:
    out = StepOutput(content=[1, 2], step_name="p", steps=[StepOutput(content="a", error="E", success=False)],
                     executor_type="agent", metrics={"ms": 3})  # fmt: skip
    assert StepOutput.from_dict(json.loads(json.dumps(out.to_dict()))) == out
    assert "error" not in out.to_dict() and out.to_dict()["steps"][0]["error"] == "E"
    field = UserInputField(name="n", field_type="integer")
    assert UserInputField.from_dict(field.to_dict()) == field and field.to_dict()["field_type"] == "int"
    review = HumanReview(requires_user_input=True, user_input_schema=[field], on_timeout="skip", timeout=3)
    assert HumanReview.from_dict(review.to_dict()) == review and review.to_dict()["on_timeout"] == "skip"


def test_null_where_kern_writes_a_collection_reads_as_the_default() -> None:
    # A row edited by hand (or written by another tool) with null for a list or a dict loads as the old
    # hand-written reader loaded it; a wrong value still fails, naming the field.
    run = WorkflowRunOutput.from_dict(
        {"run_id": "r1", "status": "PAUSED", "additional_data": None, "step_results": None, "step_requirements": None}
    )
    assert (run.additional_data, run.step_results, run.step_requirements) == ({}, [], [])
    with pytest.raises(ValidationError, match="status"):
        WorkflowRunOutput.from_dict({"run_id": "r1", "status": "NOT A STATUS", "additional_data": None})
