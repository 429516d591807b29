"""PostgreSQL store (asyncpg): production, and several bot replicas on one database."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from kern.db.base import BaseDb

T = TypeVar("T")

# Any constant works; it only has to be the same in every process that creates kern's tables.
_CREATE_LOCK_KEY = 0x6B65726E


def asyncpg_url(db_url: str) -> str:
    """`postgresql://...` (or `postgres://`, `postgresql+psycopg://`) as an asyncpg SQLAlchemy URL."""
    scheme, sep, rest = db_url.partition("://")
    if not sep or not scheme.startswith(("postgres", "postgresql")):
        raise ValueError(f"PostgresDb db_url must look like postgresql://user@host:5432/dbname, got {db_url!r}")
    return f"postgresql+asyncpg://{rest}"


class PostgresDb(BaseDb):
    """A PostgreSQL database: the same transactions as SQLite, run over asyncpg.

    asyncpg connections belong to the event loop that opened them, so each loop gets its own pool.
    """

    dialect_insert = staticmethod(pg_insert)

    def __init__(
        self, db_url: str, *, pool_size: int = 10, max_overflow: int = 20, lease_seconds: float = 30.0
    ) -> None:
        super().__init__(lease_seconds=lease_seconds)
        self.db_url = db_url
        self._url = asyncpg_url(db_url)
        self._pool = {"pool_size": pool_size, "max_overflow": max_overflow}
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = weakref.WeakKeyDictionary()

    def _engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            engine = create_async_engine(self._url, pool_pre_ping=True, **self._pool)
            self._engines[loop] = engine
        return engine

    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        async with self._engine().begin() as conn:
            return await conn.run_sync(body)

    def _lock_for_create(self, conn: Connection) -> None:
        # CREATE TABLE IF NOT EXISTS still races in PostgreSQL; serialize creators.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK_KEY})

    async def close(self) -> None:
        engine = self._engines.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()

    def __repr__(self) -> str:
        return f"PostgresDb(db_url={self.db_url!r})"
