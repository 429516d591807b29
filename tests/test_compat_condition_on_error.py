"""`Condition(on_error=...)`: what a failure inside the branch does (skip, fail, pause with retry or skip),
through the same implementation as a Step's, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from kern.db.base import BaseDb
from kern.workflow import Condition, Loop, OnError, RunStatus, Step, StepInput, StepOutput, Workflow
from tests.conftest import unique

calls: list[str] = []


@pytest.fixture(autouse=True)
def _fresh() -> None:
    calls.clear()


def prepare(step_input: StepInput) -> str:
    calls.append("prepare")
    return "prepared"


def validate(step_input: StepInput) -> str:
    calls.append("validate")
    if calls.count("validate") < 2 or "always" in str(step_input.input):
        raise ValueError("missing fields")
    return "valid"


def save(step_input: StepInput) -> StepOutput:
    calls.append("save")
    return StepOutput(content=f"saved<{step_input.previous_step_content}>")


def flow(db: BaseDb, on_error: OnError | str | None, name: str = "cond") -> Workflow:
    return Workflow(
        name=unique(name),
        db=db,
        steps=[
            Step(name="start", executor=lambda s: "input"),
            Condition(name="check", evaluator=True, steps=[prepare, validate], on_error=on_error),
            Step(name="save", executor=save),
        ],
    )


def test_skip_ends_the_condition_and_the_run_goes_on(db: BaseDb) -> None:
    run = flow(db, OnError.skip).run("always")
    assert run.status == RunStatus.COMPLETED
    check = run.step_results[1]
    assert check.step_name == "check" and check.skipped and check.error == "ValueError: missing fields"
    assert calls == ["prepare", "validate", "save"]
    assert run.content == "saved<input>"  # the skipped condition passes the content before it on


def test_fail_stores_the_error_and_raises_the_exception(db: BaseDb) -> None:
    workflow = flow(db, "fail")
    with pytest.raises(ValueError, match="missing fields"):
        workflow.run("always")
    run = workflow.get_session().runs[-1]
    assert run.status == RunStatus.ERROR and "missing fields" in (run.error or "")
    assert "save" not in calls


def test_unset_on_error_fails_the_run_as_before(db: BaseDb) -> None:
    run = flow(db, None).run("always")
    assert run.status == RunStatus.ERROR and run.error == "Step 'validate' failed: ValueError: missing fields"
    assert "save" not in calls


def test_pause_then_retry_runs_the_condition_again(db: BaseDb) -> None:
    workflow = flow(db, OnError.pause)
    run = workflow.run("once")
    assert run.is_paused and run.steps_with_errors
    [req] = run.steps_with_errors
    assert req.step_name == "check" and req.step_type == "Condition"
    assert req.error_type == "ValueError" and req.error_message == "missing fields"
    req.retry()
    # continued by another Workflow object of the same definition (as another process would)
    other = Workflow(name=workflow.name, db=db, steps=workflow.steps)
    done = other.continue_run(run_id=run.run_id, step_requirements=[req])
    assert done.status == RunStatus.COMPLETED and done.content == "saved<valid>"
    assert calls == ["prepare", "validate", "prepare", "validate", "save"]  # the retry runs the branch afresh


def test_pause_then_skip_goes_on_without_the_condition(db: BaseDb) -> None:
    workflow = flow(db, OnError.pause)
    run = workflow.run("always")
    run.steps_with_errors[0].skip()
    done = workflow.continue_run(run)
    assert done.status == RunStatus.COMPLETED and done.content == "saved<input>"
    assert done.step_results[1].skipped and calls == ["prepare", "validate", "save"]


def test_a_retry_that_fails_again_pauses_again(db: BaseDb) -> None:
    workflow = flow(db, OnError.pause)
    run = workflow.run("always")
    run.steps_with_errors[0].retry()
    run = workflow.continue_run(run)
    assert run.is_paused and len(run.error_requirements) == 2
    assert run.steps_with_errors[0].retry_count == 1
    run.steps_with_errors[0].skip()
    assert workflow.continue_run(run).status == RunStatus.COMPLETED
    assert calls.count("validate") == 2 and calls.count("save") == 1


def test_a_step_handling_its_own_failure_is_not_the_condition_s(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("own"),
        db=db,
        steps=[
            Condition(
                name="check",
                steps=[Step(name="validate", executor=validate, on_error="skip"), save],
                on_error=OnError.pause,
            )
        ],
    )
    run = workflow.run("always")
    assert run.status == RunStatus.COMPLETED and calls == ["validate", "save"]


def test_on_error_is_refused_where_the_reference_has_none() -> None:
    with pytest.raises(ValueError, match=r"on_error is not supported on Loop\. Supported on: Step, Condition"):
        Loop(name="l", steps=[save], on_error="skip")
