"""Database faults made to happen for real: PostgreSQL backends terminated while runs go, a COMMIT whose
answer is lost, a SQLite file locked by another connection, a database that stays away.

No run may end in ERROR because of the database; no completed step may run twice; what people see of a
store failure is a short message with an id, never SQL.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from kern.db.postgres import PostgresDb
from kern.db.sqlite import SqliteDb
from kern.exceptions import StoreError, StoreUnavailableError
from kern.workflow import RunStatus, Step, StepInput, Workflow
from tests.conftest import PG_URL, require_postgres, unique

# The protocol's SSLRequest (length 8, code 80877103): the server answers it with one unframed byte.
SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
# Command tags of a statement that commits when the server is idle after it (no transaction open).
COMMITTING = (b"COMMIT", b"INSERT", b"UPDATE", b"DELETE")


def counting_step(
    name: str,
    counts: Counter[tuple[str, str]],
    *,
    sleep: float = 0.05,
    started: asyncio.Event | None = None,
    **hitl: Any,
) -> Step:
    """A step that counts its executions per run, so a step run twice shows (and sets `started`)."""

    async def run(step_input: StepInput) -> str:
        counts[(step_input.run_id or "", name)] += 1
        if started is not None:
            started.set()
        await asyncio.sleep(sleep)
        return f"{name} done"

    return Step(name=name, executor=run, **hitl)


async def finish(workflow: Workflow, out: Any) -> Any:
    """Confirm every pause of a run until it ends."""
    while out.is_paused:
        out.step_requirements[-1].confirm(by="tester")
        out = await workflow.acontinue_run(out)
    return out


# ----- PostgreSQL: backends terminated while runs go ---------------------------------------------------


async def terminate_repeatedly(app: str, stop: asyncio.Event, kills: list[int], every: float = 0.1) -> None:
    """Terminate this test's backends (and only those: filtered by their application_name) until `stop`."""
    conn = await asyncpg.connect(
        PG_URL.replace("postgresql://", "postgres://"), server_settings={"application_name": app + "-killer"}
    )
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app
            )
            kills.append(sum(1 for r in rows if r[0]))
            await asyncio.sleep(every)
    finally:
        await conn.close()


async def test_postgres_backends_terminated_while_runs_go() -> None:
    require_postgres()
    app = unique("kern-dbfaults")
    db = PostgresDb(PG_URL, application_name=app, pool_size=4, max_overflow=4)
    counts: Counter[tuple[str, str]] = Counter()
    name = unique("blip")
    plain = Workflow(name=name, db=db, steps=[counting_step(f"p{i}", counts) for i in range(1, 6)])
    gated = Workflow(
        name=name,
        db=db,
        steps=[
            counting_step("g1", counts),
            counting_step("g2", counts, requires_confirmation=True),
            counting_step("g3", counts),
            counting_step("g4", counts, requires_confirmation=True),
        ],
    )
    await plain.arun("warm-up")  # tables exist before the faults start
    counts.clear()
    stop, kills = asyncio.Event(), []
    killer = asyncio.create_task(terminate_repeatedly(app, stop, kills))
    try:
        firsts = await asyncio.gather(
            *(plain.arun(f"plain {i}") for i in range(4)), *(gated.arun(f"gated {i}") for i in range(4))
        )
        assert [o.status for o in firsts[4:]] == [RunStatus.PAUSED] * 4
        assert {o.step_requirements[-1].step_name for o in firsts[4:]} == {"g2"}
        finals = [*firsts[:4], *await asyncio.gather(*(finish(gated, o) for o in firsts[4:]))]
    finally:
        stop.set()
        await killer
    assert sum(kills) >= 5, f"the faults did not happen (backends terminated: {sum(kills)})"
    assert [o.status for o in finals] == [RunStatus.COMPLETED] * 8, [o.content for o in finals]
    for out in finals:
        stored = await plain.aget_run(out.run_id)
        assert stored.status == RunStatus.COMPLETED
        steps = [f"p{i}" for i in range(1, 6)] if out.content == "p5 done" else ["g1", "g2", "g3", "g4"]
        assert {s: counts[(out.run_id, s)] for s in steps} == dict.fromkeys(steps, 1), "a step ran twice"
    await db.close()


