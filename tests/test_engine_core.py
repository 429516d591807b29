"""Core engine behaviour on both databases: every pause kind, nesting, journaling, errors."""

from __future__ import annotations

import pytest

from kern import RequirementNotResolvedError, RunNotFoundError, RunNotPausedError
from kern.db.base import BaseDb
from kern.workflow import (
    Condition,
    Loop,
    OnError,
    OnReject,
    Parallel,
    Router,
    RunStatus,
    Step,
    StepInput,
    StepOutput,
    Steps,
    UserInputField,
    Workflow,
)
from tests.conftest import unique


class Calls:
    """Counts executor calls by step name."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def step(self, name: str, **kwargs: object) -> Step:
        def run(step_input: StepInput) -> StepOutput:
            self.log.append(name)
            fb = step_input.additional_data.get("rejection_feedback")
            ui = step_input.additional_data.get("user_input")
            text = f"{name}<{step_input.previous_step_content}>"
            return StepOutput(content=text + (f"[fb={fb}]" if fb else "") + (f"[ui={ui}]" if ui else ""))

        return Step(name=name, executor=run, **kwargs)  # type: ignore[arg-type]

    def count(self, name: str) -> int:
        return self.log.count(name)


def test_confirm_reject_and_journal(db: BaseDb) -> None:
    calls = Calls()
    wf = Workflow(
        name=unique("core"),
        db=db,
        steps=[
            calls.step("a"),
            calls.step("b", requires_confirmation=True),
            calls.step("c", requires_confirmation=True),
            calls.step("d"),
        ],
    )
    out = wf.run("x")
    assert out.is_paused and out.paused_step_name == "b" and out.pause_kind == "step"
    out.steps_requiring_confirmation[0].confirm()
    out = wf.continue_run(out)
    assert out.paused_step_name == "c"
    assert [r.step_name for r in out.step_requirements] == ["b", "c"]
    assert [r.step_name for r in out.steps_requiring_confirmation] == ["c"]  # history is not listed
    out.step_requirements[-1].reject()
    out = wf.continue_run(out)
    assert out.status == RunStatus.COMPLETED
    assert out.content == "d<b<a<None>>>"  # the skipped step passes the previous content through
    assert calls.log == ["a", "b", "d"]  # nothing ran twice, c never ran


def test_unresolved_continue_changes_nothing(db: BaseDb) -> None:
    calls = Calls()
    wf = Workflow(name=unique("core"), db=db, steps=[calls.step("gate", requires_confirmation=True)])
    out = wf.run("x")
    with pytest.raises(RequirementNotResolvedError, match="gate"):
        wf.continue_run(out)
    assert wf.get_run(out.run_id).is_paused
    out.step_requirements[-1].confirm()
    assert wf.continue_run(out).status == RunStatus.COMPLETED
    with pytest.raises(RunNotPausedError):
        wf.continue_run(wf.get_run(out.run_id))
    with pytest.raises(RunNotFoundError):
        wf.continue_run(run_id="no-such-run")


def test_user_input_output_review_retry_and_max_retries(db: BaseDb) -> None:
    calls = Calls()
    wf = Workflow(
        name=unique("core"),
        db=db,
        steps=[
            calls.step("ask", requires_user_input=True, user_input_schema=[UserInputField(name="n", field_type="int")]),
            calls.step("draft", requires_output_review=True, on_reject=OnReject.retry, hitl_max_retries=1),
        ],
    )
    out = wf.run("x")
    req = out.steps_requiring_user_input[0]
    with pytest.raises(ValueError, match="n: expected int"):
        req.set_user_input(n="three")
    assert not req.is_resolved
    req.set_user_input(n="3")
    out = wf.continue_run(out)
    assert out.steps_requiring_output_review[0].step_output.content == "draft<ask<None>[ui={'n': 3}]>"
    out.step_requirements[-1].reject(feedback="shorter")
    out = wf.continue_run(out)
    assert "[fb=shorter]" in out.step_requirements[-1].step_output.content
    out.step_requirements[-1].reject(feedback="again")
    out = wf.continue_run(out)
    assert out.status == RunStatus.CANCELLED
    assert out.content == "Max retries (1) reached for step 'draft'"
    assert calls.count("draft") == 2 and calls.count("ask") == 1


def test_edit_is_not_reapplied(db: BaseDb) -> None:
    calls = Calls()
    wf = Workflow(
        name=unique("core"),
        db=db,
        steps=[
            calls.step("one", requires_output_review=True),
            calls.step("two", requires_output_review=True),
        ],
    )
    out = wf.run("x")
    out.step_requirements[-1].edit("EDITED")
    out = wf.continue_run(out)
    assert out.step_requirements[-1].step_output.content == "two<EDITED>"
    out.step_requirements[-1].confirm()
    out = wf.continue_run(out)
    assert out.content == "two<EDITED>"


def test_nested_pauses_and_parallel(db: BaseDb) -> None:
    calls = Calls()
    inner = Steps(name="inner", steps=[calls.step("deep", requires_confirmation=True)])
    wf = Workflow(
        name=unique("core"),
        db=db,
        steps=[
            Loop(
                name="loop",
                max_iterations=1,
                steps=[
                    Condition(name="cond", evaluator=True, steps=[inner]),
                ],
            ),
            Parallel(calls.step("fast"), calls.step("gated", requires_confirmation=True), name="par"),
            Router(
                name="route",
                choices=[calls.step("r1"), calls.step("r2")],
                requires_user_input=True,
                allow_multiple_selections=True,
            ),
        ],
    )
    out = wf.run("x")
    assert out.paused_step_name == "deep"  # a step four levels down pauses like a top-level one
    out.step_requirements[-1].confirm()
    out = wf.continue_run(out)
    assert out.paused_step_name == "gated" and calls.count("fast") == 1
    out.step_requirements[-1].confirm()
    out = wf.continue_run(out)
    req = out.steps_requiring_route[0]
    with pytest.raises(ValueError, match="Choices: r1, r2"):
        req.select("nope")
    req.select("r2", "r1")
    out = wf.continue_run(out)
    assert out.status == RunStatus.COMPLETED
    assert calls.log == ["deep", "fast", "gated", "r2", "r1"]


def test_error_pause_retry_and_fail(db: BaseDb) -> None:
    attempts: list[int] = []

    def flaky(step_input: StepInput) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return "ok"

    wf = Workflow(name=unique("core"), db=db, steps=[Step(name="flaky", executor=flaky, on_error=OnError.pause)])
    out = wf.run("x")
    assert out.steps_with_errors[0].error == "RuntimeError: boom"
    out.steps_with_errors[0].retry()
    assert wf.continue_run(out).content == "ok"

    ran: list[str] = []
    wf2 = Workflow(
        name=unique("core"),
        db=db,
        steps=[
            Step(name="bad", executor=lambda s: 1 / 0),
            Step(name="next", executor=lambda s: ran.append("x")),
        ],
    )
    failed = wf2.run("x")
    assert failed.status == RunStatus.ERROR and "ZeroDivisionError" in (failed.error or "")
    assert ran == []


def test_continue_from_a_new_workflow_object(db: BaseDb) -> None:
    calls = Calls()
    name = unique("core")
    steps = [calls.step("gate", requires_confirmation=True)]
    out = Workflow(name=name, db=db, steps=steps).run("x", additional_data={"k": "v"}, user_id="u1")
    other = Workflow(name=name, db=db, steps=steps)
    loaded = other.get_run(out.run_id)
    loaded.step_requirements[-1].confirm(by="alice")
    done = other.continue_run(
        run_id=out.run_id, session_id=out.session_id, step_requirements=[loaded.step_requirements[-1]]
    )
    assert done.status == RunStatus.COMPLETED
    assert done.additional_data == {"k": "v"} and done.user_id == "u1"
    assert done.step_requirements[-1].resolved_by == "alice"


def test_cancel_a_paused_run(db: BaseDb) -> None:
    calls = Calls()
    wf = Workflow(name=unique("core"), db=db, steps=[calls.step("gate", requires_confirmation=True)])
    out = wf.run("x")
    cancelled = wf.cancel_run(out.run_id, by="U1")
    assert cancelled.status == RunStatus.CANCELLED and cancelled.content == "Cancelled by U1"
    with pytest.raises(RunNotPausedError):
        wf.cancel_run(out.run_id)
    out.step_requirements[-1].confirm()
    with pytest.raises(RunNotPausedError):
        wf.continue_run(out)
    assert calls.log == []
    import asyncio

    assert [a["decision"] for a in asyncio.run(db.audit_log(run_id=out.run_id))] == ["cancel"]
