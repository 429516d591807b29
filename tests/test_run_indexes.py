"""The runs table's indexes serve the sweepers' and the metrics' queries, the audit log's actor index its
query by actor; the deadline index holds only runs with a deadline (migration 0003: a pause and a resume
without one write no page of it) and the actor index only decisions that name someone (migration 0004: a
decision that names nobody writes no page of it), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.store.metrics import RUNS_BY_STATUS
from kern.db import schema
from kern.db.base import BaseDb, due_query, orphaned_query
from kern.workflow import Step, Workflow
from tests.conftest import unique


def _plan(conn: Connection, query: sa.Select[Any]) -> str:
    """The query's plan as the database would run it, as one string."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    if conn.dialect.name == "sqlite":
        return " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
    # A table of a few rows is cheapest to scan: forbid scans, so an index that can answer is used.
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    return " | ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}"))


async def test_sweeper_and_metrics_queries_are_answered_from_indexes(db: BaseDb) -> None:
    name = unique("indexed")
    Workflow(name=name, db=db, steps=[Step(name="s", executor=lambda _: "x", requires_confirmation=True)])
    await db.run_transaction(lambda conn: None)  # the tables exist

    def plans(conn: Connection) -> dict[str, str]:
        return {
            "due": _plan(conn, due_query([name], 1e12, 100)),
            "orphaned": _plan(conn, orphaned_query([name], 1e12, 100)),
            "by_status": _plan(conn, RUNS_BY_STATUS),
            "by_actor": _plan(conn, sa.select(schema.audit).where(schema.audit.c.actor == "U1").order_by("id")),
        }

    found = await db.run_transaction(plans, write=False)
    assert "ix_kern_runs_due" in found["due"], found["due"]
    assert "ix_kern_runs_lease" in found["orphaned"], found["orphaned"]
    assert "ix_kern_runs_" in found["by_status"], found["by_status"]  # counted from an index, not the rows
    assert "ix_kern_audit_actor" in found["by_actor"], found["by_actor"]
    await db.close()


@pytest.mark.parametrize(
    ("index", "predicate"),
    [("ix_kern_runs_due", "deadline IS NOT NULL"), ("ix_kern_audit_actor", "actor IS NOT NULL")],
)
async def test_the_index_is_partial_in_the_migrated_schema(db: BaseDb, index: str, predicate: str) -> None:
    await db.run_transaction(lambda conn: None)

    def definition(conn: Connection) -> str:
        if conn.dialect.name == "sqlite":
            sql = f"SELECT sql FROM sqlite_master WHERE name = '{index}'"
        else:
            sql = f"SELECT indexdef FROM pg_indexes WHERE indexname = '{index}' AND schemaname = current_schema()"
        return str(conn.exec_driver_sql(sql).scalar_one())

    found = await db.run_transaction(definition, write=False)
    assert predicate in found.replace("(", "").replace(")", ""), found
    await db.close()
