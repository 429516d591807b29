"""`AsyncPostgresDb`: the reference API's name for an async PostgreSQL store. kern's `PostgresDb` is
already async (asyncpg on an async engine), so this is `PostgresDb` with the documented constructor.

The class lives in `kern.db.postgres` (the reference API's path for it); this module keeps the name
importable from here too, and imports one way.
"""

from kern.db.postgres import AsyncPostgresDb

__all__ = ["AsyncPostgresDb"]
