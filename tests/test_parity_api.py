"""The reference API's import paths, names and constructors (issue 10, items 1, 2, 8 and 10), through
kern's public API, on SQLite and PostgreSQL wherever a run is stored."""

from __future__ import annotations

import asyncio
import importlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from kern.db.base import BaseDb
from kern.run.base import RunStatus
from kern.workflow import Condition, Loop, Parallel, Router, Step, Steps, Workflow
from kern.workflow.types import HumanReview, OnReject, StepInput, StepOutput, UserInputField
from tests.conftest import PG_URL, require_postgres, unique
from tests.openai_stub import FakeOpenAI, call, text

ROOT = Path(__file__).resolve().parent.parent


def ok(step_input: StepInput) -> str:
    return f"ok<{step_input.previous_step_content}>"


# ----- item 1: import paths ---------------------------------------------------------------------------
def test_documented_import_paths_are_the_one_implementation() -> None:
    from kern.agent import RunRequirement as AgentRunRequirement
    from kern.agent import ToolExecution as AgentToolExecution
    from kern.db.postgres import AsyncPostgresDb, PostgresDb
    from kern.db.sqlite import AsyncSqliteDb
    from kern.models.message import Message
    from kern.models.openai import OpenAIChat, OpenAIResponses
    from kern.models.openai.chat import OpenAIChat as ChatFromModule
    from kern.models.openai.responses import OpenAIResponses as ResponsesFromModule
    from kern.models.response import ToolExecution
    from kern.run.agent import RunOutput, RunPausedEvent
    from kern.run.requirement import RunRequirement
    from kern.run.requirement import StepRequirement as RunStepRequirement
    from kern.run.team import RunPausedEvent as TeamRunPausedEvent
    from kern.run.team import TeamRunOutput
    from kern.tools import tool as tools_tool
    from kern.tools.decorator import tool
    from kern.workflow.types import ErrorRequirement, StepRequirement, StepType

    # thin modules: each name is the one implementation, never a copy
    assert StepRequirement is RunStepRequirement
    assert issubclass(ErrorRequirement, StepRequirement)
    assert RunRequirement is AgentRunRequirement
    assert ToolExecution is AgentToolExecution
    assert tool is tools_tool
    assert TeamRunOutput is RunOutput and issubclass(TeamRunPausedEvent, RunPausedEvent)  # a team class
    assert ResponsesFromModule is OpenAIResponses and ChatFromModule is OpenAIChat
    assert issubclass(AsyncPostgresDb, PostgresDb)
    assert AsyncSqliteDb.__module__ == "kern.db.sqlite.async_sqlite"
    assert [s.value for s in StepType] == [
        "Function",
        "Step",
        "Steps",
        "Loop",
        "Parallel",
        "Condition",
        "Router",
        "Workflow",
    ]
    assert StepType.ROUTER == "Router"
    message = Message(role="user", content="hi")
    assert Message.from_dict(message.to_dict()) == message
    for module, name in (("kern.db.sqlite", "Nope"), ("kern.run.requirement", "Nope"), ("kern.workflow.types", "X")):
        with pytest.raises(ImportError):
            exec(f"from {module} import {name}")
        assert importlib.import_module(module)


