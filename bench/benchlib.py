"""Shared pieces of the benchmarks: summary statistics, a throwaway PostgreSQL database, and the floor.

The floor is what one pause cycle cannot go below on a given database: two transactions on the bare
driver, an INSERT of a row with a JSON payload and a compare-and-set UPDATE of it (the shape of kern's
writes: one run row, its version checked and bumped), each in its own transaction. sqlite3 with WAL and
synchronous=NORMAL (kern's settings); asyncpg for PostgreSQL, statements prepared once.

Two variants, timed alternately: the floor proper runs each transaction as a store does, BEGIN,
statement, COMMIT (on PostgreSQL three round trips); `single_ms` collects the bare minimum, each
statement its own implicit transaction (one round trip, nothing else could be added to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# The scripts run as `python bench/x.py`, so sys.path[0] is bench/ and `import kern` would find whatever
# kern is installed (an editable install of another checkout, say). Importing this module first puts the
# checkout that holds it ahead, so a benchmark always measures the code next to it.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG_SERVER_URL = os.environ.get("KERN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
# About the size of kern's stored output + journal for the 3-step benchmark workflow (0.8-1.5 KB).
PAYLOAD_BYTES = 1200
APP_NAME = "kern-bench"


@dataclass
class Stats:
    """Milliseconds per cycle: median, tail, and drift (the median of the first and last 20 cycles)."""

    cycles: int
    median: float
    p90: float
    p99: float
    first20: float
    last20: float

    @property
    def drift(self) -> float:
        return self.last20 / self.first20 if self.first20 else float("nan")


def summarize(ms: list[float]) -> Stats:
    ordered = sorted(ms)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]

    return Stats(
        cycles=len(ms),
        median=statistics.median(ms),
        p90=pct(0.9),
        p99=pct(0.99),
        first20=statistics.median(ms[:20]),
        last20=statistics.median(ms[-20:]),
    )


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server (`postgresql://...`; query string kept)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


@contextlib.contextmanager
def fresh_pg_database(server_url: str = PG_SERVER_URL) -> Iterator[str]:
    """A new, uniquely named database on the shared server, dropped afterwards: benchmarks never touch
    tables other people use, and 100k bulk-inserted rows do not outlive the run."""
    name = f"kern_bench_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(server_url, server_settings={"application_name": APP_NAME})
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(server_url, name)
    finally:
        # Every connection to this database is one of ours (its name is unique); FORCE ends those that
        # a library kept open in a pool we could not reach.
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def payload(size: int = PAYLOAD_BYTES) -> str:
    return json.dumps({"status": "PAUSED", "step_results": [], "padding": "x" * max(0, size - 60)})


class SqliteFloor:
    """INSERT + compare-and-set UPDATE, two transactions, sqlite3 with WAL and synchronous=NORMAL."""

    label = "floor"

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE floor_runs (id TEXT PRIMARY KEY, version INTEGER NOT NULL, payload TEXT)")
        self.body = payload()
        self.single_ms: list[float] = []

    def _cycle(self, explicit: bool) -> float:
        run_id = uuid.uuid4().hex
        start = time.perf_counter()
        for sql, params in (
            ("INSERT INTO floor_runs VALUES (?, 1, ?)", (run_id, self.body)),
            (
                "UPDATE floor_runs SET payload = ?, version = version + 1 WHERE id = ? AND version = ?",
                (self.body, run_id, 1),
            ),
        ):
            if explicit:
                self.conn.execute("BEGIN")
            cur = self.conn.execute(sql, params)
            assert cur.rowcount == 1
            if explicit:
                self.conn.execute("COMMIT")
        return (time.perf_counter() - start) * 1000

    def cycles(self, n: int) -> list[float]:
        """`n` floor cycles with BEGIN/COMMIT (returned), each followed by one without (to `single_ms`)."""
        out: list[float] = []
        for _ in range(n):
            out.append(self._cycle(explicit=True))
            self.single_ms.append(self._cycle(explicit=False))
        return out

    def close(self) -> None:
        self.conn.close()


class PostgresFloor:
    """INSERT + compare-and-set UPDATE, two transactions (one statement each), asyncpg, in a table of its
    own (dropped on close) in the database `url` names."""

    label = "floor"

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.table = f"floor_runs_{uuid.uuid4().hex[:10]}"
        self.body = payload()
        self.single_ms: list[float] = []
        self.conn: asyncpg.Connection = self.loop.run_until_complete(self._open(url))

    async def _open(self, url: str) -> asyncpg.Connection:
        conn = await asyncpg.connect(url, server_settings={"application_name": APP_NAME})
        await conn.execute(f"CREATE TABLE {self.table} (id TEXT PRIMARY KEY, version INTEGER NOT NULL, payload JSON)")
        self.insert = await conn.prepare(f"INSERT INTO {self.table} VALUES ($1, 1, $2::json)")
        self.update = await conn.prepare(
            f"UPDATE {self.table} SET payload = $1::json, version = version + 1 WHERE id = $2 AND version = $3"
        )
        return conn

    async def _cycle(self, explicit: bool) -> float:
        run_id = uuid.uuid4().hex
        start = time.perf_counter()
        for statement, args in ((self.insert, (run_id, self.body)), (self.update, (self.body, run_id, 1))):
            if explicit:
                async with self.conn.transaction():
                    await statement.fetch(*args)
            else:
                await statement.fetch(*args)
        assert self.update.get_statusmsg() == "UPDATE 1"
        return (time.perf_counter() - start) * 1000

    async def _cycles(self, n: int) -> list[float]:
        out: list[float] = []
        for _ in range(n):
            out.append(await self._cycle(explicit=True))
            self.single_ms.append(await self._cycle(explicit=False))
        return out

    def cycles(self, n: int) -> list[float]:
        return self.loop.run_until_complete(self._cycles(n))

    def close(self) -> None:
        async def shut() -> None:
            await self.conn.execute(f"DROP TABLE IF EXISTS {self.table}")
            await self.conn.close()

        self.loop.run_until_complete(shut())
        self.loop.close()
