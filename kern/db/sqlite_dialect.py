"""What both SQLite stores share: the database file, the insert statement, and which driver errors mean
"another connection holds the lock, try again".

`SqliteDb` (`kern.db.sqlite.sqlite`) and `AsyncSqliteDb` (`kern.db.sqlite.async_sqlite`) both read these from here, so
neither imports the other to borrow them (`kern.db.sqlite` names `AsyncSqliteDb` only for the reference
API's import path).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from kern.db.options import engine_url

DRIVER_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error,)


def prepare_db_file(db_file: str | Path | None) -> str | None:
    """The database file as a path string (None: in memory), its folder created if missing."""
    if not db_file or str(db_file) == ":memory:":
        return None
    Path(db_file).parent.mkdir(parents=True, exist_ok=True)
    return str(db_file)


def sqlite_location(db_file: str | Path | None, db_url: str | None, db_engine: Any) -> str | None:
    """The database file both SQLite stores use: `db_file`, else the database of `db_url`, else that of
    `db_engine`'s URL (None: in memory), its folder created if missing."""
    if db_file is None and db_url is None and db_engine is not None:
        db_url = engine_url(db_engine)
    if db_file is None and db_url is not None:
        db_file = sa.make_url(db_url).database or None
    return prepare_db_file(db_file)


def is_transient(err: BaseException) -> bool:
    """SQLITE_BUSY ("database is locked") and SQLITE_LOCKED ("database table is locked"): another
    connection holds the lock. Nothing was written; the transaction was rolled back or never began.
    (A failed COMMIT in SQLite leaves nothing committed, so no outcome here is ever unknown.)"""
    if isinstance(err, sqlite3.OperationalError):
        text = str(err).lower()
        return "locked" in text or "busy" in text
    return False


__all__ = ["DRIVER_ERRORS", "is_transient", "prepare_db_file", "sqlite_insert", "sqlite_location"]
