"""Stores for kern runs: `kern.db.sqlite.SqliteDb` and `kern.db.postgres.PostgresDb`."""

from kern.db.base import BaseDb

__all__ = ["BaseDb"]
