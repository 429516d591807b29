"""The smallest end-to-end proof: a paused run continues to completion on both databases."""

from __future__ import annotations

from kern.db.base import BaseDb
from kern.workflow import RunStatus, Step, StepInput, Workflow
from tests.conftest import unique


def shout(step_input: StepInput) -> str:
    return str(step_input.input).upper()


def test_pause_then_continue(db: BaseDb) -> None:
    workflow = Workflow(
        name=unique("smoke"), db=db, steps=[Step(name="shout", executor=shout, requires_confirmation=True)]
    )
    paused = workflow.run("hello")
    assert paused.is_paused and paused.paused_step_name == "shout"
    paused.steps_requiring_confirmation[0].confirm()
    done = workflow.continue_run(paused)
    assert done.status == RunStatus.COMPLETED
    assert done.content == "HELLO"