# ----- PostgreSQL: a COMMIT whose outcome the client never learns -------------------------------------


class PgProxy:
    """A TCP proxy in front of the PostgreSQL server that can lose the server's answer to a commit (the
    server commits; the client's connection breaks), and can go down (refuse and cut every connection).

    A commit is what the server reports when it is idle again (ReadyForQuery 'I') after a COMMIT, or
    after a write run outside a transaction (a single-statement write is its own transaction): the
    proxy reads the server's messages, so it loses the answer to either, whichever protocol the client
    speaks. `lost_tags` are the command tags of the answers it lost ("COMMIT", "UPDATE 1", ...).
    """

    def __init__(self) -> None:
        self.lose_commit_in = 0  # lose the answer to the n-th commit from now (0: none)
        self.lost = 0
        self.lost_tags: list[str] = []
        self.down = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return re.sub(r"@[^/]+/", f"@127.0.0.1:{port}/", PG_URL)

    async def stop(self) -> None:
        self._server.close()
        self.cut()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.down:
            client_w.transport.abort()
            return
        self._handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        host, port = re.search(r"@([^:/]+):?(\d*)/", PG_URL).groups()  # type: ignore[union-attr]
        server_r, server_w = await asyncio.open_connection(host, int(port or 5432))
        self._writers |= {client_w, server_w}
        ssl_answer = asyncio.Event()  # set when the client asked for SSL: the first byte back is unframed

        async def upstream() -> None:
            first = True
            while data := await client_r.read(65536):
                if first and data.startswith(SSL_REQUEST):
                    ssl_answer.set()
                first = False
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            buffer, held = b"", b""  # held: from a write's CommandComplete to the ReadyForQuery after it
            while data := await server_r.read(65536):
                if ssl_answer.is_set() and not buffer and data[:1] in (b"N", b"S"):
                    ssl_answer.clear()
                    client_w.write(data[:1])
                    data = data[1:]
                buffer += data
                while len(buffer) >= 5:
                    size = int.from_bytes(buffer[1:5], "big") + 1
                    if len(buffer) < size:
                        break
                    message, buffer = buffer[:size], buffer[size:]
                    if not held and not (message[:1] == b"C" and message[5:].startswith(COMMITTING)):
                        client_w.write(message)
                        continue
                    held += message
                    if message[:1] != b"Z":
                        continue
                    # ReadyForQuery: b"I" (idle) means the write committed, b"T" that a transaction is open.
                    if message[5:6] == b"I" and self.lose_commit_in:
                        self.lose_commit_in -= 1
                        if not self.lose_commit_in:  # the server committed; the client never learns
                            self.lost += 1
                            tag = held[5 : held.index(b"\x00", 5)]
                            self.lost_tags.append(tag.decode())
                            return
                    client_w.write(held)
                    held = b""
                await client_w.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_w, server_w):
                self._writers.discard(writer)
                writer.transport.abort()
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)


@pytest.fixture
async def proxy() -> Any:
    require_postgres()
    p = PgProxy()
    p.url = await p.start()  # type: ignore[attr-defined]
    yield p
    await p.stop()


