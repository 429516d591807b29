"""A value a person gives that the store could not write and read back (an integer of 5,000 digits, NaN,
infinity) is refused at once, naming the field, and changes nothing: before this, `set_user_input` took
it, the run was saved, and `get_run` raised for everyone afterwards (issue 24, item 26)."""

from __future__ import annotations

from typing import Any

import pytest

from kern import RequirementNotResolvedError
from kern._sync import run_sync
from kern.agent import Agent
from kern.db.base import BaseDb
from kern.tools import UserInputTools
from kern.workflow import RunStatus, Step, UserInputField, Workflow
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results

HUGE = 10**5000  # 5,001 digits: Python reads back at most 4,300


def stored(db: BaseDb, run_id: str) -> tuple[int, str, Any]:
    row = run_sync(db.load_run(run_id))
    return row.version, row.status, row.output["step_requirements"]


def asking(db: BaseDb, seen: list[Any], schema: list[UserInputField] | None) -> Workflow:
    step = Step(
        name="order",
        executor=lambda s: seen.append(s.additional_data["user_input"]) or "ordered",
        requires_user_input=True,
        user_input_schema=schema,
    )
    return Workflow(name=unique("unstorable"), db=db, steps=[step])


BAD: list[tuple[str, str, Any, str]] = [
    ("int", "count", HUGE, r"count: an integer of more than 4,000 digits cannot be stored"),
    ("int", "count", "7" * 5000, r"count: an integer of more than 4,000 digits cannot be stored"),
    ("float", "ratio", float("nan"), r"ratio: nan cannot be stored"),
    ("float", "ratio", "1e400", r"ratio: inf cannot be stored"),
    ("float", "ratio", float("-inf"), r"ratio: -inf cannot be stored"),
    ("list", "items", [1, [2, HUGE]], r"items: an integer of more than 4,000 digits"),
    ("dict", "extra", {"a": {"b": float("inf")}}, r"extra: inf cannot be stored"),
]


@pytest.mark.parametrize(("field_type", "name", "value", "message"), BAD, ids=[f"{b[0]}{i}" for i, b in enumerate(BAD)])
def test_set_user_input_refuses_what_cannot_be_read_back(
    db: BaseDb, field_type: str, name: str, value: Any, message: str
) -> None:
    seen: list[Any] = []
    wf = asking(db, seen, [UserInputField(name=name, field_type=field_type)])
    out = wf.run("x")
    before = stored(db, out.run_id)
    req = out.step_requirements[-1]
    with pytest.raises(ValueError, match=message):
        req.set_user_input(**{name: value}, by="carol")
    assert req.user_input is None and not req.is_resolved and req.resolved_by is None
    with pytest.raises(RequirementNotResolvedError):
        wf.continue_run(out)
    assert stored(db, out.run_id) == before
    assert wf.get_run(out.run_id).is_paused  # still readable, by everyone
    good = {"int": 4, "float": 0.5, "list": [1, 10**3999], "dict": {"a": 1}}[field_type]
    req.set_user_input(**{name: good})
    done = wf.continue_run(out)
    assert done.status == RunStatus.COMPLETED and seen == [{name: good}]
    assert wf.get_run(out.run_id).step_requirements[-1].user_input == {name: good}


def test_without_a_schema_every_value_is_checked(db: BaseDb) -> None:
    seen: list[Any] = []
    wf = asking(db, seen, None)
    out = wf.run("x")
    before = stored(db, out.run_id)
    req = out.step_requirements[-1]
    with pytest.raises(ValueError, match=r"step 'order': note: .*4,000 digits"):
        req.set_user_input(note=HUGE, ok="fine")
    assert not req.is_resolved and stored(db, out.run_id) == before
    req.set_user_input(note=12, ok="fine")
    assert wf.continue_run(out).status == RunStatus.COMPLETED and seen == [{"note": 12, "ok": "fine"}]


def test_provide_user_input_refuses_what_cannot_be_read_back(
    db: BaseDb, server: FakeOpenAI, model_factory: Any
) -> None:
    fields = [{"field_name": "copies", "field_type": "int"}, {"field_name": "ratio", "field_type": "float"}]
    server.script(call("get_user_input", user_input_fields=fields), echo_tool_results)
    agent = Agent(name=unique("asker"), model=model_factory(), tools=[UserInputTools()], db=db)
    run = agent.run("send a letter")
    req = run.active_requirements[0]
    before = run_sync(db.load_run(run.run_id))
    with pytest.raises(ValueError, match=r"copies: an integer of more than 4,000 digits.*ratio: nan cannot be stored"):
        req.provide_user_input({"copies": HUGE, "ratio": float("nan")})
    assert not req.tool_execution.answered
    after = run_sync(db.load_run(run.run_id))
    assert (after.version, after.output, after.journal) == (before.version, before.output, before.journal)
    assert agent.get_run(run.run_id).is_paused  # still readable
    req.provide_user_input({"copies": "2", "ratio": "0.5"})
    assert agent.continue_run(run_response=run).content == 'Final: {"copies": 2, "ratio": 0.5}'
