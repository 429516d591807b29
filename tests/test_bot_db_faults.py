"""kern-bot while its database fails: PostgreSQL backends terminated again and again, the SQLite file
locked for seconds. No run ends in ERROR, no step runs twice, every pause is posted once, and what people
see of a database failure is a short message with an id, never SQL."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.db.sqlite import SqliteDb
from kern.run.base import RunStatus
from kern.workflow import Step, Workflow
from tests.conftest import PG_URL, require_postgres, unique
from tests.test_bot_e2e import SECRET, start_bot
from tests.test_db_faults import terminate_repeatedly

EXECUTED: Counter[tuple[str, str]] = Counter()


def counted(name: str) -> Any:
    async def run(step_input: Any) -> str:
        EXECUTED[(step_input.run_id, name)] += 1
        await asyncio.sleep(0.02)
        return f"{name} done"

    return run


def workflow() -> BotWorkflow:
    steps = [
        Step(name="build", executor=counted("build")),
        Step(name="test", executor=counted("test"), requires_confirmation=True),
        Step(name="ship", executor=counted("ship"), requires_confirmation=True),
    ]
    return BotWorkflow(Workflow(name=unique("faulty"), steps=steps), name="faulty")


def pauses(slack: DevSlack) -> list[Any]:
    return [m for m in slack.messages.values() if m.thread_ts and (m.metadata or {}).get("event_type") == "kern_pause"]


def cards(slack: DevSlack) -> list[str]:
    return [json.dumps(m.blocks) for m in slack.messages.values() if m.thread_ts is None] or [""]


def statuses(slack: DevSlack) -> list[str]:
    """Each card's status line, and how many pause messages each thread has (for failure messages)."""
    lines = []
    for m in slack.messages.values():
        if m.thread_ts is None:
            status = next(b["elements"][0]["text"] for b in m.blocks if b["type"] == "context")
            lines.append(f"{status} / {len(slack.thread(m.ts))} in thread")
    return lines


async def drive_runs(slack: DevSlack, runs: int) -> None:
    """Start `runs` runs, then approve every pause message as it appears, until all cards say Completed."""
    for _ in range(runs):
        status, _, _ = await slack.command("run faulty")
        assert status == 200
    clicked: set[str] = set()
    deadline = time.monotonic() + 60
    while sum("Completed" in c for c in cards(slack)) < runs:
        assert time.monotonic() < deadline, ([s for s in statuses(slack) if "Completed" not in s], slack.ephemeral)
        for message in pauses(slack):
            if message.ts not in clicked and "kern:confirm" in json.dumps(message.blocks):
                clicked.add(message.ts)
                element = next(
                    e for b in message.blocks for e in b.get("elements", []) if e.get("action_id") == ui.CONFIRM
                )
                await slack.click(ui.CONFIRM, stale=(message, element, ""))
        await asyncio.sleep(0.05)


async def check(db: BaseDb, entry: BotWorkflow, slack: DevSlack, runs: int) -> None:
    run_ids = {run_id for run_id, _ in EXECUTED if (run_id, "build") in EXECUTED}
    mine = [r for r in run_ids if r in {rid for rid, _name in EXECUTED}]
    statuses = [(await entry.workflow.aget_run(r)).status for r in mine]
    assert len(statuses) == runs and set(statuses) == {RunStatus.COMPLETED}
    assert all(EXECUTED[(r, n)] == 1 for r in mine for n in ("build", "test", "ship")), EXECUTED
    assert len(pauses(slack)) == 2 * runs  # every pause posted, once
    assert not any("SELECT" in c or "UPDATE" in c or "INSERT" in c for c in cards(slack))


async def test_postgres_backends_terminated_while_the_bot_works(tmp_path: Path) -> None:
    require_postgres()
    EXECUTED.clear()
    app = unique("kern-bot-faults")
    db = PostgresDb(db_url=PG_URL, application_name=app)
    entry = workflow()
    stop, kills = asyncio.Event(), []
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry([entry], db))
        bot.outbox.first_retry = 0.05
        slack.bot_endpoint = endpoint
        killer = asyncio.ensure_future(terminate_repeatedly(app, stop, kills, every=0.05))
        try:
            await drive_runs(slack, runs=5)
        finally:
            stop.set()
            await killer
            await bot.background.idle(10)
            await server.cleanup()
        assert sum(kills) >= 3  # the faults did happen
        await check(db, entry, slack, runs=5)
    await db.close()


