"""`AsyncPostgresDb`: the reference API's name for an async PostgreSQL store. kern's `PostgresDb` is
already async (asyncpg on an async engine), so this is `PostgresDb` with the documented constructor."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from kern.db.async_engine import named_tables
from kern.db.postgres import PostgresDb


class AsyncPostgresDb(PostgresDb):
    """`PostgresDb` taking the documented arguments: `db_url` (any `postgresql[+driver]://` URL, e.g.
    `postgresql+psycopg_async://`; kern connects with asyncpg) or `db_engine` (an `AsyncEngine`, whose
    URL is used: kern keeps one engine per event loop), and `id`. `db_schema` and the `*_table` names are
    accepted for compatibility; kern keeps its own tables (docs/differences.md).
    """

    def __init__(
        self,
        db_url: str | None = None,
        *,
        db_engine: AsyncEngine | None = None,
        id: str | None = None,
        db_schema: str | None = None,
        session_table: str | None = None,
        memory_table: str | None = None,
        metrics_table: str | None = None,
        eval_table: str | None = None,
        knowledge_table: str | None = None,
        traces_table: str | None = None,
        spans_table: str | None = None,
        **options: Any,
    ) -> None:
        if db_url is None:
            if db_engine is None:
                raise ValueError("AsyncPostgresDb needs db_url or db_engine")
            db_url = db_engine.url.render_as_string(hide_password=False)
        super().__init__(db_url, **options)
        self.id = id or str(uuid.uuid4())
        self.db_schema = db_schema
        self.table_names = named_tables(
            session_table=session_table,
            memory_table=memory_table,
            metrics_table=metrics_table,
            eval_table=eval_table,
            knowledge_table=knowledge_table,
            traces_table=traces_table,
            spans_table=spans_table,
        )

    def __repr__(self) -> str:
        return f"AsyncPostgresDb(db_url={self.db_url!r})"


__all__ = ["AsyncPostgresDb"]
