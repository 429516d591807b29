"""PostgreSQL: the spare connection a sync-API thread's loop keeps for the hot transactions
(kern.db.pg_spare), on the real server. What it must keep: a bound on connections, recovery when the
server drops it, nothing left begun on it after a failed transaction, no connection left behind by a
closed or forgotten store, and none at all on an async caller's loop.

Each test body runs through `run_sync`, on the main thread's own loop, as a sync kern call does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from kern._sync import run_sync
from kern.db.hot import Tx
from kern.db.postgres import PostgresDb
from kern.exceptions import StoreError
from tests.conftest import PG_URL, require_postgres, unique

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = PG_URL.replace("postgresql://", "postgres://")
PID = sa.text("SELECT pg_backend_pid()")


async def backends(app: str) -> list[asyncpg.Record]:
    """The server's sessions of the store named `app`: (pid, state)."""
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        return list(await conn.fetch("SELECT pid, state FROM pg_stat_activity WHERE application_name = $1", app))
    finally:
        await conn.close()


async def ended(app: str, pid: int | None = None, within: float = 10.0) -> bool:
    """Wait until the server has no session of `app` left (or none with `pid`)."""
    deadline = time.monotonic() + within
    while any(pid is None or r["pid"] == pid for r in await backends(app)):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def hot_pid(db: PostgresDb) -> int:
    """The backend a hot transaction ran on."""
    sql = db.prepare(PID)
    row = await db.run_hot(lambda tx: tx.first(sql, {}), write=False)
    assert row is not None
    return int(row[0])


@pytest.fixture(autouse=True)
def _postgres() -> None:
    require_postgres()


