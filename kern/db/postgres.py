"""PostgreSQL store (asyncpg): production, and several bot replicas on one database."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg
import sqlalchemy as sa
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import await_

from kern.db.approval_api import AsyncApprovals, SyncApprovals
from kern.db.async_engine import AsyncEngineDb
from kern.db.greenlets import run_in_greenlet
from kern.db.hot import Sql, Tx, driver_failure, loads_or_unreadable
from kern.db.options import engine_url, table_arguments
from kern.db.pg_spare import SpareConnections
from kern.db.retry import CommitUnknownError

T = TypeVar("T")

# Any constant works; it only has to be the same in every process that creates kern's tables.
_CREATE_LOCK_KEY = 0x6B65726E

# SQLSTATEs after which the same transaction, run again, may succeed: the connection is gone (class 08),
# the server is shutting down, starting or full, or the transaction lost a serialization race or a
# deadlock (it was rolled back).
_TRANSIENT_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "40001", "40P01"})
# asyncpg's client-side errors about a connection that broke under it ("cannot perform operation: another
# operation is in progress", "cannot switch to state 15; another operation (2) is in progress", ...).
_CLIENT_ERRORS = ("InterfaceError", "InternalClientError")
_BROKEN_CONNECTION_TEXT = ("another operation", "connection is closed", "connection was closed")


def asyncpg_url(db_url: str) -> str:
    """`postgresql://...` (or `postgres://`, `postgresql+psycopg://`) as an asyncpg SQLAlchemy URL."""
    scheme, sep, rest = db_url.partition("://")
    if not sep or not scheme.startswith(("postgres", "postgresql")):
        raise ValueError(f"PostgresDb db_url must look like postgresql://user@host:5432/dbname, got {db_url!r}")
    return f"postgresql+asyncpg://{rest}"


class _PgTx(Tx):
    """A hot transaction on a bare asyncpg connection (the body runs in a greenlet, as under SQLAlchemy).

    BEGIN is sent before the first write, not at the start: queries before it run as statements of their
    own, which under READ COMMITTED (each statement sees its own snapshot, in a transaction or not) reads
    the same, so a read-only transaction is one round trip per query. A write run by `write_alone` with
    nothing begun is a transaction of its own (no BEGIN, no COMMIT): if the connection fails while it is
    in flight, its outcome is unknown (`CommitUnknownError`), as for a COMMIT.
    """

    __slots__ = ("_conn", "alone", "began")

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.began = False  # BEGIN sent: the body's writes commit with COMMIT
        self.alone = False  # a write ran as a transaction of its own: no write may follow it

    def _check(self) -> None:
        if self.alone:  # (a query may follow: it reads what the write left, committed or not written)
            raise RuntimeError("a write after a write_alone in the same transaction")

    def execute(self, sql: Sql, params: dict[str, Any]) -> int:
        self._check()
        if not self.began:
            await_(self._conn.execute("BEGIN;"))  # as asyncpg begins
            self.began = True
        return self._write(sql, params)

    def write_alone(self, sql: Sql, params: dict[str, Any]) -> int:
        self._check()
        self.alone = not self.began  # a transaction of its own: a failure in flight leaves it unknown
        return self._write(sql, params)

    def _write(self, sql: Sql, params: dict[str, Any]) -> int:
        args = sql.args(params)
        try:
            status: str = await_(self._conn.execute(sql.text, *args))
        except PostgresDb.driver_errors as exc:
            raise driver_failure(sql, args, exc) from exc
        return int(status.rsplit(" ", 1)[-1])  # "UPDATE 1", "INSERT 0 1"

    def first(self, sql: Sql, params: dict[str, Any]) -> Sequence[Any] | None:
        args = sql.args(params)
        try:
            row: Sequence[Any] | None = await_(self._conn.fetchrow(sql.text, *args))
        except PostgresDb.driver_errors as exc:
            raise driver_failure(sql, args, exc) from exc
        return row

    def all(self, sql: Sql, params: dict[str, Any]) -> list[Sequence[Any]]:
        args = sql.args(params)
        try:
            rows: list[Sequence[Any]] = await_(self._conn.fetch(sql.text, *args))
        except PostgresDb.driver_errors as exc:
            raise driver_failure(sql, args, exc) from exc
        return rows


class PostgresDb(AsyncEngineDb, SyncApprovals):
    """A PostgreSQL database: the same transactions as SQLite, run over asyncpg.

    asyncpg connections belong to the event loop that opened them, so each loop gets its own pool (see
    `AsyncEngineDb`, which also says how a failed connection is replaced). `application_name` names this
    store's connections on the server (`pg_stat_activity`).

    The database is `db_url` (any `postgresql[+driver]://` URL: kern connects with asyncpg) or that of
    `db_engine` (a SQLAlchemy `Engine` or `AsyncEngine`; kern opens its own connections there, an engine
    per event loop). With `db_schema`, kern's tables live in that schema (every connection's
    `search_path`), created at first use unless `create_schema=False`. `id` and the `*_table` names are
    the reference API's, as for every store (see `kern.db.options`).

    Up to `pool_size` connections (30) are opened as needed and kept: a burst of work then finds them open.
    (Opening a connection in a burst costs its handshake and codec set-up while every request waits: with
    10 kept and 20 more opened and closed per burst, 200 clicks at once were acked after 120-180 ms in a
    third of the runs, against 30-55 ms.) `max_overflow` adds connections opened for a burst and closed
    after it. The loop of each thread making sync kern calls also keeps one connection out of the pool for
    the hot transactions (see `kern.db.pg_spare`): at most `pool_size + max_overflow + 1` there.
    """

    dialect_insert = staticmethod(pg_insert)
    driver_errors = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

    def __init__(
        self,
        db_url: str | None = None,
        *,
        db_engine: AsyncEngine | sa.Engine | None = None,
        db_schema: str | None = None,
        session_table: str | None = None,
        culture_table: str | None = None,
        memory_table: str | None = None,
        metrics_table: str | None = None,
        eval_table: str | None = None,
        knowledge_table: str | None = None,
        traces_table: str | None = None,
        spans_table: str | None = None,
        versions_table: str | None = None,
        components_table: str | None = None,
        component_configs_table: str | None = None,
        component_links_table: str | None = None,
        learnings_table: str | None = None,
        schedules_table: str | None = None,
        schedule_runs_table: str | None = None,
        approvals_table: str | None = None,
        auth_tokens_table: str | None = None,
        service_accounts_table: str | None = None,
        mcp_oauth_clients_table: str | None = None,
        mcp_oauth_transactions_table: str | None = None,
        mcp_oauth_codes_table: str | None = None,
        mcp_oauth_refresh_tokens_table: str | None = None,
        mcp_oauth_keys_table: str | None = None,
        id: str | None = None,
        create_schema: bool = True,
        pool_size: int = 30,
        max_overflow: int = 0,
        lease_seconds: float = 30.0,
        retry_for: float = 30.0,
        application_name: str | None = None,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retry_for=retry_for)
        if db_url is None:
            if db_engine is None:
                raise ValueError(f"{type(self).__name__} needs db_url or db_engine")
            db_url = engine_url(db_engine)
        self.db_url = db_url
        self._url = asyncpg_url(db_url)
        self.db_schema = db_schema
        self.create_schema = create_schema
        self._pool: dict[str, Any] = {"pool_size": pool_size, "max_overflow": max_overflow}
        self._spares = SpareConnections(self)
        settings = {"application_name": application_name} if application_name is not None else {}
        if db_schema is not None:
            # Every connection resolves kern's (unqualified) table names in this schema alone.
            settings["search_path"] = _quote(db_schema)
        if settings:
            self._pool["connect_args"] = {"server_settings": settings}
        self._keep_reference_arguments(id, table_arguments(locals()), f"{self._url}#{db_schema or ''}")

    def _create_engine(self) -> AsyncEngine:
        # asyncpg decodes JSON columns with the engine's deserializer (SQLAlchemy registers the codec)
        return create_async_engine(self._url, json_deserializer=loads_or_unreadable, **self._pool)

    async def _run_raw(self, body: Callable[[Tx], T], *, write: bool) -> T:
        # The whole transaction (connection, body, COMMIT, give-back) in one greenlet, a kept one (see
        # `kern.db.greenlets`): a pool checkout and return would need one each if run from here.
        return await run_in_greenlet(self._raw_transaction, asyncio.get_running_loop(), body)

    def _raw_transaction(self, loop: asyncio.AbstractEventLoop, body: Callable[[Tx], T]) -> T:
        """The loop's spare connection (sync-API loops: see `kern.db.pg_spare`), else one of its pool,
        used bare: the body's prepared statements, BEGIN before its first write and COMMIT after it (see
        `_PgTx`). Runs in a greenlet (IO through `await_`)."""
        conn = self._spares.take(loop)
        pooled: PoolProxiedConnection | None = None
        if conn is None:
            pooled = self._engine().sync_engine.raw_connection()
            conn = pooled.driver_connection
            assert conn is not None  # a pool's connection always has its driver's
        tx = _PgTx(conn)
        try:
            result = body(tx)
        except BaseException as exc:
            self._discard_raw(loop, conn, pooled, exc, rollback=tx.began)
            if tx.alone and isinstance(exc, Exception) and self._transient(exc):
                # The single-statement write was in flight when the connection broke: it may have committed.
                raise CommitUnknownError("the connection failed during a single-statement write") from exc
            raise
        if tx.began:
            try:
                await_(conn.execute("COMMIT;"))
            except BaseException as exc:
                self._discard_raw(loop, conn, pooled, exc, rollback=False)
                if isinstance(exc, Exception) and self._transient(exc):
                    raise CommitUnknownError("the connection failed during COMMIT") from exc
                raise
        self._give_back(loop, conn, pooled)
        return result

    def _give_back(
        self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection, pooled: PoolProxiedConnection | None
    ) -> None:
        """After a transaction that left nothing begun: the spare is idle again; a pool connection becomes
        the loop's spare if it has none, else goes back to the pool (its reset finds no transaction:
        nothing to send; an overflow connection returned to a full pool is closed)."""
        if pooled is None:
            self._spares.put(loop, conn)
        elif self._spares.wanted(loop):
            pooled.detach()  # the pool forgets it (and will open another in its place when needed)
            self._spares.put(loop, conn)
        else:
            pooled.close()

    def _discard_raw(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: asyncpg.Connection,
        pooled: PoolProxiedConnection | None,
        exc: BaseException,
        rollback: bool = True,
    ) -> None:
        """`_discard` for a bare connection: roll back (if a transaction began) and give it back, or drop
        it if it is broken (a pool connection is invalidated, the spare terminated)."""
        if isinstance(exc, Exception) and not self._transient(exc):
            try:
                if rollback:
                    await_(conn.execute("ROLLBACK;"))
                self._give_back(loop, conn, pooled)
                return
            except Exception:  # the rollback failing means the connection is broken after all
                pass
        try:
            if pooled is None:
                self._spares.lose(loop, conn)
            else:
                pooled.invalidate(exc if isinstance(exc, Exception) else None)
        except Exception:  # already gone
            pass

    async def close(self) -> None:
        """Close the running loop's spare connection and dispose of its engine (see `AsyncEngineDb`)."""
        await self._spares.close(asyncio.get_running_loop())
        await super().close()

    def _transient_error(self, err: BaseException) -> bool:
        if isinstance(err, (OSError, asyncio.TimeoutError)):  # refused, reset, unreachable, timed out
            return True
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str) and (state.startswith("08") or state in _TRANSIENT_SQLSTATES):
            return True
        if type(err).__name__ in _CLIENT_ERRORS:  # asyncpg's own, or SQLAlchemy's adapted copy
            message = str(err)
            return any(part in message for part in _BROKEN_CONNECTION_TEXT)
        return False

    def _lock_for_create(self, conn: Connection) -> None:
        # CREATE TABLE IF NOT EXISTS still races in PostgreSQL; serialize creators.
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK_KEY})
        if self.db_schema is None:
            return
        if self.create_schema:
            conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote(self.db_schema)}"))
        elif conn.execute(text("SELECT to_regnamespace(:s)"), {"s": _quote(self.db_schema)}).scalar() is None:
            raise ValueError(
                f"PostgresDb: schema {self.db_schema!r} does not exist (create_schema=False): create it, "
                "or let kern create it"
            )

    def __repr__(self) -> str:
        return f"PostgresDb(db_url={self.db_url!r})"


# `AsyncPostgresDb` is the reference API's name, at this path; it lives here, beside the class it
# names, so that `kern.db.async_postgres` (kept as an import path) imports this module and not back.
class AsyncPostgresDb(AsyncApprovals, PostgresDb):  # type: ignore[misc]  # async approval methods
    """`PostgresDb`, under the reference API's name for its async PostgreSQL store: kern's is async
    already (asyncpg), and any `postgresql[+driver]://` URL (`postgresql+psycopg_async://` too) or
    engine is connected with asyncpg."""

    def __repr__(self) -> str:
        return f"AsyncPostgresDb(db_url={self.db_url!r})"


def _quote(name: str) -> str:
    """A PostgreSQL identifier (a schema's name) quoted for SQL and for `search_path`."""
    return '"' + name.replace('"', '""') + '"'
