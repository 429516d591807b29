"""`AsyncSqliteDb`: SQLite over `aiosqlite`, on the same async-engine path as `PostgresDb`.

It is a configuration of `AsyncEngineDb`, not another store: an `sqlite+aiosqlite` engine per event
loop, the connection set up as `SqliteDb` sets up its own (WAL, `synchronous=NORMAL`, a busy timeout,
write transactions opened with `BEGIN IMMEDIATE` so writers queue on SQLite's lock instead of failing
on upgrade), and SQLite's busy/locked errors treated as transient, as `SqliteDb` treats them.

`SqliteDb` remains the default: it runs a hot transaction inline on the event loop when it need not wait
for a lock, and any other in one worker-thread hop, where aiosqlite hops to its connection thread once per
statement (see `bench/pause_cycle.py --db async-sqlite`).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from kern.db.approval_api import AsyncApprovals
from kern.db.async_engine import AsyncEngineDb
from kern.db.options import table_arguments
from kern.db.sqlite_dialect import DRIVER_ERRORS, is_transient, sqlite_insert, sqlite_location

T = TypeVar("T")

# Whether the transaction being opened will write: read by the engine's "begin" hook, which runs in
# the same context (SQLAlchemy's greenlets carry the caller's context variables).
_WRITING: ContextVar[bool] = ContextVar("kern_async_sqlite_writing", default=True)


class AsyncSqliteDb(AsyncEngineDb, AsyncApprovals):
    """A SQLite file reached through `aiosqlite` (with no `db_file`, a process-local in-memory database).

    Constructor as documented for the reference API: `db_file`, `db_url` (`sqlite+aiosqlite:///...`,
    or any sqlite URL) or `db_engine` (an `AsyncEngine`, whose URL is used: kern keeps one engine per
    event loop). `id` and the `*_table` names are the reference API's, as for every store (see
    `kern.db.options`).
    """

    dialect_insert = staticmethod(sqlite_insert)
    json_as_text = True  # the driver returns JSON columns as text on the hot path
    driver_errors = DRIVER_ERRORS

    def __init__(
        self,
        db_file: str | Path | None = None,
        *,
        db_engine: AsyncEngine | sa.Engine | None = None,
        db_url: str | None = None,
        session_table: str | None = None,
        culture_table: str | None = None,
        memory_table: str | None = None,
        metrics_table: str | None = None,
        eval_table: str | None = None,
        knowledge_table: str | None = None,
        traces_table: str | None = None,
        spans_table: str | None = None,
        versions_table: str | None = None,
        components_table: str | None = None,
        component_configs_table: str | None = None,
        component_links_table: str | None = None,
        learnings_table: str | None = None,
        schedules_table: str | None = None,
        schedule_runs_table: str | None = None,
        approvals_table: str | None = None,
        auth_tokens_table: str | None = None,
        service_accounts_table: str | None = None,
        mcp_oauth_clients_table: str | None = None,
        mcp_oauth_transactions_table: str | None = None,
        mcp_oauth_codes_table: str | None = None,
        mcp_oauth_refresh_tokens_table: str | None = None,
        mcp_oauth_keys_table: str | None = None,
        id: str | None = None,
        busy_timeout: float = 30.0,
        pool_size: int = 5,
        lease_seconds: float = 30.0,
        retry_for: float = 30.0,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retry_for=retry_for)
        self.db_file = sqlite_location(db_file, db_url, db_engine)
        self._keep_reference_arguments(id, table_arguments(locals()), self.db_file)
        self.busy_timeout = busy_timeout
        self._pool_size = pool_size
        self._anchor: sqlite3.Connection | None = None
        if self.db_file is None:
            # One shared in-memory database for every loop's engine, alive as long as this store.
            self._url = f"sqlite+aiosqlite:///file:kern-{uuid.uuid4().hex}?mode=memory&cache=shared&uri=true"
            self._anchor = sqlite3.connect(
                self._url.removeprefix("sqlite+aiosqlite:///").removesuffix("&uri=true"),
                uri=True,
                check_same_thread=False,
            )
        else:
            self._url = f"sqlite+aiosqlite:///{self.db_file}"

    def _create_engine(self) -> AsyncEngine:
        options: dict[str, Any] = {"connect_args": {"timeout": self.busy_timeout}, "pool_reset_on_return": None}
        if self.db_file is None:
            options["poolclass"] = StaticPool
        else:
            options.update(pool_size=self._pool_size, max_overflow=32)
        engine = create_async_engine(self._url, **options)
        busy_ms = int(self.busy_timeout * 1000)
        on_file = self.db_file is not None

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_conn.cursor()
            if on_file:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if _WRITING.get() else "BEGIN")

        return engine

    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        token = _WRITING.set(write)
        try:
            return await super()._run(body, write=write)
        finally:
            _WRITING.reset(token)

    def _transient_error(self, err: BaseException) -> bool:
        return is_transient(err)  # the same driver errors as SqliteDb's

    async def close(self) -> None:
        await super().close()
        if self._anchor is not None and not self._engines:
            self._anchor.close()
            self._anchor = None

    def __repr__(self) -> str:
        return f"AsyncSqliteDb(db_file={self.db_file!r})"


__all__ = ["AsyncSqliteDb"]