def test_documented_imports_in_a_fresh_interpreter() -> None:
    """The lazily resolved names import in either order in a new process (no import cycle)."""
    script = (
        "from kern.run.requirement import RunRequirement\n"
        "from kern.workflow.types import StepRequirement, ErrorRequirement, StepType\n"
        "from kern.db.sqlite import AsyncSqliteDb\n"
        "from kern.db.postgres import AsyncPostgresDb\n"
        "import kern.run.team, kern.models.openai.responses, kern.models.message, kern.tools.decorator\n"
        "print('ok')\n"
    )
    for first in ("import kern.workflow.types\n", "import kern.run.agent\n", "import kern.run.requirement\n", ""):
        out = subprocess.run(
            [sys.executable, "-c", first + script], cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def test_team_run_through_kern_run_team(db: BaseDb, server: FakeOpenAI) -> None:
    """The documented team streaming pattern: isinstance(event, TeamRunPausedEvent), then continue."""
    from kern.agent import Agent
    from kern.models.message import Message
    from kern.models.openai.responses import OpenAIResponses
    from kern.run.team import RunPausedEvent as TeamRunPausedEvent
    from kern.run.team import TeamRunOutput
    from kern.team import Team
    from kern.tools.decorator import tool

    deployed: list[str] = []

    @tool(requires_confirmation=True)
    def deploy(app_name: str) -> str:
        """Deploy an app."""
        deployed.append(app_name)
        return f"deployed {app_name}"

    server._script.clear()
    server.script(
        call("delegate_task_to_member", member_name="Ops", task="deploy web"),
        call("deploy", app_name="web"),
        text("Ops: done"),
        text("Team: web is live"),
    )
    model = lambda: OpenAIResponses(id="m", base_url=server.base_url, api_key="test")  # noqa: E731
    team = Team(
        name=unique("team"), members=[Agent(name="Ops", model=model(), tools=[deploy], db=db)], model=model(), db=db
    )
    paused = [e for e in team.run("Deploy web", stream=True) if isinstance(e, TeamRunPausedEvent)]
    assert len(paused) == 1 and paused[0].active_requirements[0].member_agent_name == "Ops"
    for requirement in paused[0].active_requirements:
        requirement.confirm()
    done = team.continue_run(run_id=paused[0].run_id, requirements=paused[0].requirements)
    assert isinstance(done, TeamRunOutput) and done.status == RunStatus.completed
    assert done.content == "Team: web is live" and deployed == ["web"]
    assert Message.from_dict(done.messages[-1]).role == "assistant"


# ----- item 2: RunStatus lower-case names -------------------------------------------------------------
def test_run_status_lower_case_names_are_aliases() -> None:
    pairs = {
        "pending": "PENDING",
        "running": "RUNNING",
        "paused": "PAUSED",
        "completed": "COMPLETED",
        "cancelled": "CANCELLED",
        "error": "ERROR",
    }
    for lower, upper in pairs.items():
        member = getattr(RunStatus, lower)
        assert member is getattr(RunStatus, upper) and member.value == upper and member == upper
    assert [m.name for m in RunStatus] == list(pairs.values())  # each status listed once
    assert RunStatus("completed") is RunStatus.completed and RunStatus.completed.is_final


def test_run_status_lower_case_names_on_runs(db: BaseDb) -> None:
    wf = Workflow(name=unique("status"), db=db, steps=[Step(name="gate", executor=ok, requires_confirmation=True)])
    out = wf.run("x")
    assert out.status == RunStatus.paused and wf.get_run(out.run_id).status is RunStatus.paused
    out.steps_requiring_confirmation[0].confirm()
    assert wf.continue_run(out).status == RunStatus.completed

    async def run_async() -> None:
        out = await wf.arun("y")
        assert out.status is RunStatus.paused
        out.step_requirements[-1].reject()
        out = await wf.acontinue_run(out)
        assert out.status is RunStatus.completed  # on_reject=skip: the run goes on without the step

    asyncio.run(run_async())


# ----- item 8: construction and configuration ---------------------------------------------------------
FLAT = (
    "requires_confirmation",
    "confirmation_message",
    "requires_user_input",
    "user_input_message",
    "user_input_schema",
    "requires_output_review",
    "output_review_message",
    "requires_iteration_review",
    "iteration_review_message",
    "on_reject",
    "on_error",
    "hitl_max_retries",
    "hitl_timeout",
    "on_timeout",
)


def settings(node: object) -> dict[str, object]:
    return {name: getattr(node, name) for name in FLAT}


def test_flat_settings_are_attributes_of_every_primitive() -> None:
    step = Step(
        name="s",
        executor=ok,
        requires_output_review=True,
        output_review_message="Look",
        on_reject="retry",
        hitl_max_retries=2,
        hitl_timeout=60,
        on_timeout="approve",
    )
    assert step.requires_output_review is True and step.output_review_message == "Look"
    assert step.on_reject is OnReject.retry and step.hitl_max_retries == 2 and step.hitl_timeout == 60
    assert step.on_timeout == "approve" and step.requires_confirmation is False and step.on_error is None
    inner = [Step(name="i", executor=ok)]
    review = HumanReview(requires_confirmation=True, confirmation_message="Go?")
    for node in (
        Loop(name="l", steps=inner, max_iterations=1, human_review=review),
        Router(name="r", selector=lambda _i: inner, choices=inner, human_review=review),
        Condition(name="c", evaluator=True, steps=inner, human_review=review),
        Steps(name="ss", steps=inner, human_review=review),
        Parallel(*inner, name="p", human_review=review),
    ):
        assert node.requires_confirmation is True and node.confirmation_message == "Go?", node
    assert (
        Condition(name="c2", evaluator=True, steps=inner, requires_confirmation=True).on_reject is OnReject.else_branch
    )

    # written through human_review, validated as at construction; a refused change changes nothing
    step.confirmation_message = "Sure?"
    step.requires_confirmation = True
    assert step.human_review.requires_confirmation and step.human_review.confirmation_message == "Sure?"
    cond = Condition(name="c3", evaluator=True, steps=inner)
    with pytest.raises(ValueError, match="requires_output_review is not supported on Condition"):
        cond.requires_output_review = True
    with pytest.raises(ValueError, match="Invalid on_reject"):
        step.on_reject = "explode"
    assert cond.requires_output_review is False and step.on_reject is OnReject.retry


def test_a_run_never_changes_the_primitives_settings(db: BaseDb) -> None:
    drafts: list[str] = []

    def draft(step_input: StepInput) -> str:
        drafts.append(step_input.additional_data.get("rejection_feedback") or "")
        return f"draft {len(drafts)}"

    review = Step(
        name="draft", executor=draft, requires_output_review=True, on_reject=OnReject.retry, hitl_max_retries=3
    )
    gate = Step(name="gate", executor=ok, requires_confirmation=True, on_reject="skip", hitl_timeout=300)
    loop = Loop(name="loop", steps=[Step(name="tick", executor=ok)], max_iterations=2, requires_confirmation=True)
    nodes = [review, gate, loop]
    before = [(settings(n), n.human_review.to_dict()) for n in nodes]
    wf = Workflow(name=unique("frozen"), db=db, steps=nodes)
    out = wf.run("x")
    out.step_requirements[-1].reject(feedback="shorter")
    out = wf.continue_run(out)
    out.step_requirements[-1].confirm()
    out = wf.continue_run(out)
    out.step_requirements[-1].on_reject = "cancel"  # the requirement's own copy, not the primitive's
    out.step_requirements[-1].reject()
    out = wf.continue_run(out)
    assert out.status == RunStatus.cancelled and drafts == ["", "shorter"]
    assert [(settings(n), n.human_review.to_dict()) for n in nodes] == before


def test_step_max_retries(db: BaseDb) -> None:
    calls: list[int] = []

    def flaky(step_input: StepInput) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return "fetched"

    wf = Workflow(name=unique("retries"), db=db, steps=[Step(name="fetch", executor=flaky, max_retries=2)])
    out = wf.run("x")
    assert out.status == RunStatus.completed and out.content == "fetched" and len(calls) == 3
    assert Step(name="d", executor=ok).max_retries == 0  # kern's default: no automatic re-run (docs/differences.md)
    with pytest.raises(ValueError, match="max_retries"):
        Step(name="neg", executor=ok, max_retries=-1)

    async def exhausted() -> None:
        calls.clear()
        wf2 = Workflow(name=unique("retries"), db=db, steps=[Step(name="fetch", executor=flaky, max_retries=1)])
        out = await wf2.arun("x")
        assert out.status == RunStatus.error and "attempt 2 failed" in (out.error or "") and len(calls) == 2

    asyncio.run(exhausted())


def test_step_max_retries_then_on_error_pause(db: BaseDb) -> None:
    calls: list[int] = []

    def flaky(step_input: StepInput) -> str:
        calls.append(1)
        if len(calls) < 4:
            raise RuntimeError(f"attempt {len(calls)} failed")
        return "fetched"

    name = unique("retries")
    steps = [Step(name="fetch", executor=flaky, max_retries=1, on_error="pause")]
    out = Workflow(name=name, db=db, steps=steps).run("x")
    assert out.is_paused and len(calls) == 2  # one automatic retry, then the pause
    err = out.steps_with_errors[0]
    assert "attempt 2 failed" in (err.error or "")
    err.retry()
    fresh = Workflow(name=name, db=db, steps=[Step(name="fetch", executor=flaky, max_retries=1, on_error="pause")])
    out = fresh.continue_run(out)
    assert out.status == RunStatus.completed and len(calls) == 4  # attempts 3 (failed) and 4, replay ran none twice


def test_requirement_on_reject_takes_a_plain_string(db: BaseDb) -> None:
    name = unique("onreject")
    steps = [Step(name="gate", executor=ok, requires_confirmation=True), Step(name="after", executor=ok)]
    wf = Workflow(name=name, db=db, steps=steps)
    out = wf.run("x")
    req = out.steps_requiring_confirmation[0]
    assert req.on_reject is OnReject.skip
    with pytest.raises(ValueError, match="Invalid on_reject 'nope'"):
        req.on_reject = "nope"
    req.on_reject = "cancel"
    assert req.on_reject is OnReject.cancel and req.to_dict()["on_reject"] == "cancel"
    req.reject()
    out = Workflow(name=name, db=db, steps=steps).continue_run(out)
    assert out.status == RunStatus.cancelled

    # without the override the configured skip applies: the run goes on
    second = wf.run("y")
    second.step_requirements[-1].reject()
    assert wf.continue_run(second).status == RunStatus.completed


def test_user_input_field_types_as_documented(db: BaseDb) -> None:
    spelled = {
        "str": "str",
        str: "str",
        "string": "str",
        "int": "int",
        int: "int",
        "integer": "int",
        Optional[int]: "int",  # noqa: UP045
        "float": "float",
        float: "float",
        "number": "float",
        "bool": "bool",
        bool: "bool",
        "boolean": "bool",
        "list": "list",
        list: "list",
        list[str]: "list",
        "array": "list",
        "dict": "dict",
        dict: "dict",
        dict[str, int]: "dict",
        "object": "dict",
    }
    for given, name in spelled.items():
        assert UserInputField(name="f", field_type=given).field_type == name, given
    with pytest.raises(ValueError, match="field_type 'date' is not supported"):
        UserInputField(name="when", field_type="date")

    def use(step_input: StepInput) -> str:
        data = step_input.additional_data["user_input"]
        return f"{data['threshold'] * 2} {data['tags']}"

    schema = [UserInputField(name="threshold", field_type=float), UserInputField(name="tags", field_type=list[str])]
    wf = Workflow(
        name=unique("fields"),
        db=db,
        steps=[Step(name="p", executor=use, requires_user_input=True, user_input_schema=schema)],
    )
    out = wf.run("x")
    out.steps_requiring_user_input[0].set_user_input(threshold="1.5", tags=["a"])
    assert wf.continue_run(out).content == "3.0 ['a']"


def test_sqlite_db_file_creates_its_folder(tmp_path: Path) -> None:
    from kern.db.sqlite import AsyncSqliteDb, SqliteDb

    for cls, where in ((SqliteDb, tmp_path / "a" / "b" / "x.db"), (AsyncSqliteDb, tmp_path / "c" / "y.db")):
        db = cls(db_file=str(where))
        wf = Workflow(name=unique("folder"), db=db, steps=[Step(name="s", executor=ok)])
        assert wf.run("x").status == RunStatus.completed
        assert where.is_file()


def test_documented_classes_construct_and_round_trip() -> None:
    from kern.run.workflow import WorkflowRunOutput
    from kern.workflow.types import ErrorRequirement, StepRequirement

    output = StepOutput(
        content={"k": 1},
        step_name="s",
        step_id="s-1",
        executor_type="function",
        executor_name="fn",
        step_run_id="r1",
        metrics={"ms": 3},
    )
    assert StepOutput().success is True and StepOutput().stop is False and StepOutput().step_id is None
    assert StepOutput.from_dict(output.to_dict()) == output

    error = ErrorRequirement(
        step_id="0", step_name="fetch", step_index=0, error_message="boom", error_type="RuntimeError"
    )
    assert error.requires_error_resolution and error.error_message == "boom" and error.decision is None
    assert error.retry_count == 0 and error.step_input is None
    error.retry()
    again = ErrorRequirement.from_dict(error.to_dict())
    assert isinstance(again, ErrorRequirement) and again.to_dict() == error.to_dict() and again.decision == "retry"
    with pytest.raises(ValueError, match="decision"):
        ErrorRequirement(step_id="0", decision="maybe")

    req = StepRequirement(step_name="gate", kind="confirmation", on_reject="cancel")
    assert req.on_reject is OnReject.cancel
    assert StepRequirement.from_dict(req.to_dict()) == req

    run = WorkflowRunOutput(content="done", status="COMPLETED", step_results=[output], step_requirements=[req, error])
    assert run.run_id and run.session_id and WorkflowRunOutput().status == RunStatus.pending
    back = WorkflowRunOutput.from_dict(run.to_dict())
    assert back.to_dict() == run.to_dict()


# ----- item 10: AsyncSqliteDb, and AsyncPostgresDb ----------------------------------------------------
def test_async_sqlite_db_runs_pauses_and_continues(tmp_path: Path) -> None:
    from kern.db.async_engine import AsyncEngineDb
    from kern.db.postgres import PostgresDb
    from kern.db.sqlite import AsyncSqliteDb

    db = AsyncSqliteDb(db_file=tmp_path / "data" / "kern.db", session_table="ignored")
    # the same store path as PostgresDb: an async engine plus run_sync, configured per dialect
    assert isinstance(db, AsyncEngineDb) and issubclass(PostgresDb, AsyncEngineDb)
    name = unique("aiosqlite")
    steps = [Step(name="a", executor=ok), Step(name="gate", executor=ok, requires_confirmation=True)]
    out = Workflow(name=name, db=db, steps=steps).run("x")
    assert out.is_paused
    # another store object on the same file (another "process") loads, resolves and continues it
    other = AsyncSqliteDb(db_url=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'kern.db'}")
    loaded = Workflow(name=name, db=other, steps=steps).get_run(out.run_id)
    loaded.step_requirements[-1].confirm()
    done = Workflow(name=name, db=other, steps=steps).continue_run(loaded)
    assert done.status == RunStatus.completed and done.content == "ok<ok<None>>"
    with sqlite3.connect(tmp_path / "data" / "kern.db") as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    async def concurrent() -> None:
        wf = Workflow(name=name, db=db, steps=steps)
        outs = await asyncio.gather(*(wf.arun(f"r{i}") for i in range(8)))  # writers queue on BEGIN IMMEDIATE
        for o in outs:
            o.step_requirements[-1].confirm()
        finals = await asyncio.gather(*(wf.acontinue_run(o) for o in outs))
        assert [f.status for f in finals] == [RunStatus.completed] * 8
        await db.close()

    asyncio.run(concurrent())


def test_async_sqlite_db_in_memory() -> None:
    from kern.db.sqlite import AsyncSqliteDb

    db = AsyncSqliteDb()
    steps = [Step(name="gate", executor=ok, requires_confirmation=True)]
    wf = Workflow(name=unique("mem"), db=db, steps=steps)
    out = wf.run("x")
    out.step_requirements[-1].confirm()
    assert wf.continue_run(out).status == RunStatus.completed

    async def from_another_loop() -> None:  # a new loop gets its own engine on the same database
        assert (await wf.aget_run(out.run_id)).status == RunStatus.completed
        await db.close()

    asyncio.run(from_another_loop())
    assert wf.get_run(out.run_id).status == RunStatus.completed


def test_async_postgres_db_documented_constructor(tmp_path: Path) -> None:
    require_postgres()
    from sqlalchemy.ext.asyncio import create_async_engine

    from kern.db.postgres import AsyncPostgresDb

    url = PG_URL.replace("postgresql://", "postgresql+psycopg_async://")
    for db in (
        AsyncPostgresDb(db_url=url, id="main", db_schema="ai", session_table="sessions"),
        AsyncPostgresDb(db_engine=create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))),
    ):
        name = unique("apg")
        steps = [Step(name="gate", executor=ok, requires_confirmation=True)]
        out = Workflow(name=name, db=db, steps=steps).run("x")
        out.step_requirements[-1].confirm()
        assert Workflow(name=name, db=db, steps=steps).continue_run(out).status == RunStatus.completed
    with pytest.raises(ValueError, match="db_url or db_engine"):
        AsyncPostgresDb()


def test_pause_cycle_bench_runs_on_async_sqlite() -> None:
    out = subprocess.run(
        [sys.executable, "bench/pause_cycle.py", "--db", "async-sqlite", "--runs", "3", "--warmup", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1].startswith("pause_cycle async-sqlite: median_ms=")