def hold_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another process's view of the file: an exclusive transaction held for `seconds`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


async def test_sqlite_file_locked_for_seconds_while_the_bot_works(tmp_path: Path) -> None:
    EXECUTED.clear()
    path = tmp_path / "kern.db"
    db = SqliteDb(db_file=path, busy_timeout=0.2)
    entry = workflow()
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = endpoint
        try:
            await slack.command("run faulty")
            await slack.until(lambda: len(pauses(slack)) == 1)
            locked = threading.Event()
            holder = threading.Thread(target=hold_lock, args=(path, 2.0, locked))
            holder.start()
            await asyncio.to_thread(locked.wait)
            started = time.monotonic()
            await slack.click(ui.CONFIRM)  # resolved while the file is locked: retried until it is free
            await slack.until(lambda: len(pauses(slack)) == 2, within=20)
            assert time.monotonic() - started >= 1.5  # it really waited for the lock
            await asyncio.to_thread(holder.join)
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: "Completed" in cards(slack)[0])
        finally:
            await bot.background.idle(10)
            await server.cleanup()
        await check(db, entry, slack, runs=1)


LOCKS: dict[str, tuple[Path, float]] = {}


def locking(step_input: Any) -> str:
    """A step that, as it ends, has another process lock the database file (for longer than the store
    retries): the engine cannot journal its result."""
    path, seconds = LOCKS["x"]
    locked = threading.Event()
    threading.Thread(target=hold_lock, args=(path, seconds, locked), daemon=True).start()
    locked.wait()
    EXECUTED[(step_input.run_id, "lock")] += 1
    return "locked"


async def test_database_down_longer_than_retries_shows_an_id_not_sql(tmp_path: Path) -> None:
    """The database stays locked past the store's retries mid-run: the card says so with an error id (no
    SQL), the run stays RUNNING, and once the database is back a sweep takes it over and it finishes."""
    EXECUTED.clear()
    path = tmp_path / "kern.db"
    db = SqliteDb(db_file=path, busy_timeout=0.2, retry_for=0.5, lease_seconds=1.0)
    LOCKS["x"] = (path, 2.0)
    steps = [
        Step(name="build", executor=counted("build")),
        Step(name="lock", executor=locking),
        Step(name="ship", executor=counted("ship"), requires_confirmation=True),
    ]
    entry = BotWorkflow(Workflow(name=unique("faulty"), steps=steps), name="faulty")
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = endpoint
        try:
            await slack.command("run faulty")
            await slack.until(lambda: "The database" in cards(slack)[0], within=10)
            card = cards(slack)[0]
            assert "(error " in card and not any(word in card for word in ("SELECT", "UPDATE", "INSERT", "kern_"))
            run_id = next(r for r, name in EXECUTED if name == "build")
            assert (await entry.workflow.aget_run(run_id)).status == RunStatus.RUNNING  # not ERROR
            LOCKS["x"] = (path, 0.0)  # the takeover's own run of the step does not lock for long
            await asyncio.sleep(2.2)  # the lock is released and the stopped run's lease has run out
            assert await sweep_once(bot.runner, bot.registry) == 1
            await slack.until(lambda: len(pauses(slack)) == 1, within=20)
            await slack.click(ui.CONFIRM)
            await slack.until(lambda: "Completed" in cards(slack)[0])
        finally:
            await bot.background.idle(10)
            await server.cleanup()
    assert (await entry.workflow.aget_run(run_id)).status == RunStatus.COMPLETED
    assert EXECUTED[(run_id, "build")] == 1 and EXECUTED[(run_id, "lock")] == 2 and EXECUTED[(run_id, "ship")] == 1
