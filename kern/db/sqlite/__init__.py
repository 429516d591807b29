"""SQLite stores: `SqliteDb` (the default everywhere) and `AsyncSqliteDb` (SQLite through aiosqlite).

The reference API's paths: `kern.db.sqlite.SqliteDb`, `kern.db.sqlite.sqlite.SqliteDb` and
`kern.db.sqlite.async_sqlite.AsyncSqliteDb` name these classes.
"""

from kern.db.sqlite.async_sqlite import AsyncSqliteDb
from kern.db.sqlite.sqlite import SqliteDb

__all__ = ["AsyncSqliteDb", "SqliteDb"]