@pytest.mark.parametrize("write", ["insert", "update", "claim"])
async def test_lost_commit_answer_is_recognised_as_own_write(proxy: PgProxy, write: str) -> None:
    """The connection breaks right after COMMIT reached the server: the retry must find its own committed
    write (not raise LostOwnershipError / RunAlreadyResumedError, not insert twice, not run a step twice)."""
    db = PostgresDb(proxy.url, pool_size=2)  # type: ignore[attr-defined]
    counts: Counter[tuple[str, str]] = Counter()
    workflow = Workflow(
        name=unique("lostcommit"),
        db=db,
        steps=[counting_step("a", counts), counting_step("b", counts, requires_confirmation=True)],
    )
    await db.audit_log(run_id="none")  # tables exist: the first COMMIT from now on is the run's
    # Commits of a run: [insert before a] [update: paused at b] | continue: [claim] [update: completed].
    # The first is a transaction with its session's row (its answer: COMMIT); the update is one statement,
    # its own transaction (UPDATE 1); so is the claim with its audit row (one INSERT ... WITH UPDATE).
    if write in ("insert", "update"):
        proxy.lose_commit_in = 1 if write == "insert" else 2
    paused = await workflow.arun("x")
    assert paused.status == RunStatus.PAUSED, paused.content
    if write == "claim":
        proxy.lose_commit_in = 1
    paused.step_requirements[-1].confirm(by="tester")
    done = await workflow.acontinue_run(paused)
    meant = {"insert": "COMMIT", "update": "UPDATE 1", "claim": "INSERT 0 1"}[write]
    assert proxy.lost_tags == [meant], "not the commit meant was lost"
    assert done.status == RunStatus.COMPLETED, done.content
    assert (counts[(done.run_id, "a")], counts[(done.run_id, "b")]) == (1, 1)
    stored = await db.load_run(done.run_id)
    assert (stored.status, stored.version) == ("COMPLETED", 4)
    assert len(await db.audit_log(run_id=done.run_id)) == 1  # the confirmation, recorded once
    await db.close()


async def test_lost_commit_answer_of_resolve_approval(proxy: PgProxy) -> None:
    db = PostgresDb(proxy.url, pool_size=2)  # type: ignore[attr-defined]
    run_id, approval_id = unique("run"), unique("approval")
    output = {"run_id": run_id, "session_id": unique("s"), "workflow_name": "approvals", "status": "PAUSED"}
    approval = {"id": approval_id, "tool_name": "deploy", "approval_type": "required"}
    await db.save_run(output, {}, version=0, approvals=[approval])
    proxy.lose_commit_in = 1
    record = await db.resolve_approval(approval_id, approved=True, resolved_by="alice")
    assert proxy.lost == 1
    assert (record["status"], record["resolved_by"]) == ("approved", "alice")
    assert [a["decision"] for a in await db.audit_log(run_id=run_id)] == ["approved"]
    await db.close()


