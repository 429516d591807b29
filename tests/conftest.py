"""Shared fixtures: real SQLite files and the real PostgreSQL server on 127.0.0.1:5432."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.db.sqlite import SqliteDb

# The scripted OpenAI server's fixtures (`server`, `model_factory`) for every test module that asks.
pytest_plugins = ["tests.openai_stub"]

PG_URL = os.environ.get("KERN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_problem() -> str | None:
    """None if PostgreSQL answers, else why not. (Tests share its tables: every test uses unique names.)"""
    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"), timeout=5)
        await conn.close()

    problem: list[str] = []

    def run_probe() -> None:  # its own thread: callers may be inside a running event loop
        try:
            asyncio.run(probe())
        except Exception as exc:  # any failure to reach the server is a reason to skip (or fail in CI)
            problem.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run_probe)
    thread.start()
    thread.join(30)
    return problem[0] if problem else None


_pg_problem: str | bool | None = False


def require_postgres() -> None:
    """Fail under CI=true, skip visibly elsewhere, when PostgreSQL is unreachable."""
    global _pg_problem
    if _pg_problem is False:
        _pg_problem = _postgres_problem()
    if _pg_problem:
        message = f"PostgreSQL at {PG_URL} is unreachable ({_pg_problem})"
        if IN_CI:
            pytest.fail(message + "; CI requires it.")
        pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def shared_postgres_at_this_revision() -> None:
    """The PostgreSQL database is shared and outlives a test run (tests keep apart by unique names): bring
    its tables to this code's schema revision once, before any test (or process a test starts) uses it."""
    if _postgres_problem() is not None:
        return  # the PostgreSQL tests fail (CI) or skip on their own

    async def upgrade() -> None:
        from bot.store.migrations import BOT

        db = PostgresDb(db_url=PG_URL)
        try:
            await db.upgrade(BOT)
        finally:
            await db.close()

    thread = threading.Thread(target=lambda: asyncio.run(upgrade()))
    thread.start()
    thread.join(120)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, chosen by the OS (from its ephemeral range: never
    a local service's, as a port computed from the pid could be: 5432 once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_db(kind: str, tmp_path: Path, **kwargs: object) -> BaseDb:
    if kind == "sqlite":
        return SqliteDb(db_file=tmp_path / "kern.db", **kwargs)  # type: ignore[arg-type]
    require_postgres()
    return PostgresDb(db_url=PG_URL, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def db(db_kind: str, tmp_path: Path) -> Iterator[BaseDb]:
    """A real database: a SQLite file in tmp_path, or the PostgreSQL server."""
    yield make_db(db_kind, tmp_path)


@pytest.fixture
def sqlite_db(tmp_path: Path) -> SqliteDb:
    return SqliteDb(db_file=tmp_path / "kern.db")


@contextlib.asynccontextmanager
async def fresh_database(statement_timeout_ms: int = 0) -> AsyncIterator[str]:
    """The URL of a new database on the PostgreSQL test server, dropped afterwards, for a test that sweeps
    every row of its tables (the shared `test` database holds other tests' rows, left by earlier runs);
    its sessions time statements out after `statement_timeout_ms` (0: never)."""
    import asyncpg

    require_postgres()
    name = f"kern_t_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.execute(f"ALTER DATABASE \"{name}\" SET statement_timeout = '{statement_timeout_ms}ms'")
        yield PG_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
