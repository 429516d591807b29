"""Schema migrations (Alembic) for kern's tables; kern-bot keeps its own set (`bot.store.migrations`) the same way.

Every schema change is a migration. Each set is a directory of Alembic revisions with its own version
table, run in code (no alembic.ini): `MigrationSet.ensure` at a store's first use, `BaseDb.upgrade`,
`python -m kern.db upgrade <db>` and `kern-bot db upgrade` to upgrade on purpose.

At first use, one cheap check per process: an empty database gets today's tables (`create_all`, the
fastest way) stamped at the newest revision; tables made before migrations existed (kern_meta
schema_version 1, no version table) are stamped as the baseline; a database at the newest revision is
used as is; an older one is refused (`SchemaVersionError`, one line saying what to do) unless
auto-upgrade is on; one at a revision this code does not know (a newer kern wrote it) is refused.

Adding a migration (say, a column for kern's runs):

1. Change the table in `kern/db/schema.py` (the bot: `bot/store/__init__.py`).
2. `python -m kern.db revision -m "add runs.owner"` (the bot: `kern-bot db revision -m ...`) writes
   `versions/NNNN_add_runs_owner.py`, numbered after the newest one, with the operations Alembic finds
   between the migrated schema and the tables in code. Read it and fix what it guessed wrong
   (`render_as_batch` makes SQLite's ALTERs work). Never edit a revision that was released.
3. tests/test_migrations.py checks that the revisions, run from nothing, give exactly the tables in code
   on SQLite and PostgreSQL, and that the revision numbers form one line.

Revision ids are the 4-digit numbers their files start with, so the newest one is known from the file
names alone: the first-use check never loads Alembic (importing it costs a third of a second).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kern.db import schema
from kern.exceptions import SchemaVersionError

log = logging.getLogger("kern.db.migrations")

BASELINE = "0001"
AUTO_UPGRADE_ENV = "KERN_DB_AUTO_UPGRADE"


def auto_upgrade_from_env(environ: Any = None) -> bool:
    """True if KERN_DB_AUTO_UPGRADE is set to 1 (or true/yes): upgrade an older database at first use."""
    value = (os.environ if environ is None else environ).get(AUTO_UPGRADE_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class MigrationSet:
    """One set of tables versioned together: its Alembic script directory and its version table.

    `legacy(conn, tables)` says whether tables present without a version table were made before
    migrations existed (they are then stamped as the baseline). `after_create` fills a freshly created
    schema with what the baseline revision inserts. `upgrade_hint` ends the "too old" message.
    """

    component: str
    directory: Path
    version_table: str
    metadata: sa.MetaData
    legacy: Callable[[Connection, set[str]], bool]
    upgrade_hint: str
    after_create: Callable[[Connection], None] | None = None
    extra_version_locations: tuple[Path, ...] = field(default=())

    # ----- what this code knows ---------------------------------------------------------------------
    @cached_property
    def revisions(self) -> list[str]:
        """Known revision ids, oldest first (the 4-digit prefixes of the revision files)."""
        found = {
            path.name.split("_", 1)[0]
            for location in (self.directory / "versions", *self.extra_version_locations)
            for path in location.glob("[0-9][0-9][0-9][0-9]_*.py")
        }
        return sorted(found)

    @property
    def head(self) -> str:
        return self.revisions[-1]

    @cached_property
    def _version(self) -> sa.Table:
        # The same table Alembic creates (alembic.ddl.impl.version_table_impl), so either may write it.
        return sa.Table(
            self.version_table,
            sa.MetaData(),
            sa.Column("version_num", sa.String(32), nullable=False),
            sa.PrimaryKeyConstraint("version_num", name=f"{self.version_table}_pkc"),
        )

    # ----- what the database holds ------------------------------------------------------------------
    def current(self, conn: Connection, tables: set[str] | None = None) -> str | None:
        """The database's revision of this set; None if it has no version table (or it is empty)."""
        tables = set(sa.inspect(conn).get_table_names()) if tables is None else tables
        if self.version_table not in tables:
            return None
        rows = conn.execute(sa.select(self._version.c.version_num)).scalars().all()
        return rows[0] if len(rows) == 1 else None

    def _stamp(self, conn: Connection, revision: str) -> None:
        self._version.create(conn, checkfirst=True)
        conn.execute(self._version.delete())
        conn.execute(self._version.insert().values(version_num=revision))

    def _where(self, conn: Connection) -> str:
        return conn.engine.url.render_as_string(hide_password=True)

    # ----- first use and upgrade --------------------------------------------------------------------
    def ensure(self, conn: Connection, *, auto_upgrade: bool = False) -> list[str]:
        """Make the tables usable by this code, or raise `SchemaVersionError`; returns what was done.

        Call it inside the store's table-creation lock (one transaction): concurrent first users queue.
        """
        tables = set(sa.inspect(conn).get_table_names())
        current = self.current(conn, tables)
        done: list[str] = []
        if current is None:
            ours = tables & set(self.metadata.tables)
            if not ours:
                self.metadata.create_all(conn)
                if self.after_create is not None:
                    self.after_create(conn)
                self._stamp(conn, self.head)
                done.append(f"{self.component}: created the tables at revision {self.head} (empty database)")
                log.debug("%s in %s", done[-1], self._where(conn))
                return done
            if not self.legacy(conn, tables):
                raise SchemaVersionError(
                    f"{self.component}'s tables in {self._where(conn)} have no schema version this code "
                    f"recognises ({self.version_table} is missing): restore them from a backup or move them away.",
                    component=self.component,
                    found=None,
                    expected=self.head,
                )
            self._stamp(conn, BASELINE)
            current = BASELINE
            done.append(f"{self.component}: tables made before migrations recognised as revision {BASELINE}")
            log.info("%s in %s", done[-1], self._where(conn))
            if current == self.head:
                done.append(f"{self.component}: at revision {self.head}, the newest")
        if current == self.head:
            return done
        if current not in self.revisions:
            raise SchemaVersionError(
                f"{self.component}'s tables in {self._where(conn)} are at schema revision {current}, which this "
                f"code does not know (it knows up to {self.head}): a newer kern wrote them; upgrade kern to use "
                "this database.",
                component=self.component,
                found=current,
                expected=self.head,
            )
        if not auto_upgrade:
            raise SchemaVersionError(
                f"{self.component}'s tables in {self._where(conn)} are at schema revision {current}, this code "
                f"needs {self.head}: {self.upgrade_hint}.",
                component=self.component,
                found=current,
                expected=self.head,
            )
        steps = self.alembic_upgrade(conn)
        done.append(f"{self.component}: upgraded from revision {current} to {self.head}: ran {', '.join(steps)}")
        log.info("%s in %s", done[-1], self._where(conn))
        return done

    def upgrade(self, conn: Connection) -> list[str]:
        """`ensure` with auto-upgrade on, saying what was done and where the tables are now."""
        done = self.ensure(conn, auto_upgrade=True)
        return done or [f"{self.component}: already at revision {self.head}, the newest; nothing to do"]

    def alembic_config(self, conn: Connection | None = None) -> Any:
        """An Alembic `Config` for this set, built in code; `conn` is the connection env.py migrates."""
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(self.directory))
        if self.extra_version_locations:  # tests add revisions of their own on top
            locations = [self.directory / "versions", *self.extra_version_locations]
            config.set_main_option("path_separator", "space")
            config.set_main_option("version_locations", " ".join(str(p) for p in locations))
        config.attributes["connection"] = conn
        config.attributes["migration_set"] = self
        return config

    def alembic_upgrade(self, conn: Connection, revision: str = "head") -> list[str]:
        """Run the revision scripts up to `revision` on `conn`, in its transaction; returns the ones run
        ("0002 (add runs.owner)"), oldest first."""
        from alembic import command
        from alembic.script import ScriptDirectory

        config = self.alembic_config(conn)
        start = self.current(conn)
        command.upgrade(config, revision)
        script = ScriptDirectory.from_config(config)
        steps = script.iterate_revisions(self.current(conn) or "base", start or "base")
        return [f"{step.revision} ({step.doc})" for step in reversed(list(steps))]

    def new_revision(self, message: str, *, autogenerate: bool = True) -> Path:
        """Write the next revision file (numbered after the newest), with the operations Alembic finds
        between the migrated schema (an in-memory SQLite database at head) and the tables in code."""
        from alembic import command

        rev_id = f"{int(self.head) + 1:04d}"
        engine = sa.create_engine("sqlite://")
        with engine.begin() as conn:
            self.alembic_upgrade(conn)
            config = self.alembic_config(conn)
            script = command.revision(config, message=message, autogenerate=autogenerate, rev_id=rev_id)
        engine.dispose()
        scripts = script if isinstance(script, list) else [script]
        return Path(scripts[0].path)  # type: ignore[union-attr]


