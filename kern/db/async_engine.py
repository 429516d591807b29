"""The store over an async SQLAlchemy engine: PostgreSQL (asyncpg) and SQLite (aiosqlite) share it.

A dialect only says how to build its engine (`_create_engine`) and which driver errors are transient;
every transaction runs the same way: check a connection out of the loop's pool, `BEGIN`, run the
operation's plain sync body through `run_sync`, `COMMIT`. Async drivers' connections belong to the
event loop that opened them, so each loop gets its own engine (a sync kern call runs on its thread's
long-lived loop, so its pool survives between calls).
"""

from __future__ import annotations

import asyncio
import weakref
from abc import abstractmethod
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kern.db.base import BaseDb
from kern.db.retry import CommitUnknownError

T = TypeVar("T")


class AsyncEngineDb(BaseDb):
    """A `BaseDb` whose transactions run on an `AsyncEngine`, one engine per event loop.

    A connection that fails is invalidated (closed, never returned to the pool) and the store retries
    on a fresh one (see `BaseDb._tx`); that also covers a pooled connection the server dropped while it
    sat idle, so connections are not pinged before use.
    """

    def __init__(self, *, lease_seconds: float = 30.0, retry_for: float = 30.0) -> None:
        super().__init__(lease_seconds=lease_seconds, retry_for=retry_for)
        self._engines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = weakref.WeakKeyDictionary()

    @abstractmethod
    def _create_engine(self) -> AsyncEngine:
        """A new engine (with its pool) for the running event loop."""

    def _engine(self) -> AsyncEngine:
        loop = asyncio.get_running_loop()
        engine = self._engines.get(loop)
        if engine is None:
            engine = self._create_engine()
            self._engines[loop] = engine
        return engine

    def _sa_dialect(self) -> sa.Dialect:
        return self._engine().sync_engine.dialect

    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        async with self._engine().connect() as conn:
            try:
                await conn.begin()
                result = await conn.run_sync(body)
            except BaseException as exc:  # cancellation too: a connection stopped mid-statement is not reusable
                await self._discard(conn, exc)
                raise
            try:
                await conn.commit()
            except BaseException as exc:
                await self._discard(conn, exc)
                if isinstance(exc, Exception) and self._transient(exc):
                    # COMMIT was sent (or about to be) when the connection broke: it may have committed.
                    raise CommitUnknownError("the connection failed during COMMIT") from exc
                raise
            return result

    async def _discard(self, conn: AsyncConnection, exc: BaseException) -> None:
        """End a failed transaction: roll it back, or invalidate the connection if it is broken (or the
        rollback fails), so the pool opens a fresh one instead of handing this one out again."""
        if isinstance(exc, Exception) and not self._transient(exc):
            try:
                await conn.rollback()
                return
            except Exception:  # the rollback failing means the connection is broken after all
                pass
        try:
            await conn.invalidate()
        except Exception:  # already gone
            pass

    async def close(self) -> None:
        """Dispose of the running loop's engine (other loops' engines go with their loops)."""
        engine = self._engines.pop(asyncio.get_running_loop(), None)
        if engine is not None:
            await engine.dispose()
