"""SQLite store (aiosqlite, WAL): the default everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from kern.db.base import BaseDb


class SqliteDb(BaseDb):
    """A SQLite file (or, with no `db_file`, a process-local in-memory database).

    Every write transaction starts with `BEGIN IMMEDIATE`, so concurrent writers from threads or
    processes queue on SQLite's lock (up to `busy_timeout` seconds) instead of failing.
    """

    dialect_insert = staticmethod(sqlite_insert)

    def __init__(
        self,
        db_file: str | Path | None = None,
        *,
        db_url: str | None = None,
        busy_timeout: float = 30.0,
        lease_seconds: float = 30.0,
    ) -> None:
        if db_url is None:
            db_url = f"sqlite+aiosqlite:///{db_file}" if db_file else "sqlite+aiosqlite://"
        elif db_url.startswith("sqlite://"):
            db_url = "sqlite+aiosqlite://" + db_url.removeprefix("sqlite://")
        self.db_file = str(db_file) if db_file else None
        self.busy_timeout = busy_timeout
        kwargs: dict[str, Any] = {"connect_args": {"timeout": busy_timeout}}
        if db_url in ("sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"):
            kwargs["poolclass"] = StaticPool
        super().__init__(db_url, lease_seconds=lease_seconds, **kwargs)

    def _configure(self, engine: AsyncEngine) -> None:
        busy_ms = int(self.busy_timeout * 1000)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Take transaction control from the driver so we can BEGIN IMMEDIATE ourselves.
            dbapi_conn.isolation_level = None
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    def __repr__(self) -> str:
        return f"SqliteDb(db_file={self.db_file!r})"