def run_env() -> None:
    """The body of each set's env.py: migrate the connection the caller passed, in its transaction."""
    from alembic import context

    config = context.config
    conn: Connection | None = config.attributes.get("connection")
    migration_set: MigrationSet = config.attributes["migration_set"]
    if conn is None:
        raise RuntimeError("kern runs its migrations in code: use MigrationSet.alembic_upgrade(conn), not alembic.")
    context.configure(
        connection=conn,
        target_metadata=migration_set.metadata,
        version_table=migration_set.version_table,
        render_as_batch=conn.dialect.name == "sqlite",
        include_name=lambda name, type_, _parent: type_ != "table" or name in migration_set.metadata.tables,
    )
    with context.begin_transaction():
        context.run_migrations()


def _kern_legacy(conn: Connection, tables: set[str]) -> bool:
    if schema.meta.name not in tables:
        return False
    value = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    return value == "1"


def _kern_after_create(conn: Connection) -> None:
    # kern_meta's schema_version stays "1": the layout before migrations; the version table says the rest.
    conn.execute(schema.meta.insert().values(key="schema_version", value=str(schema.SCHEMA_VERSION)))


KERN = MigrationSet(
    component="kern",
    directory=Path(__file__).parent,
    version_table="kern_alembic_version",
    metadata=schema.metadata,
    legacy=_kern_legacy,
    after_create=_kern_after_create,
    upgrade_hint=(
        "run `kern-bot db upgrade` (kern alone: `python -m kern.db upgrade <db>` or `await db.upgrade()`), "
        f"or set {AUTO_UPGRADE_ENV}=1 to upgrade at start-up"
    ),
)
