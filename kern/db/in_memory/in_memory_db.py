"""`InMemoryDb`: kern's SQLite store on an in-memory database, under the reference API's name."""

from __future__ import annotations

from kern.db.sqlite.sqlite import SqliteDb


class InMemoryDb(SqliteDb):
    """A store held in this process's memory: `SqliteDb` with no file (one shared connection).

    Runs, pauses, decisions and approvals behave as on a file, but live only as long as this store
    object: a paused run cannot be continued by another process, or after a restart. For that, give
    `SqliteDb(db_file=...)` or `PostgresDb(db_url=...)`.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)

    def __repr__(self) -> str:
        return "InMemoryDb()"


__all__ = ["InMemoryDb"]
