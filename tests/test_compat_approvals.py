"""The reference API's approval records on kern's stores (get_approvals, update_approval, ...), through the
public API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kern import RequirementNotResolvedError
from kern.agent import Agent
from kern.approval import approval
from kern.db.base import BaseDb
from kern.db.sqlite import AsyncSqliteDb
from kern.tools import tool
from tests.conftest import unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results


@approval
@tool(requires_confirmation=True)
def wipe_account(account: str) -> str:
    """Wipe an account."""
    return f"Wiped {account}"


@approval(type="audit")
@tool(external_execution=True)
def scan(target: str) -> str:
    """Scan a target."""
    return "never run here"


def _paused(db: BaseDb, server: FakeOpenAI, model_factory, account: str = "A-1") -> tuple[Agent, object]:
    server.script(call("wipe_account", account=account))
    agent = Agent(name=unique("admin"), model=model_factory(), tools=[wipe_account, scan], db=db)
    run = agent.run("wipe it")
    assert run.is_paused
    return agent, run


def test_list_get_resolve_and_continue_from_the_record(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    agent, run = _paused(db, server, model_factory)
    items, total = db.get_approvals(run_id=run.run_id, status="pending")  # type: ignore[attr-defined]
    assert total == 1 and len(items) == 1
    record = items[0]
    assert (record["source_type"], record["pause_type"], record["approval_type"]) == (
        "agent",
        "confirmation",
        "required",
    )
    assert record["session_id"] == run.session_id and record["run_status"] == "PAUSED"
    assert record["context"] == {"tool_names": ["wipe_account"], "source_name": agent.name}
    assert record["tool_args"] == {"account": "A-1"}
    assert db.get_approval(record["id"])["status"] == "pending"  # type: ignore[attr-defined]
    assert db.get_approval("no-such-id") is None  # type: ignore[attr-defined]
    assert db.get_pending_approval_count() >= 1  # type: ignore[attr-defined]

    resolved = db.update_approval(  # type: ignore[attr-defined]
        record["id"], expected_status="pending", status="approved", resolved_by="alice", resolved_at=1234
    )
    assert (resolved["status"], resolved["resolved_by"], resolved["resolved_at"]) == ("approved", "alice", 1234)
    # The compare-and-set: guarded, a second decision is None; unguarded, an error naming who decided.
    assert db.update_approval(record["id"], expected_status="pending", status="rejected", resolved_by="eve") is None  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="already approved by alice"):
        db.update_approval(record["id"], status="rejected", resolved_by="eve")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="already approved by alice"):
        asyncio.run(db.resolve_approval(record["id"], approved=False, resolved_by="eve"))
    assert db.get_approval(record["id"])["resolved_by"] == "alice"  # type: ignore[attr-defined]
    audit = [a for a in asyncio.run(db.audit_log(run_id=run.run_id)) if a["kind"] == "approval"]
    assert [(a["actor"], a["decision"]) for a in audit] == [("alice", "approved")]

    server.script(echo_tool_results)
    done = agent.continue_run(run_id=run.run_id)  # no decision given: the record decides
    assert done.content == "Final: Wiped A-1"
    assert done.metadata["approval"]["resolved_by"] == "alice"
    assert db.get_approval(record["id"])["run_status"] == "COMPLETED"  # type: ignore[attr-defined]


def test_unknown_id_bad_status_and_delete(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    _, run = _paused(db, server, model_factory)
    with pytest.raises(LookupError, match="no-such-id"):
        db.update_approval("no-such-id", expected_status="pending", status="approved")  # type: ignore[attr-defined]
    [record], _ = db.get_approvals(run_id=run.run_id)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'approved' or 'rejected'"):
        db.update_approval(record["id"], status="pending")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="never changed"):
        db.update_approval(record["id"], expected_status="approved", status="rejected")  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        db.update_approval(record["id"], status="approved", colour="red")  # type: ignore[attr-defined]
    assert db.delete_approval(record["id"]) is True  # type: ignore[attr-defined]
    assert db.delete_approval(record["id"]) is False  # type: ignore[attr-defined]
    assert db.get_approvals(run_id=run.run_id) == ([], 0)  # type: ignore[attr-defined]


def test_caller_decision_while_pending_and_record_rejection(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    agent, run = _paused(db, server, model_factory, "A-2")
    with pytest.raises(RequirementNotResolvedError, match="still pending"):
        agent.continue_run(run_id=run.run_id)
    run.active_requirements[0].confirm()
    server.script(echo_tool_results)
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert done.content == "Final: Wiped A-2"
    [record], _ = db.get_approvals(run_id=run.run_id)  # type: ignore[attr-defined]
    assert record["status"] == "pending"  # the caller decided; the record is the admin's to close

    agent, run = _paused(db, server, model_factory, "A-3")
    [record], _ = db.get_approvals(run_id=run.run_id)  # type: ignore[attr-defined]
    db.update_approval(record["id"], status="rejected", resolved_by="bob", resolution_data={"note": "no"})  # type: ignore[attr-defined]
    run.active_requirements[0].confirm()  # a decided record wins over the caller
    server.script(echo_tool_results)
    done = agent.continue_run(run_id=run.run_id, requirements=run.requirements)
    assert "rejected" in done.content and "no" in done.content


def test_filters_pages_and_audit_records(db: BaseDb, server: FakeOpenAI, model_factory) -> None:
    server.script(call("scan", target="db-1"))
    agent = Agent(name=unique("scanner"), model=model_factory(), tools=[scan], db=db)
    run = agent.run("scan")
    run.active_requirements[0].set_external_execution_result("clean")
    server.script(echo_tool_results)
    agent.continue_run(run_response=run)
    items, total = db.get_approvals(run_id=run.run_id, approval_type="audit")  # type: ignore[attr-defined]
    assert total == 1 and items[0]["status"] == "approved" and items[0]["pause_type"] == "external_execution"
    assert db.get_approvals(run_id=run.run_id, pause_type="confirmation") == ([], 0)  # type: ignore[attr-defined]
    assert db.get_approvals(run_id=run.run_id, agent_id=agent.id)[1] == 1  # type: ignore[attr-defined]
    assert db.get_approvals(schedule_id="any") == ([], 0)  # type: ignore[attr-defined]
    for account in ("P-1", "P-2", "P-3"):
        _paused(db, server, model_factory, account)
    first, total = db.get_approvals(status="pending", limit=2, page=1)  # type: ignore[attr-defined]
    second, _ = db.get_approvals(status="pending", limit=2, page=2)  # type: ignore[attr-defined]
    assert total >= 3 and len(first) == 2 and not {a["id"] for a in first} & {a["id"] for a in second}
    assert first[0]["created_at"] >= first[1]["created_at"]  # newest first
    with pytest.raises(ValueError, match="at least 1"):
        db.get_approvals(limit=0)  # type: ignore[attr-defined]


def test_async_store_has_async_methods(tmp_path: Path, server: FakeOpenAI, model_factory) -> None:
    db = AsyncSqliteDb(db_file=str(tmp_path / "a.db"))
    server.script(call("wipe_account", account="Z"))
    agent = Agent(name=unique("async"), model=model_factory(), tools=[wipe_account], db=db)

    async def main() -> None:
        run = await agent.arun("wipe")
        items, total = await db.get_approvals(status="pending")
        assert total == 1 and await db.get_pending_approval_count() == 1
        decided = await db.update_approval(items[0]["id"], expected_status="pending", status="approved")
        assert decided is not None and decided["run_id"] == run.run_id
        assert await db.delete_approval(items[0]["id"])

    asyncio.run(main())
