"""A run cancelled while a step runs, on both databases: the step's side effect is not lost without a
word (its result lands in the cancelled run's journal, an audit entry names it), and the drive is told
who cancelled, when, and which step was running, not that the run was "taken over"."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path

import pytest

from kern import LostOwnershipError, RunCancelledWhileRunningError
from kern.db.base import BaseDb
from kern.workflow import RunStatus, Step, StepInput, StepOutput, Workflow
from tests.conftest import unique


def slow_writer(side_effect: Path, started: asyncio.Event, go_on: asyncio.Event) -> Step:
    """A step that waits, then writes a file (its side effect) and returns what it wrote."""

    async def write(step_input: StepInput) -> StepOutput:
        started.set()
        await go_on.wait()
        await asyncio.sleep(0.05)
        await asyncio.to_thread(side_effect.write_text, "deployed")
        return StepOutput(content="wrote deployed")

    return Step(name="write", executor=write)


async def test_a_step_that_finishes_after_a_cancel_is_recorded_and_the_cancel_named(db: BaseDb, tmp_path: Path) -> None:
    started, go_on, after = asyncio.Event(), asyncio.Event(), []
    side_effect = tmp_path / "side-effect.txt"

    async def later(step_input: StepInput) -> StepOutput:
        after.append(step_input.previous_step_content)
        return StepOutput(content="later")

    wf = Workflow(
        name=unique("cancel-mid-step"),
        db=db,
        steps=[slow_writer(side_effect, started, go_on), Step(name="later", executor=later)],
    )
    run_id = uuid.uuid4().hex
    drive = asyncio.ensure_future(wf.arun("x", run_id=run_id))
    await asyncio.wait_for(started.wait(), 10)
    cancelled = await wf.acancel_run(run_id, by="U1")
    assert cancelled.status == RunStatus.CANCELLED
    go_on.set()  # the step in flight goes on to its side effect after the cancel
    with pytest.raises(RunCancelledWhileRunningError) as raised:
        await asyncio.wait_for(drive, 20)

    error = raised.value
    assert isinstance(error, LostOwnershipError)  # callers that stop on a lost run still do
    assert f"Run {run_id} was cancelled by U1 at " in str(error)
    assert "while step 'write' was running" in str(error) and "taken over" not in str(error)
    assert error.cancelled_by == "U1" and error.steps == ("write",)
    assert error.cancelled_at == pytest.approx(cancelled.updated_at, abs=1)

    assert side_effect.read_text() == "deployed" and after == []  # it ran; nothing after it did
    run = await wf.aget_run(run_id)
    assert run.status == RunStatus.CANCELLED and run.content == "Cancelled by U1"  # still the cancel's
    stored = await db.load_run(run_id)
    assert stored.status == "CANCELLED" and stored.journal["0"]["content"] == "wrote deployed"
    audit = await db.audit_log(run_id=run_id)
    assert [(a["decision"], a["step_name"], a["actor"]) for a in audit] == [
        ("cancel", "", "U1"),
        ("finished_after_cancel", "write", None),
    ]
    assert "finished after the run was cancelled" in audit[1]["note"]
    with pytest.raises(Exception, match="CANCELLED"):  # the recorded run stays cancelled
        await wf.acancel_run(run_id, by="U2")


async def test_a_run_taken_over_is_still_told_so(db: BaseDb, tmp_path: Path) -> None:
    """A refused write that is not a cancel (another process wrote the run) changes nothing on the run and
    keeps its plain LostOwnershipError."""
    started, go_on = asyncio.Event(), asyncio.Event()
    wf = Workflow(name=unique("taken-over"), db=db, steps=[slow_writer(tmp_path / "f", started, go_on)])
    run_id = uuid.uuid4().hex
    drive = asyncio.ensure_future(wf.arun("x", run_id=run_id))
    await asyncio.wait_for(started.wait(), 10)
    stored = await db.load_run(run_id)
    await db.save_run(stored.output, stored.journal, version=stored.version)  # another owner's write
    go_on.set()
    with pytest.raises(LostOwnershipError) as raised:
        await asyncio.wait_for(drive, 20)
    assert not isinstance(raised.value, RunCancelledWhileRunningError) and "taken over" in str(raised.value)
    assert (await db.load_run(run_id)).status == "RUNNING"
    assert await db.audit_log(run_id=run_id) == []


def test_the_sync_api_records_it_too(db: BaseDb, tmp_path: Path) -> None:
    """`Workflow.run` (sync user code inline on the call's own loop) cancelled from another thread."""
    started, go_on = threading.Event(), threading.Event()
    side_effect = tmp_path / "side-effect.txt"

    def write(step_input: StepInput) -> str:
        started.set()
        go_on.wait(20)
        side_effect.write_text("deployed")
        return "wrote deployed"

    wf = Workflow(
        name=unique("cancel-sync"),
        db=db,
        steps=[Step(name="write", executor=write), Step(name="later", executor=lambda s: "later")],
    )
    run_id = uuid.uuid4().hex
    raised: list[BaseException] = []

    def drive() -> None:
        try:
            wf.run("x", run_id=run_id)
        except BaseException as exc:  # handed to the test's thread
            raised.append(exc)

    thread = threading.Thread(target=drive)
    thread.start()
    assert started.wait(20)
    wf.cancel_run(run_id, by="U7")
    go_on.set()
    thread.join(30)
    assert len(raised) == 1 and isinstance(raised[0], RunCancelledWhileRunningError)
    assert "cancelled by U7 at " in str(raised[0]) and "while step 'write' was running" in str(raised[0])
    assert side_effect.read_text() == "deployed"
    assert wf.get_run(run_id).status == RunStatus.CANCELLED
