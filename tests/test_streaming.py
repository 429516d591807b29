"""Streamed events, sync and async."""

from __future__ import annotations

from kern.db.base import BaseDb
from kern.run.workflow import (
    ConditionCompletedEvent,
    ConditionStartedEvent,
    RouterPausedEvent,
    StepCompletedEvent,
    StepContinuedEvent,
    StepErrorEvent,
    StepOutputReviewEvent,
    StepPausedEvent,
    StepStartedEvent,
    WorkflowCancelledEvent,
    WorkflowCompletedEvent,
    WorkflowPausedEvent,
    WorkflowStartedEvent,
)
from kern.workflow import Condition, OnError, OnReject, Router, Step, Workflow
from tests.conftest import unique


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_sync_stream_with_events(db: BaseDb) -> None:
    wf = Workflow(
        name=unique("stream"),
        db=db,
        steps=[
            Step(name="a", executor=lambda s: "A"),
            Condition(name="c", evaluator=True, steps=[Step(name="b", executor=lambda s: "B")]),
            Step(name="gate", executor=lambda s: "G", requires_confirmation=True),
        ],
    )
    events = list(wf.run("x", stream=True, stream_events=True))
    assert isinstance(events[0], WorkflowStartedEvent)
    assert kinds(events[1:]) == [
        "StepStartedEvent",
        "StepOutputEvent",
        "StepCompletedEvent",
        "ConditionStartedEvent",
        "StepStartedEvent",
        "StepOutputEvent",
        "StepCompletedEvent",
        "ConditionCompletedEvent",
        "StepStartedEvent",
        "StepPausedEvent",
        "WorkflowPausedEvent",
    ]
    assert events[-2].step_name == "gate" and events[-1].requirement.step_name == "gate"
    run = wf.get_session().runs[-1]
    assert run.is_paused and run.step_requirements[-1].step_name == "gate"
    run.step_requirements[-1].confirm()
    continued = list(wf.continue_run(run, stream=True, stream_events=True))
    assert isinstance(continued[0], StepContinuedEvent) and continued[0].step_name == "gate"
    assert isinstance(continued[-1], WorkflowCompletedEvent) and continued[-1].content == "G"
    assert any(isinstance(e, StepCompletedEvent) and e.content == "G" for e in continued)


def test_stream_without_step_events_keeps_pause_events(db: BaseDb) -> None:
    wf = Workflow(
        name=unique("stream"),
        db=db,
        steps=[
            Step(name="a", executor=lambda s: "A"),
            Router(name="r", choices=[Step(name="x", executor=lambda s: "X")], requires_user_input=True),
        ],
    )
    events = list(wf.run("x", stream=True))
    assert kinds(events) == ["WorkflowStartedEvent", "RouterPausedEvent", "WorkflowPausedEvent"]
    assert not any(isinstance(e, (StepStartedEvent, ConditionStartedEvent, ConditionCompletedEvent)) for e in events)


async def test_async_stream_review_error_cancel(db: BaseDb) -> None:
    wf = Workflow(
        name=unique("stream"),
        db=db,
        steps=[
            Step(name="draft", executor=lambda s: "D", requires_output_review=True, on_reject=OnReject.cancel),
        ],
    )
    events = [e async for e in wf.arun("x", stream=True)]
    assert isinstance(events[-2], StepOutputReviewEvent) and events[-2].requirement.step_output.content == "D"
    run = (await wf.aget_session()).runs[-1]
    run.step_requirements[-1].reject(feedback="no")
    events = [e async for e in wf.acontinue_run(run, stream=True)]
    assert isinstance(events[0], StepContinuedEvent) and isinstance(events[-1], WorkflowCancelledEvent)
    assert events[-1].reason == "Step 'draft' was rejected: no"

    failing = Workflow(
        name=unique("stream"), db=db, steps=[Step(name="boom", executor=lambda s: 1 / 0, on_error=OnError.pause)]
    )
    events = [e async for e in failing.arun("x", stream=True, stream_events=True)]
    assert any(isinstance(e, StepErrorEvent) and "ZeroDivisionError" in e.error for e in events)
    assert isinstance(events[-2], StepPausedEvent) and isinstance(events[-1], WorkflowPausedEvent)
    assert not any(isinstance(e, RouterPausedEvent) for e in events)
