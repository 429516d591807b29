"""`kern.db.async_sqlite`: kept as an import path; `AsyncSqliteDb` lives in `kern.db.sqlite.async_sqlite`."""

from kern.db.sqlite.async_sqlite import AsyncSqliteDb

__all__ = ["AsyncSqliteDb"]
