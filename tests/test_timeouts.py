"""Deadlines: on_timeout applied by expire_due (no continue call) and by continue_run."""

from __future__ import annotations

import asyncio
import time

import pytest

import kern
from kern.db.base import BaseDb
from kern.workflow import (
    Condition,
    Loop,
    OnTimeout,
    Parallel,
    Router,
    RunStatus,
    Step,
    Steps,
    UserInputField,
    Workflow,
)
from tests.conftest import unique

LATER = 3600.0  # "now" passed to expire_due: an hour from now, so every deadline has passed


def gated(primitive: str, on_timeout: str | None, ran: list[str]) -> object:
    def mark(step_input: object) -> str:
        ran.append(primitive)
        return f"{primitive} ran"

    hitl = {"requires_confirmation": True, "hitl_timeout": 60, "on_timeout": on_timeout}
    child = Step(name="child", executor=mark)
    return {
        "Step": lambda: Step(name="gate", executor=mark, **hitl),
        "Steps": lambda: Steps(name="gate", steps=[child], **hitl),
        "Condition": lambda: Condition(name="gate", steps=[child], **hitl),
        "Loop": lambda: Loop(name="gate", steps=[child], max_iterations=1, **hitl),
        "Router": lambda: Router(name="gate", selector=lambda s: "child", choices=[child], **hitl),
        "Parallel": lambda: Parallel(child, name="gate", **hitl),
    }[primitive]()


@pytest.mark.parametrize("primitive", ["Step", "Steps", "Condition", "Loop", "Router", "Parallel"])
@pytest.mark.parametrize("on_timeout", ["approve", "reject", "skip", "cancel", None])
def test_expire_due_applies_on_timeout(db: BaseDb, primitive: str, on_timeout: str | None) -> None:
    ran: list[str] = []
    wf = Workflow(
        name=unique("timeout"),
        db=db,
        steps=[gated(primitive, on_timeout, ran), Step(name="after", executor=lambda s: "after ran")],
    )
    before = time.time()
    paused = wf.run("x")
    after = time.time()
    deadline = paused.step_requirements[-1].deadline
    # 60 s from when the pause was made, which is somewhere inside run() (measured, not assumed quick: a loaded
    # CI machine once took 26 s between the two clock reads).
    assert deadline is not None and before + 60 - 0.01 <= deadline <= after + 60 + 0.01
    assert asyncio.run(kern.expire_due(db, [wf])) == []  # nothing is due yet: nothing happens
    moved = asyncio.run(kern.expire_due(db, [wf], now=time.time() + LATER))
    assert [m.run_id for m in moved] == [paused.run_id]
    out = wf.get_run(paused.run_id)
    req = out.step_requirements[0]
    assert req.timed_out and req.status == "timed_out"
    if on_timeout == "approve":
        assert out.status == RunStatus.COMPLETED and ran == [primitive]
    elif on_timeout in ("reject", "skip"):
        assert out.status == RunStatus.COMPLETED and ran == [] and out.content == "after ran"
    else:  # cancel, and the default when on_timeout is unset
        assert out.status == RunStatus.CANCELLED and ran == []
        assert "Timed out after 60s" in out.content


def test_decision_before_deadline_wins(db: BaseDb) -> None:
    ran: list[str] = []
    wf = Workflow(name=unique("timeout"), db=db, steps=[gated("Step", "approve", ran)])
    paused = wf.run("x")
    paused.step_requirements[-1].reject(by="alice")
    wf.continue_run(paused)
    assert asyncio.run(kern.expire_due(db, [wf], now=time.time() + LATER)) == []
    out = wf.get_run(paused.run_id)
    assert ran == [] and not out.step_requirements[-1].timed_out
    assert out.step_requirements[-1].resolved_by == "alice"


def test_continue_run_applies_a_passed_deadline(db: BaseDb) -> None:
    ran: list[str] = []
    wf = Workflow(
        name=unique("timeout"),
        db=db,
        steps=[
            Step(
                name="gate",
                executor=lambda s: ran.append("x") or "ran",
                requires_confirmation=True,
                hitl_timeout=1.0,  # long enough that a loaded machine does not reach it before the first call
                on_timeout=OnTimeout.approve,
            )
        ],
    )
    paused = wf.run("x")
    with pytest.raises(kern.RequirementNotResolvedError):
        wf.continue_run(paused)  # not due yet, not resolved
    time.sleep(1.1)
    assert wf.continue_run(run_id=paused.run_id).content == "ran"
    assert wf.get_run(paused.run_id).step_requirements[-1].timed_out


def test_user_input_timeout_uses_defaults_or_rejects(db: BaseDb) -> None:
    def report(step_input: object) -> str:
        return f"report {step_input.additional_data['user_input']}"  # type: ignore[attr-defined]

    with_defaults = Workflow(
        name=unique("timeout"),
        db=db,
        steps=[
            Step(
                name="r",
                executor=report,
                requires_user_input=True,
                hitl_timeout=5,
                on_timeout="approve",
                user_input_schema=[
                    UserInputField(name="fmt", value="pdf"),
                    UserInputField(name="pages", field_type="int", required=False),
                ],
            )
        ],
    )
    run = with_defaults.run("x")
    with_defaults.expire_due(now=time.time() + LATER)
    assert with_defaults.get_run(run.run_id).content == "report {'fmt': 'pdf', 'pages': None}"

    missing = Workflow(
        name=unique("timeout"),
        db=db,
        steps=[
            Step(
                name="r",
                executor=report,
                requires_user_input=True,
                hitl_timeout=5,
                on_timeout="approve",
                user_input_schema=[UserInputField(name="fmt")],
            ),
            Step(name="after", executor=lambda s: "skipped the report"),
        ],
    )
    run = missing.run("x")
    missing.expire_due(now=time.time() + LATER)
    assert missing.get_run(run.run_id).content == "skipped the report"


async def test_concurrent_sweepers_apply_once(db: BaseDb) -> None:
    ran: list[str] = []
    wf = Workflow(name=unique("timeout"), db=db, steps=[gated("Step", "approve", ran)])
    runs = [await wf.arun("x") for _ in range(5)]
    later = time.time() + LATER
    results = await asyncio.gather(*(kern.expire_due(db, [wf], now=later) for _ in range(4)))
    assert sorted(r.run_id for batch in results for r in batch) == sorted(r.run_id for r in runs)
    assert ran == ["Step"] * 5
    for run in runs:
        assert len(await db.audit_log(run_id=run.run_id)) == 1