# ----- the database stays away longer than retry_for ---------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_postgres_unreachable_raises_short_store_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    db = PostgresDb(f"postgresql://postgres@127.0.0.1:{closed_port()}/test", retry_for=1)
    workflow = Workflow(name=unique("away"), db=db, steps=[counting_step("a", Counter())])
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="kern.db"), pytest.raises(StoreUnavailableError) as raised:
        await workflow.arun("x")
    assert 1.0 <= time.monotonic() - started < 10
    message, error_id = str(raised.value), raised.value.error_id
    assert re.fullmatch(r"[0-9a-f]{8}", error_id) and error_id in message
    assert len(message) < 120 and not re.search(r"select|insert|update|kern_|\[parameters", message, re.I)
    logged = [r for r in caplog.records if r.name == "kern.db" and error_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None


async def test_database_error_shows_no_sql(caplog: pytest.LogCaptureFixture) -> None:
    """A database error that is not transient (here a workflow name too long for its column) reaches
    people as a short StoreError with an id; the SQL and its parameters are only in the log."""
    require_postgres()
    db = PostgresDb(PG_URL)
    workflow = Workflow(name="w" * 300, db=db, steps=[counting_step("a", Counter())])
    with caplog.at_level(logging.ERROR, logger="kern.db"), pytest.raises(StoreError) as raised:
        await workflow.arun("secret input")
    message = str(raised.value)
    assert not isinstance(raised.value, StoreUnavailableError)
    assert raised.value.error_id in message and len(message) < 80
    assert not re.search(r"insert|kern_runs|secret|www", message, re.I)
    logged = [r for r in caplog.records if raised.value.error_id in r.getMessage()]
    assert logged and "INSERT INTO kern_" in str(logged[0].exc_info[1])  # type: ignore[index]
    await db.close()


async def test_postgres_outage_mid_run_leaves_it_running_for_takeover(proxy: PgProxy) -> None:
    """The database goes away during a step for longer than retry_for: the run is not ERROR; it stays
    RUNNING, and once the database is back and the lease has expired another process takes it over."""
    name, counts, in_b = unique("outage"), Counter(), asyncio.Event()
    b = counting_step("b", counts, sleep=0.5, started=in_b)
    steps = [counting_step("a", counts), b, counting_step("c", counts)]
    db = PostgresDb(proxy.url, retry_for=1, lease_seconds=1)  # type: ignore[attr-defined]
    workflow = Workflow(name=name, db=db, steps=steps)
    run = asyncio.create_task(workflow.arun("x"))
    await in_b.wait()
    proxy.down = True
    proxy.cut()
    with pytest.raises(StoreUnavailableError):
        await run
    proxy.down = False
    ((run_id, _),) = {key for key in counts if key[1] == "a"}
    other_db = PostgresDb(PG_URL)
    other = Workflow(name=name, db=other_db, steps=steps)
    assert (await other.aget_run(run_id)).status == RunStatus.RUNNING
    await asyncio.sleep(1.1)  # the lease runs out
    done = await other.acontinue_run(run_id=run_id)
    assert done.status == RunStatus.COMPLETED
    assert counts[(run_id, "a")] == 1  # journaled before the outage; b's result never was, so b ran again
    await db.close()
    await other_db.close()


# ----- SQLite: the file locked by another connection ---------------------------------------------------


def hold_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def lock_during_run(db: SqliteDb, seconds: float) -> tuple[Any, Counter[tuple[str, str]], float]:
    counts: Counter[tuple[str, str]] = Counter()
    in_a = asyncio.Event()
    steps = [counting_step("a", counts, sleep=0.2, started=in_a)]
    steps += [counting_step(s, counts, sleep=0.2) for s in ("b", "c", "d")]
    workflow = Workflow(name="locked", db=db, steps=steps)
    await db.audit_log(run_id="none")  # tables exist
    run = asyncio.create_task(workflow.arun("x"))
    await in_a.wait()
    locked = threading.Event()
    started = time.monotonic()
    holder = asyncio.create_task(asyncio.to_thread(hold_lock, Path(db.db_file or ""), seconds, locked))
    try:
        out = await run
    except StoreUnavailableError as exc:
        out = exc
    await holder
    return out, counts, time.monotonic() - started


async def test_sqlite_locked_for_seconds_run_completes(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "kern.db", busy_timeout=0.5)
    out, counts, took = await lock_during_run(db, 3.0)
    assert not isinstance(out, Exception), out
    assert out.status == RunStatus.COMPLETED, out.content
    assert took >= 3.0, "the run never waited for the lock"
    assert set(counts.values()) == {1} and len(counts) == 4
    assert (await db.load_run(out.run_id)).status == "COMPLETED"
    await db.close()


async def test_sqlite_locked_longer_than_retry_for_leaves_run_running(tmp_path: Path) -> None:
    db = SqliteDb(tmp_path / "kern.db", busy_timeout=0.2, retry_for=1)
    out, counts, _ = await lock_during_run(db, 2.5)
    assert isinstance(out, StoreUnavailableError), out
    assert "locked" not in str(out) and re.search(r"[0-9a-f]{8}", str(out))
    ((run_id, _),) = {key for key in counts if key[1] == "a"}
    assert (await db.load_run(run_id)).status == "RUNNING"
    await db.close()


async def test_postgres_stale_pooled_connections_are_replaced() -> None:
    """Pooled connections are not pinged before use: the server dropping them while idle (a restart, a
    failover, an idle timeout) costs a retry on a fresh connection, never an error."""
    require_postgres()
    app = unique("kern-stale")
    db = PostgresDb(PG_URL, application_name=app, pool_size=3, retry_for=5)
    await asyncio.gather(*(db.audit_log(run_id="none") for _ in range(3)))  # the pool now holds idle connections
    killer = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
    try:
        rows = await killer.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", app
        )
    finally:
        await killer.close()
    assert sum(1 for r in rows if r[0]) >= 1
    for _ in range(4):
        assert await db.audit_log(run_id="none") == []
    await db.close()
