"""PostgreSQL store (asyncpg): production, and several bot replicas on one database."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from kern.db.base import BaseDb

# Any constant works; it only has to be the same in every process that creates kern's tables.
_CREATE_LOCK_KEY = 0x6B65726E


def asyncpg_url(db_url: str) -> str:
    """`postgresql://...` (or `postgres://`, `postgresql+psycopg://`) as an asyncpg SQLAlchemy URL."""
    scheme, sep, rest = db_url.partition("://")
    if not sep or not scheme.startswith(("postgres", "postgresql")):
        raise ValueError(f"PostgresDb db_url must look like postgresql://user@host:5432/dbname, got {db_url!r}")
    return f"postgresql+asyncpg://{rest}"


class PostgresDb(BaseDb):
    """A PostgreSQL database; the same code as SQLite, configured for asyncpg."""

    dialect_insert = staticmethod(pg_insert)

    def __init__(
        self, db_url: str, *, pool_size: int = 10, max_overflow: int = 20, lease_seconds: float = 30.0
    ) -> None:
        self.db_url = db_url
        super().__init__(
            asyncpg_url(db_url),
            lease_seconds=lease_seconds,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
        )

    async def _before_create(self, conn: AsyncConnection) -> None:
        # CREATE TABLE IF NOT EXISTS still races in PostgreSQL; serialize creators.
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK_KEY})

    def __repr__(self) -> str:
        return f"PostgresDb(db_url={self.db_url!r})"
