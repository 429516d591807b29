"""SQLite store (WAL): the default everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import StaticPool

from kern._sync import is_private_loop
from kern.db.approval_api import SyncApprovals
from kern.db.checkpoint import BACKSTOP_PAGES, WalCheckpointer
from kern.db.hot import Sql, Tx, driver_failure
from kern.db.options import table_arguments
from kern.db.sqlite_dialect import DRIVER_ERRORS, is_transient, sqlite_insert, sqlite_location

T = TypeVar("T")


class _SqliteTx(Tx):
    """A hot transaction on a bare sqlite3 connection (in autocommit mode: BEGIN is ours to send).

    As on PostgreSQL (`kern.db.postgres._PgTx`), `BEGIN IMMEDIATE` is sent before the first write, not at
    the start: a query before it runs as a statement of its own (its own snapshot, as each statement has
    under PostgreSQL's READ COMMITTED, so the bodies, written for both, read alike), and a write run by
    `write_alone` with nothing begun is a transaction of its own. A pause cycle's save is one statement
    then, not three.
    """

    __slots__ = ("_conn", "began")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.began = False  # BEGIN IMMEDIATE sent: the body's writes commit with COMMIT

    def execute(self, sql: Sql, params: dict[str, Any]) -> int:
        if not self.began:
            self._conn.execute("BEGIN IMMEDIATE")
            self.began = True
        return self._write(sql, params)

    def write_alone(self, sql: Sql, params: dict[str, Any]) -> int:
        return self._write(sql, params)  # in a transaction if one began, else one of its own

    def _write(self, sql: Sql, params: dict[str, Any]) -> int:
        args = sql.args(params)
        try:
            return self._conn.execute(sql.text, args).rowcount
        except sqlite3.Error as exc:
            raise driver_failure(sql, args, exc) from exc

    def first(self, sql: Sql, params: dict[str, Any]) -> Sequence[Any] | None:
        args = sql.args(params)
        try:
            row: Sequence[Any] | None = self._conn.execute(sql.text, args).fetchone()
        except sqlite3.Error as exc:
            raise driver_failure(sql, args, exc) from exc
        return row

    def all(self, sql: Sql, params: dict[str, Any]) -> list[Sequence[Any]]:
        args = sql.args(params)
        try:
            return self._conn.execute(sql.text, args).fetchall()
        except sqlite3.Error as exc:
            raise driver_failure(sql, args, exc) from exc


def _raw_transaction(conn: sqlite3.Connection, body: Callable[[Tx], T]) -> T:
    """`body` as one transaction on `conn`: committed if it wrote and returned, else rolled back."""
    tx = _SqliteTx(conn)
    try:
        result = body(tx)
        if tx.began:
            conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # a failed COMMIT (busy) leaves the transaction open: nothing committed
            conn.execute("ROLLBACK")
        raise
    return result


# What `SqliteDb._raw_inline` returns for a transaction that would have had to wait for SQLite's lock.
_WOULD_WAIT = object()


class SqliteDb(SyncApprovals):
    """A SQLite file (or, with no `db_file`, a process-local in-memory database).

    The file is `db_file`, or the database of `db_url` or of `db_engine` (a SQLAlchemy engine, whose
    URL is used). `id` and the `*_table` names are the reference API's (see `kern.db.options`).

    Each transaction runs whole on one thread. The hot operations (save, claim, load, renew, and what
    `run_hot` runs) of an async caller run inline on its event loop when they need not wait: on a
    connection that never waits for SQLite's lock (busy_timeout 0), and a write only while no writer of
    this process is writing. Such a transaction is statements prepared once and a little Python (tens of
    microseconds, no fsync: `synchronous=NORMAL`), less than the thread hop it saves. One that would have
    waited (another process, or a writer thread of this one, holds the lock) has written nothing, and runs
    again in a thread, so the event loop never waits on a lock. A sync API call runs inline on its own
    private loop, which serves that call alone.

    In threads, reads run on a pool of `max_threads` threads, writes one at a time on a thread of their
    own (and behind a lock shared with inline writers), so this process's writers never wait on SQLite's
    lock. A write transaction sends `BEGIN IMMEDIATE` before its first write (see `_SqliteTx`), so writers
    of other processes queue on SQLite's lock (up to `busy_timeout` seconds) instead of failing; a lock held
    longer than that ("database is locked") is retried by the store for up to `retry_for` seconds more.

    The hot operations run on sqlite3 connections each thread keeps (see `kern.db.base.Tx`); everything
    else goes through SQLAlchemy's pool, in threads.
    """

    dialect_insert = staticmethod(sqlite_insert)
    driver_errors = DRIVER_ERRORS
    json_as_text = True

    def __init__(
        self,
        db_file: str | Path | None = None,
        *,
        db_engine: sa.Engine | AsyncEngine | None = None,
        db_url: str | None = None,
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
        busy_timeout: float = 30.0,
        lease_seconds: float = 30.0,
        retry_for: float = 30.0,
        max_threads: int = 4,
    ) -> None:
        super().__init__(lease_seconds=lease_seconds, retry_for=retry_for)
        self.db_file = sqlite_location(db_file, db_url, db_engine)
        self._keep_reference_arguments(id, table_arguments(locals()), self.db_file)
        self.busy_timeout = busy_timeout
        in_memory = self.db_file is None
        # The one connection of an in-memory database (each connection would have a database of its own).
        self._memory = None if self.db_file else self._connect()
        self._engine = sa.create_engine(
            f"sqlite:///{self.db_file}" if self.db_file else "sqlite://",
            creator=self._connect if self.db_file else lambda: self._memory,
            poolclass=StaticPool if in_memory else None,
            # Every transaction ends in commit or rollback (a `begin()` block): no reset rollback needed.
            pool_reset_on_return=None,
            **({} if in_memory else {"pool_size": max_threads + 4, "max_overflow": 32}),
        )
        # One in-memory connection must never be used by two threads at once.
        self._threads = ThreadPoolExecutor(1 if in_memory else max_threads, thread_name_prefix="kern-sqlite")
        # Writes go one at a time through a thread of their own, so reads never wait behind them for a thread.
        self._writer = self._threads if in_memory else ThreadPoolExecutor(1, thread_name_prefix="kern-sqlite-write")
        self._local = threading.local()
        # This process's writers queue here rather than on SQLite's lock: SQLite's busy handler polls
        # with growing sleeps (up to 100 ms), so a writer waiting there often wakes long after the lock
        # was free. Other processes' writers still wait on SQLite's lock (`busy_timeout`).
        self._write_lock = threading.Lock()
        self._kept: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._kept_lock = threading.Lock()
        self._checkpointer = WalCheckpointer(self._connect) if self.db_file else None
        self._configure()

    def _connect(self) -> sqlite3.Connection:
        """A configured connection: WAL, synchronous=NORMAL, busy timeout, BEGIN issued by us."""
        conn = sqlite3.connect(
            self.db_file or ":memory:", timeout=self.busy_timeout, check_same_thread=False, isolation_level=None
        )
        if self.db_file:
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")  # checkpoints run off the commit path
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        return conn

    def _configure(self) -> None:
        writing = threading.local()
        self._writing = writing

        @event.listens_for(self._engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Straight to the driver: a full SQLAlchemy execution costs more than the BEGIN itself.
            conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if getattr(writing, "on", True) else "BEGIN")

    def _sa_dialect(self) -> sa.Dialect:
        return self._engine.dialect

    def _run_in_thread(self, body: Callable[[Connection], T], write: bool, keep: bool = True) -> T:
        """One transaction. Worker threads (`keep`) hold a connection of their own: no pool checkout per
        transaction; any other thread checks one out and returns it, so callers never exhaust the pool."""
        local = self._writing
        local.on = write
        with self._write_lock if write else contextlib.nullcontext():
            if not keep:
                with self._engine.begin() as fresh:
                    result = body(fresh)
            else:
                kept: Connection | None = getattr(local, "conn", None)
                if kept is None or kept.closed:
                    kept = local.conn = self._engine.connect()
                with kept.begin():
                    result = body(kept)
        if write and self._checkpointer is not None:
            self._checkpointer.wrote()
        return result

    async def _run(self, body: Callable[[Connection], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        if is_private_loop(loop) and self.db_file:
            # A sync API call's own loop serves that call alone: a short transaction inline blocks no one.
            return self._run_in_thread(body, write, keep=False)
        return await loop.run_in_executor(self._writer if write else self._threads, self._run_in_thread, body, write)

    def _kept_connection(self) -> sqlite3.Connection:
        """This thread's own bare connection (outside the pool, closed with the store or its thread)."""
        conn: sqlite3.Connection | None = getattr(self._local, "raw", None)
        if conn is not None:
            return conn
        if self._memory is not None:
            conn = self._memory
        else:
            conn = self._connect()
            with self._kept_lock:
                for thread, old in [k for k in self._kept if not k[0].is_alive()]:
                    old.close()
                    self._kept.remove((thread, old))
                self._kept.append((threading.current_thread(), conn))
        self._local.raw = conn
        return conn

    def _raw_in_thread(self, body: Callable[[Tx], T], write: bool) -> T:
        with self._write_lock if write else contextlib.nullcontext():
            result = _raw_transaction(self._kept_connection(), body)
        if write and self._checkpointer is not None:
            self._checkpointer.wrote()
        return result

    def _raw_inline(self, body: Callable[[Tx], T], write: bool) -> T | object:
        """The transaction on the calling thread (the event loop's) if it needs no wait: its connection
        never waits on SQLite's lock (busy_timeout 0), and a write runs only if no writer of this process
        is writing. `_WOULD_WAIT` if it would have waited: then nothing was written (a busy BEGIN, write or
        COMMIT leaves nothing committed; what began is rolled back) and it runs again in a thread."""
        if write and not self._write_lock.acquire(blocking=False):
            return _WOULD_WAIT
        try:
            result = _raw_transaction(self._inline_connection(), body)
        except Exception as exc:
            if self._transient_error(getattr(exc, "orig", exc)):  # a hot statement's error comes wrapped
                return _WOULD_WAIT
            raise
        finally:
            if write:
                self._write_lock.release()
        if write and self._checkpointer is not None:
            self._checkpointer.wrote()
        return result

    def _inline_connection(self) -> sqlite3.Connection:
        """This thread's connection for inline transactions: one that never waits for a lock."""
        conn: sqlite3.Connection | None = getattr(self._local, "inline", None)
        if conn is None:
            conn = self._local.inline = self._connect()
            conn.execute("PRAGMA busy_timeout=0")
            with self._kept_lock:
                self._kept.append((threading.current_thread(), conn))
        return conn

    async def _run_raw(self, body: Callable[[Tx], T], *, write: bool) -> T:
        loop = asyncio.get_running_loop()
        if self.db_file:
            if is_private_loop(loop):
                return self._raw_in_thread(body, write)
            result = self._raw_inline(body, write)
            if result is not _WOULD_WAIT:
                return cast(T, result)
        return await loop.run_in_executor(self._writer if write else self._threads, self._raw_in_thread, body, write)

    def _transient_error(self, err: BaseException) -> bool:
        return is_transient(err)  # SQLite's busy/locked errors (kern.db.sqlite_dialect)

    async def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._threads.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        self._engine.dispose()
        with self._kept_lock:
            for _, conn in self._kept:
                conn.close()
            self._kept.clear()
        self._local = threading.local()  # every thread opens a new one if the store is used again

    def __repr__(self) -> str:
        return f"SqliteDb(db_file={self.db_file!r})"
