"""The stores take the reference API's constructor arguments alike (`id`, `db_engine`, `db_url`, the
`*_table` names; `db_schema` on PostgreSQL, which really holds the tables), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from kern.db.in_memory import InMemoryDb
from kern.db.json import JsonDb
from kern.db.options import TABLE_ARGUMENTS
from kern.db.postgres import AsyncPostgresDb, PostgresDb
from kern.db.sqlite import AsyncSqliteDb, SqliteDb
from kern.db.sqlite.async_sqlite import AsyncSqliteDb as AsyncSqliteFromModule
from kern.db.sqlite.sqlite import SqliteDb as SqliteFromModule
from kern.workflow import RunStatus, Step, Workflow
from kern.workflow.types import StepInput
from tests.conftest import PG_URL, require_postgres, unique


def ok(step_input: StepInput) -> str:
    return f"ok<{step_input.input}>"


def pause_and_continue(db: object) -> str:
    """A run that pauses on a confirmation, continued by a new Workflow object; its final content."""
    name = unique("store-args")
    steps = [Step(name="gate", executor=ok, requires_confirmation=True)]
    out = Workflow(name=name, db=db, steps=steps).run("x")
    assert out.is_paused
    out.step_requirements[-1].confirm()
    done = Workflow(name=name, db=db, steps=steps).continue_run(out)
    assert done.status == RunStatus.completed
    return str(done.content)


def test_every_store_lists_the_same_reference_arguments() -> None:
    for cls in (SqliteDb, AsyncSqliteDb, PostgresDb, JsonDb):
        params = inspect.signature(cls).parameters
        tables = tuple(name for name in params if name.endswith("_table"))
        assert tables == TABLE_ARGUMENTS, cls
        assert "id" in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()), cls
    for cls in (SqliteDb, AsyncSqliteDb, PostgresDb):
        assert {"db_engine", "db_url"} <= set(inspect.signature(cls).parameters), cls
    assert AsyncSqliteFromModule is AsyncSqliteDb and SqliteFromModule is SqliteDb
    assert inspect.signature(AsyncPostgresDb) == inspect.signature(PostgresDb)


@pytest.mark.parametrize("cls", [SqliteDb, AsyncSqliteDb])
def test_sqlite_stores_take_the_reference_arguments(cls: type[SqliteDb] | type[AsyncSqliteDb], tmp_path: Path) -> None:
    path = tmp_path / "data" / "kern.db"
    db = cls(db_file=str(path), session_table="sessions_x", approvals_table="approvals_x", memory_table="m")
    assert db.table_names == {"session_table": "sessions_x", "approvals_table": "approvals_x", "memory_table": "m"}
    assert pause_and_continue(db) == "ok<x>"
    # the id names where the data is: the same for a store on the same file, reached any way
    same = [
        cls(db_file=path),
        cls(db_url=f"sqlite:///{path}"),
        cls(db_engine=sa.create_engine(f"sqlite:///{path}")),
        cls(db_engine=create_async_engine(f"sqlite+aiosqlite:///{path}")),
    ]
    assert {other.id for other in same} == {db.id}
    assert all(other.db_file == str(path) for other in same)
    assert uuid.UUID(db.id) and cls(db_file=tmp_path / "other.db").id != db.id
    assert cls(db_file=path, id="main").id == "main"
    assert cls().id != cls().id  # in-memory databases are each their own
    with pytest.raises(TypeError, match="sessions_table"):
        cls(db_file=path, sessions_table="typo")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="db_engine must be a SQLAlchemy Engine"):
        cls(db_engine="sqlite:///x.db")  # type: ignore[arg-type]


def test_create_all_tables_makes_them_before_first_use(tmp_path: Path) -> None:
    for cls in (SqliteDb, AsyncSqliteDb):
        path = tmp_path / f"{cls.__name__}.db"
        db = cls(db_file=path, session_table=f"sessions_{uuid.uuid4().hex[:8]}")
        asyncio.run(db._create_all_tables())
        with sqlite3.connect(path) as raw:
            tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"kern_runs", "kern_sessions", "kern_approvals"} <= tables


def test_in_memory_db_holds_pauses_for_its_process() -> None:
    db = InMemoryDb()
    assert isinstance(db, SqliteDb) and db.db_file is None
    assert pause_and_continue(db) == "ok<x>"
    steps = [Step(name="gate", executor=ok, requires_confirmation=True)]
    name = unique("mem")
    paused = Workflow(name=name, db=db, steps=steps).run("y")
    other = InMemoryDb()  # another store is another database
    with pytest.raises(Exception, match=paused.run_id):
        Workflow(name=name, db=other, steps=steps).get_run(paused.run_id)
    assert InMemoryDb(id="mine").id == "mine"


def test_json_db_refuses_and_names_the_store_to_use(tmp_path: Path) -> None:
    with pytest.raises(NotImplementedError, match=r"SqliteDb\(db_file=.*kern\.db'\).*InMemoryDb"):
        JsonDb(db_path=str(tmp_path / "store"), session_table="workflow_session")
    with pytest.raises(TypeError, match="db_file"):
        JsonDb(db_file="x")  # type: ignore[call-arg]


# ----- PostgreSQL ---------------------------------------------------------------------------------------
async def _tables_in(schema: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        rows = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
        return {row["table_name"] for row in rows}
    finally:
        await conn.close()


async def _drop_schema(schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _run_ids_in(schema: str) -> set[str]:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        return {row["run_id"] for row in await conn.fetch(f'SELECT run_id FROM "{schema}".kern_runs')}
    finally:
        await conn.close()


def test_postgres_db_schema_holds_the_tables() -> None:
    require_postgres()
    schema = f"kern_s_{uuid.uuid4().hex[:8]}"
    try:
        db = PostgresDb(db_url=PG_URL, db_schema=schema, session_table="sessions", approvals_table="approvals")
        assert db.db_schema == schema and db.table_names == {
            "session_table": "sessions",
            "approvals_table": "approvals",
        }
        name = unique("schema")
        steps = [Step(name="gate", executor=ok, requires_confirmation=True)]
        out = Workflow(name=name, db=db, steps=steps).run("x")
        tables = asyncio.run(_tables_in(schema))
        assert {"kern_runs", "kern_sessions", "kern_audit", "kern_approvals", "kern_alembic_version"} <= tables
        assert out.run_id in asyncio.run(_run_ids_in(schema))
        # a store on the same database without the schema does not see the run; one with it continues it
        with pytest.raises(Exception, match=out.run_id):
            Workflow(name=name, db=PostgresDb(db_url=PG_URL), steps=steps).get_run(out.run_id)
        again = AsyncPostgresDb(
            db_engine=sa.create_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://")), db_schema=schema
        )
        loaded = Workflow(name=name, db=again, steps=steps).get_run(out.run_id)
        loaded.step_requirements[-1].confirm()
        assert Workflow(name=name, db=again, steps=steps).continue_run(loaded).content == "ok<x>"
        assert again.id == db.id != PostgresDb(db_url=PG_URL).id  # the id names database and schema
    finally:
        asyncio.run(_drop_schema(schema))


def test_postgres_create_schema_false_needs_the_schema() -> None:
    require_postgres()
    schema = f"kern_s_{uuid.uuid4().hex[:8]}"
    db = PostgresDb(db_url=PG_URL, db_schema=schema, create_schema=False, retry_for=0)
    with pytest.raises(ValueError, match=f"schema '{schema}' does not exist"):
        pause_and_continue(db)
    assert asyncio.run(_tables_in(schema)) == set()


def test_postgres_db_engine_and_arguments() -> None:
    require_postgres()
    for db in (
        PostgresDb(db_engine=sa.create_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://")), id="pg"),
        PostgresDb(db_engine=create_async_engine(PG_URL.replace("postgresql://", "postgresql+asyncpg://"))),
        AsyncPostgresDb(PG_URL, knowledge_table="k"),
    ):
        assert pause_and_continue(db) == "ok<x>"
    assert PostgresDb(db_url=PG_URL, id="pg").id == "pg"
    from bot.runs.jobs import _accepting_store  # kern-bot's pool of writers reaches the same schema

    writers = _accepting_store(PostgresDb(PG_URL, db_schema="elsewhere", create_schema=False))
    assert isinstance(writers, PostgresDb) and (writers.db_schema, writers.create_schema) == ("elsewhere", False)
    with pytest.raises(ValueError, match="db_url or db_engine"):
        PostgresDb()
    with pytest.raises(TypeError, match="session_tabel"):
        PostgresDb(PG_URL, session_tabel="x")  # type: ignore[call-arg]