def on_a_sync_callers_loop(body: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test's body run through `run_sync`: on the main thread's own loop, as a sync kern call runs."""

    def test() -> None:
        run_sync(body())

    test.__doc__ = body.__doc__
    return test


@on_a_sync_callers_loop
async def test_hot_transactions_on_one_loop_reuse_its_spare_and_stay_within_the_bound() -> None:
    app = unique("kern-spare")
    db = PostgresDb(PG_URL, application_name=app, pool_size=2, max_overflow=0)
    try:
        first = await hot_pid(db)
        assert [await hot_pid(db) for _ in range(5)] == [first] * 5

        # 20 at once: the spare takes one, the pool (2) the rest in turn; at most pool_size + 1 sessions.
        seen: set[int] = set()
        sql = db.prepare(sa.text("SELECT pg_backend_pid(), pg_sleep(0.02)"))

        def body(tx: Tx) -> None:
            row = tx.first(sql, {})
            assert row is not None
            seen.add(int(row[0]))

        await asyncio.gather(*(db.run_hot(body, write=False) for _ in range(20)))
        assert first in seen and len(seen) == 3, seen
        assert len(await backends(app)) <= 3
        assert await hot_pid(db) == first  # still the spare once the burst is over
    finally:
        await db.close()
    assert await ended(app), "close() left a session open"


@on_a_sync_callers_loop
async def test_spare_dropped_by_the_server_is_replaced_without_an_error() -> None:
    app = unique("kern-spare-kill")
    db = PostgresDb(PG_URL, application_name=app, retry_for=5)
    try:
        before = await hot_pid(db)
        admin = await asyncpg.connect(ADMIN_URL)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", before)
        finally:
            await admin.close()
        await asyncio.sleep(0.1)  # the connection's end reaches the client
        after = await hot_pid(db)
        assert after != before
        assert await hot_pid(db) == after  # the new connection is the spare now
        assert await db.audit_log(run_id="none") == []  # and the store works on
    finally:
        await db.close()


@on_a_sync_callers_loop
async def test_spare_killed_mid_transaction_is_retried_on_a_fresh_connection() -> None:
    app = unique("kern-spare-mid")
    db = PostgresDb(PG_URL, application_name=app, retry_for=5)
    attempts: list[int] = []
    sql = db.prepare(sa.text("SELECT pg_backend_pid(), pg_terminate_backend(pg_backend_pid())"))
    pid_sql = db.prepare(PID)
    try:
        spare = await hot_pid(db)

        def body(tx: Tx) -> int:
            row = tx.first(pid_sql, {})
            assert row is not None
            attempts.append(int(row[0]))
            if len(attempts) == 1:
                tx.first(sql, {})  # the server ends this session under the transaction
            return attempts[-1]

        pid = await db.run_hot(body, write=False)
        assert attempts[0] == spare and pid != spare and len(attempts) == 2
    finally:
        await db.close()


@on_a_sync_callers_loop
async def test_failed_transaction_leaves_the_spare_clean_and_kept() -> None:
    app = unique("kern-spare-fail")
    db = PostgresDb(PG_URL, application_name=app)
    table = unique("spare_t").replace("-", "_")
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY)")
    try:
        insert = db.prepare(sa.text(f"INSERT INTO {table} VALUES (:id)"))
        spare = await hot_pid(db)

        def duplicate(tx: Tx) -> None:
            tx.execute(insert, {"id": 1})  # BEGIN, then the row
            tx.execute(insert, {"id": 1})  # a unique violation: not a connection failure

        with pytest.raises(StoreError):  # (the unique violation, in the kern.db log)
            await db.run_hot(duplicate)
        assert await hot_pid(db) == spare  # rolled back and kept, not dropped
        states = {r["pid"]: r["state"] for r in await backends(app)}
        assert states[spare] == "idle"  # nothing left begun on it
        assert await admin.fetchval(f"SELECT count(*) FROM {table}") == 0  # the first row was rolled back
    finally:
        await db.close()
        await admin.execute(f"DROP TABLE {table}")
        await admin.close()


@on_a_sync_callers_loop
async def test_cancelled_transaction_drops_the_spare() -> None:
    app = unique("kern-spare-cancel")
    db = PostgresDb(PG_URL, application_name=app)
    try:
        spare = await hot_pid(db)
        slow = db.prepare(sa.text("SELECT pg_sleep(5)"))
        task = asyncio.create_task(db.run_hot(lambda tx: tx.first(slow, {}), write=False))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # a connection stopped mid-statement is not reused: the next transaction gets another one
        assert await hot_pid(db) != spare
        assert await ended(app, spare), "the cancelled spare is still connected"
    finally:
        await db.close()


async def test_an_async_callers_loop_keeps_no_spare() -> None:
    """On a loop that is not a sync call's (the bot's, an `asyncio.run`), the pool serves every
    transaction: two at once with pool_size=1 share its one connection, one after the other."""
    app = unique("kern-spare-async")
    db = PostgresDb(PG_URL, application_name=app, pool_size=1, max_overflow=0)
    sql = db.prepare(sa.text("SELECT pg_backend_pid(), pg_sleep(0.05)"))
    try:
        rows = await asyncio.gather(*(db.run_hot(lambda tx: tx.first(sql, {}), write=False) for _ in range(2)))
        assert len({row[0] for row in rows if row is not None}) == 1
        assert len(await backends(app)) == 1
    finally:
        await db.close()
    assert await ended(app)


FORGETFUL_SCRIPT = """
import asyncio, gc, sys
from kern._sync import run_sync
from kern.db.postgres import PostgresDb
from tests.test_pg_spare import ended, hot_pid

url, app = sys.argv[1:3]
db = PostgresDb(url, application_name=app)
run_sync(hot_pid(db))
del db  # never closed
gc.collect()
run_sync(asyncio.sleep(0.05))  # the thread's loop runs again: the dropped socket is closed there
print("ended" if asyncio.run(ended(app)) else "still connected")
"""


def test_sync_store_forgotten_without_close_ends_its_spare_quietly() -> None:
    """A script that never closes its store: the spare kept on its thread's loop is terminated when the
    store is collected, with no ResourceWarning, and the server's session ends. (Its own interpreter, so
    that no other test's garbage is collected, and warned about, with it.)"""
    app = unique("kern-spare-gc")
    done = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", FORGETFUL_SCRIPT, PG_URL, app],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ended"
    assert "unclosed" not in done.stderr, done.stderr[-2000:]
