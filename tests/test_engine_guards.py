"""Engine guards: route selection refuses what is not a route, user code cannot swallow a pause, a stale
caller changes nothing, and `allowed_values` holds. Each test fails when its protection is removed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kern import RequirementNotResolvedError, RunAlreadyResumedError
from kern._sync import run_sync
from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIResponses
from kern.tools import tool
from kern.workflow import (
    Condition,
    Loop,
    Parallel,
    Router,
    RunStatus,
    Step,
    StepInput,
    UserInputField,
    Workflow,
)
from kern.workflow.engine import Cancel, Pause, StepFailed
from kern.workflow.executor_scope import ExecutorPaused
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, text, tool_results

sent: list[str] = []


@tool(requires_confirmation=True)
def send_alert(city: str) -> str:
    """Send a weather alert.

    Args:
        city: The city to alert.
    """
    sent.append(city)
    return f"Alert sent for {city}"


def row(db: BaseDb, run_id: str) -> dict[str, Any]:
    """What the database holds for a run: the fields a refused call must leave as they are."""
    stored = run_sync(db.load_run(run_id))
    return {
        "version": stored.version,
        "status": stored.status,
        "requirements": stored.output["step_requirements"],
        "journal": stored.journal,
    }


# ----- route selection -----------------------------------------------------------------------------------
def routed(db: BaseDb, log: list[str]) -> Workflow:
    def route(name: str) -> Step:
        return Step(name=name, executor=lambda s: log.append(name) or f"{name} ran")

    return Workflow(
        name=unique("route"),
        db=db,
        steps=[Router(name="pick", choices=[route("fast"), route("slow")], requires_user_input=True)],
    )


@pytest.mark.parametrize("bad", [None, 3, [None], ["fast", None], {"fast": 1}])
def test_select_refuses_what_is_not_a_route(tmp_path, bad: Any) -> None:
    from kern.db.sqlite import SqliteDb

    wf = routed(SqliteDb(db_file=tmp_path / "k.db"), [])
    req = wf.run("x").step_requirements[-1]
    with pytest.raises(ValueError, match=r"Choices: fast, slow"):
        req.select(bad)
    assert req.selected_choices is None and req.status == "pending" and not req.is_resolved


def test_unknown_route_set_directly_is_refused_and_changes_nothing(db: BaseDb) -> None:
    log: list[str] = []
    wf = routed(db, log)
    out = wf.run("x")
    before = row(db, out.run_id)
    out.step_requirements[-1].selected_choices = ["medium"]
    with pytest.raises(ValueError, match=r"'medium'.*Choices: fast, slow"):
        wf.continue_run(out)
    assert row(db, out.run_id) == before and before["status"] == "PAUSED"
    assert run_sync(db.audit_log(run_id=out.run_id)) == []
    # the same run continues once the selection is right
    out.step_requirements[-1].selected_choices = None
    out.step_requirements[-1].select("slow")
    done = wf.continue_run(out)
    assert done.status == RunStatus.COMPLETED and done.content == "slow ran" and log == ["slow"]


def test_two_routes_set_directly_on_a_single_route_router_are_refused(db: BaseDb) -> None:
    wf = routed(db, [])
    out = wf.run("x")
    before = row(db, out.run_id)
    out.step_requirements[-1].selected_choices = ["fast", "slow"]
    with pytest.raises(ValueError, match="takes one route"):
        wf.continue_run(run_id=out.run_id, step_requirements=[out.step_requirements[-1]])
    assert row(db, out.run_id) == before


# ----- control flow is not an Exception ----------------------------------------------------------------------
def test_signals_are_not_exceptions() -> None:
    for signal in (Pause, Cancel, StepFailed, ExecutorPaused):
        assert issubclass(signal, BaseException) and not issubclass(signal, Exception), signal


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def agent(server: FakeOpenAI, db: BaseDb) -> Agent:
    server._script.clear()
    server.requests.clear()
    sent.clear()
    server.script(call("send_alert", city="Oslo"), lambda body: text(f"Done: {tool_results(body)[-1]}"))
    model = OpenAIResponses(id="m", base_url=server.base_url, api_key="t")
    return Agent(name=unique("alerter"), model=model, tools=[send_alert], db=db)


def swallowing(agent: Agent, *, asynchronous: bool) -> Step:
    """An executor that wraps its agent call in `except Exception` (as user code does)."""

    def sync_run(step_input: StepInput) -> str:
        try:
            return agent.run("alert Oslo").content
        except Exception:
            return "swallowed"

    async def async_run(step_input: StepInput) -> str:
        try:
            return (await agent.arun("alert Oslo")).content
        except Exception:
            return "swallowed"

    return Step(name="alert", executor=async_run if asynchronous else sync_run)


def after(log: list[str]) -> Step:
    return Step(name="after", executor=lambda s: log.append("after") or f"after<{s.previous_step_content}>")


SHAPES: dict[str, Callable[[Step, list[str]], list[Any]]] = {
    "top": lambda step, log: [step, after(log)],
    "in a condition": lambda step, log: [Condition(name="c", evaluator=True, steps=[step]), after(log)],
    "in a loop": lambda step, log: [Loop(name="l", steps=[step], max_iterations=1), after(log)],
    "in a parallel branch": lambda step, log: [
        Parallel(step, Step(name="other", executor=lambda s: "other ok"), name="p"),
        after(log),
    ],
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_except_exception_does_not_swallow_a_tool_pause(
    db: BaseDb, agent: Agent, server: FakeOpenAI, shape: str, asynchronous: bool
) -> None:
    log: list[str] = []
    wf = Workflow(name=unique("swallow"), db=db, steps=SHAPES[shape](swallowing(agent, asynchronous=asynchronous), log))
    out = wf.run("go")
    assert out.is_paused and out.pause_kind == "executor", (out.status, out.content)
    assert log == [] and sent == []  # nothing after the paused step ran
    req = out.step_requirements[-1]
    assert req.requires_executor_input and req.step_name == "alert"
    req.executor_requirements[0].confirm()
    done = wf.continue_run(out)
    assert done.status == RunStatus.COMPLETED, done.content
    assert sent == ["Oslo"] and log == ["after"]
    assert "Done: Alert sent for Oslo" in done.content and "swallowed" not in done.content
    assert server.remaining == 0


def test_user_errors_are_still_step_errors(db: BaseDb) -> None:
    def boom(step_input: StepInput) -> str:
        raise KeyError("missing")

    wf = Workflow(name=unique("err"), db=db, steps=[Step(name="boom", executor=boom, on_error="skip"), after([])])
    done = wf.run("x")
    assert done.status == RunStatus.COMPLETED and done.step_results[0].error == "KeyError: 'missing'"


# ----- blind spots ---------------------------------------------------------------------------------------------
def test_a_stale_version_gets_run_already_resumed_and_changes_nothing(db: BaseDb) -> None:
    """A caller holding the run as it was two pauses ago: its claim must not touch the current pause,
    even one whose deadline has passed (applying it would approve the second gate)."""
    log: list[str] = []
    wf = Workflow(
        name=unique("stale"),
        db=db,
        steps=[
            Step(name="s1", executor=lambda s: log.append("s1") or "1", requires_confirmation=True),
            Step(
                name="s2",
                executor=lambda s: log.append("s2") or "2",
                requires_confirmation=True,
                hitl_timeout=0.05,
                on_timeout="approve",
            ),
        ],
    )
    first = wf.run("x")
    stale = wf.get_run(first.run_id)  # loaded by someone else, before the run moved on
    first.step_requirements[-1].confirm(by="alice")
    second = wf.continue_run(first)
    assert second.is_paused and second.paused_step_name == "s2" and log == ["s1"]
    time.sleep(0.1)  # s2's deadline passes
    before = row(db, first.run_id)
    audit_before = run_sync(db.audit_log(run_id=first.run_id))
    stale.step_requirements[-1].confirm(by="bob")
    with pytest.raises(RunAlreadyResumedError):
        wf.continue_run(stale)
    assert row(db, first.run_id) == before and before["status"] == "PAUSED"
    assert run_sync(db.audit_log(run_id=first.run_id)) == audit_before
    assert log == ["s1"]


def test_allowed_values_are_enforced_and_the_run_stays_paused(db: BaseDb) -> None:
    seen: list[Any] = []
    field = UserInputField(name="size", field_type="str", allowed_values=["S", "M"])
    wf = Workflow(
        name=unique("allowed"),
        db=db,
        steps=[
            Step(
                name="order",
                executor=lambda s: seen.append(s.additional_data["user_input"]) or "ordered",
                requires_user_input=True,
                user_input_schema=[field],
            )
        ],
    )
    out = wf.run("x")
    before = row(db, out.run_id)
    req = out.step_requirements[-1]
    with pytest.raises(ValueError, match=r"size.*'XL' is not allowed.*'S', 'M'"):
        req.set_user_input(size="XL", by="carol")
    assert req.user_input is None and not req.is_resolved and req.resolved_by is None
    with pytest.raises(RequirementNotResolvedError):
        wf.continue_run(out)
    assert row(db, out.run_id) == before and seen == []
    req.set_user_input(size="M")
    done = wf.continue_run(out)
    assert done.status == RunStatus.COMPLETED and seen == [{"size": "M"}]
