"""Acknowledged means durable, against real `kern-bot serve` processes and the local Slack stand-in.

1. A click, or a `/kern run`, acked a few milliseconds before the process is killed (SIGKILL, several
   delays): the next process applies it, once. SQLite and PostgreSQL.
2. The disk is full (RLIMIT_FSIZE on the bot process, SQLite): a click and a `/kern run` made meanwhile are
   refused visibly; once there is room again, clicks apply.
3. A PostgreSQL table lock with a short `statement_timeout`: a click and a `/kern run` made during the lock
   are kept, their people told so, and applied once the lock is gone; nobody sees "The database failed".
4. Another process holds SQLite's write lock past ACK_WAIT: the click is acked in time all the same (Slack
   gives up at 3 s), and applied once its row is written; or, if the row then cannot be written (the disk
   filled meanwhile), its person is told nothing happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.registry import BotWorkflow
from bot.runs.jobs import ACK_WAIT
from kern.workflow import Step, Workflow
from tests.conftest import free_port, fresh_database, unique
from tests.test_bot_e2e import SECRET
from tests.test_bot_recovery import Bots

DELAYS_MS = (5, 15, 25, 35, 45, 55)


def _ship(step_input: Any) -> str:
    with open(os.environ["ACKS_LOG"], "a") as f:
        f.write(f"ship:{step_input.run_id}\n")
    return "shipped"


def flows() -> list[BotWorkflow]:
    """Built in each bot process (KERN_WORKFLOWS=tests.test_bot_acks:flows)."""
    workflow = Workflow(
        name=os.environ["ACKS_FLOW_NAME"],
        steps=[
            Step(name="build", executor=lambda s: "built"),
            Step(name="ship", executor=_ship, requires_confirmation=True),
        ],
    )
    return [BotWorkflow(workflow, name="acks")]


def acks_bots(slack: DevSlack, db_url: str, tmp: Path, **env: str) -> Bots:
    bots = Bots(slack, db_url, tmp)
    bots.env.update(
        KERN_WORKFLOWS="tests.test_bot_acks:flows",
        ACKS_FLOW_NAME=unique("acks"),
        ACKS_LOG=str(tmp / "ship.log"),
        **env,
    )
    return bots


def shipped(tmp: Path) -> list[str]:
    log = tmp / "ship.log"
    return log.read_text().split() if log.exists() else []


def cards(slack: DevSlack) -> list[str]:
    return [json.dumps(m.blocks) for m in slack.messages.values() if m.thread_ts is None]


def pause_messages(slack: DevSlack) -> list[Any]:
    return [m for m in slack.messages.values() if m.thread_ts and (m.metadata or {}).get("event_type") == "kern_pause"]


def told(slack: DevSlack) -> list[str]:
    return [e["text"] for e in slack.ephemeral]


def _ports() -> Iterator[int]:
    while True:
        yield free_port()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of the test's own: jobs a killed process left are this test's alone."""
    if request.param == "postgres":
        async with fresh_database() as url:
            yield url
    else:
        yield str(tmp_path / "kern.db")


async def click_pause(slack: DevSlack, message: Any) -> int:
    """Click Approve on one pause message; returns the HTTP status of the ack."""
    element = next(e for b in message.blocks for e in b.get("elements", []) if e.get("action_id") == ui.CONFIRM)
    status, _, _ = await slack.click(ui.CONFIRM, stale=(message, element, ""))
    return status


# ----- 1. killed right after the ack ----------------------------------------------------------------------
async def test_clicks_acked_just_before_a_kill_are_applied(db_url: str, tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = acks_bots(slack, db_url, tmp_path)
        ports = _ports()
        try:
            await bots.start(next(ports))
            for _ in DELAYS_MS:
                await slack.command("run acks")
            await slack.until(lambda: len(pause_messages(slack)) == len(DELAYS_MS), within=30)
            waiting = list(pause_messages(slack))
            for message, delay in zip(waiting, DELAYS_MS, strict=True):
                assert await click_pause(slack, message) == 200
                await asyncio.sleep(delay / 1000)
                bots.kill()  # SIGKILL, `delay` ms after the ack
                await bots.start(next(ports))
            # The last process's sweeps take up what the killed ones acknowledged (their holds expire in 1 s).
            await slack.until(lambda: sum("Completed" in c for c in cards(slack)) == len(DELAYS_MS), within=40)
            # Each run went on past its pause (a step killed while it ran runs again: kern's at-least-once
            # for the step in flight), each click decided its pause once: nobody was told it was answered.
            assert len(set(shipped(tmp_path))) == len(DELAYS_MS)
            assert len([m for m in slack.messages.values() if "Approved by" in json.dumps(m.blocks)]) == len(DELAYS_MS)
            assert not [t for t in told(slack) if "not" in t], told(slack)  # nobody told of a failure
        finally:
            bots.stop_all()


async def test_starts_acked_just_before_a_kill_start(db_url: str, tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = acks_bots(slack, db_url, tmp_path)
        ports = _ports()
        try:
            for delay in DELAYS_MS:
                await bots.start(next(ports))
                status, answer, _ = await slack.command("run acks")
                assert status == 200 and "Starting" in answer
                await asyncio.sleep(delay / 1000)
                bots.kill()
            await bots.start(next(ports))
            await slack.until(lambda: sum("Waiting: ship" in c for c in cards(slack)) == len(DELAYS_MS), within=40)
            await asyncio.sleep(1.5)  # a second start of any of them would show by now
            # (A pause message may be posted twice when the kill lands between its post and its record: the
            # outbox's own window, not the start's.)
            # Every start started once, on one card: a card posted by a killed attempt (before its row was
            # saved) is found again by the run id its metadata carries, not posted twice.
            assert len(cards(slack)) == len(DELAYS_MS), [c[:300] for c in cards(slack)]
            assert all("Waiting: ship" in c for c in cards(slack)), cards(slack)
        finally:
            bots.stop_all()


# ----- 2. disk full ---------------------------------------------------------------------------------------
def set_file_limit(pid: int, limit: int) -> None:
    """RLIMIT_FSIZE of a running process (its soft limit; the hard one stays): a write past `limit` bytes
    of any file fails with EFBIG, as on a full disk."""
    _soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


async def test_disk_full_refuses_visibly_then_applies(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = acks_bots(slack, str(tmp_path / "kern.db"), tmp_path)
        try:
            await bots.start(next(_ports()))
            await slack.command("run acks")
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            pid = bots.procs[-1].pid
            set_file_limit(pid, 1)  # from now on no file of the bot's grows: the disk is full
            assert await click_pause(slack, pause_messages(slack)[0]) == 200
            await slack.until(lambda: any("click was not recorded" in t for t in told(slack)), within=10)
            status, answer, _ = await slack.command("run acks")
            assert status == 200 and "did not start" in answer and "Starting" not in answer
            assert not any("error" in t.lower() for t in [*told(slack), answer])  # plain words, no internals
            assert shipped(tmp_path) == [] and len(cards(slack)) == 1
            set_file_limit(pid, resource.RLIM_INFINITY)  # room again: the next click applies
            assert await click_pause(slack, pause_messages(slack)[0]) == 200
            await slack.until(lambda: "Completed" in cards(slack)[0], within=20)
            assert len(shipped(tmp_path)) == 1
        finally:
            bots.stop_all()


async def start_unhealthy(bots: Bots, port: int) -> None:
    """A new `kern-bot serve` on `port`, once it answers /health at all (it may well say the database is not
    ok); Slack now calls it."""
    bots.spawn(port)
    async with aiohttp.ClientSession() as session:
        for _ in range(400):
            try:
                async with session.get(f"http://127.0.0.1:{port}/health"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("kern-bot serve did not start")
    bots.slack.bot_endpoint = f"http://127.0.0.1:{port}/slack/events"


def read_only(path: Path, on: bool) -> None:
    """Make a file read-only even for root (who ignores its mode bits): the immutable attribute."""
    if on:
        path.chmod(0o444)
    if shutil.which("chattr") and os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if on else "-i", str(path)], check=on)
    if not on:
        path.chmod(0o644)


async def test_read_only_database_refuses_visibly(tmp_path: Path) -> None:
    """The database file turns read-only under a running bot's successor: a click and a `/kern run` are
    answered, and their people told that nothing happened."""
    db = tmp_path / "kern.db"
    async with DevSlack(SECRET) as slack:
        bots = acks_bots(slack, str(db), tmp_path)
        ports = _ports()
        try:
            await bots.start(next(ports))
            await slack.command("run acks")
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            bots.stop_all()  # a clean stop: the next process opens the file anew
            read_only(db, True)
            await start_unhealthy(bots, next(ports))
            assert await click_pause(slack, pause_messages(slack)[0]) == 200
            await slack.until(lambda: any("click was not recorded" in t for t in told(slack)), within=10)
            status, answer, _ = await slack.command("run acks")
            assert status == 200 and "did not start" in answer
            assert shipped(tmp_path) == [] and len(cards(slack)) == 1
        finally:
            bots.stop_all()
            read_only(db, False)


# ----- 3. a PostgreSQL table lock with statement_timeout --------------------------------------------------
async def test_postgres_lock_keeps_clicks_and_starts_until_it_ends(tmp_path: Path) -> None:
    async with fresh_database(300) as url, DevSlack(SECRET) as slack:
        bots = acks_bots(slack, url, tmp_path)
        try:
            await bots.start(next(_ports()))
            await slack.command("run acks")
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            locker = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
            try:
                await locker.execute("BEGIN; LOCK TABLE kern_runs IN ACCESS EXCLUSIVE MODE")
                assert await click_pause(slack, pause_messages(slack)[0]) == 200
                status, answer, _ = await slack.command("run acks")
                assert status == 200 and "Starting" in answer
                await slack.until(lambda: any("click is saved" in t for t in told(slack)), within=15)
                await slack.until(lambda: any("has not started yet" in t for t in told(slack)), within=15)
                await asyncio.sleep(2.0)  # the lock holds a while longer: nothing is applied meanwhile
                assert shipped(tmp_path) == []
            finally:
                await locker.execute("COMMIT")
                await locker.close()
            await slack.until(lambda: any("Completed" in c for c in cards(slack)), within=30)
            await slack.until(lambda: len(pause_messages(slack)) == 2, within=30)  # the second run started
            assert len(shipped(tmp_path)) == 1 and len(cards(slack)) == 2
            everything = told(slack) + cards(slack)
            assert not any("database failed" in t or "(error" in t for t in everything), everything
        finally:
            bots.stop_all()


async def test_postgres_lock_longer_than_give_up_tells_people_plainly(tmp_path: Path) -> None:
    """The lock outlasts KERN_GIVE_UP_SECONDS: the click and the start are dropped, their people told so in
    plain words, and neither happens once the lock is gone."""
    async with fresh_database(300) as url, DevSlack(SECRET) as slack:
        bots = acks_bots(slack, url, tmp_path, KERN_GIVE_UP_SECONDS="2")
        try:
            await bots.start(next(_ports()))
            await slack.command("run acks")
            await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
            locker = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
            try:
                await locker.execute("BEGIN; LOCK TABLE kern_runs IN ACCESS EXCLUSIVE MODE")
                assert await click_pause(slack, pause_messages(slack)[0]) == 200
                status, answer, _ = await slack.command("run acks")
                assert status == 200 and "Starting" in answer
                await slack.until(lambda: any("click was not applied" in t for t in told(slack)), within=20)
                await slack.until(lambda: any("did not start" in t for t in told(slack)), within=20)
            finally:
                await locker.execute("COMMIT")
                await locker.close()
            await asyncio.sleep(3)  # sweeps meanwhile: nothing dropped comes back
            assert shipped(tmp_path) == [] and "Completed" not in cards(slack)[0]
            assert sum("Approval needed" in json.dumps(m.blocks) for m in slack.messages.values()) == 1
            assert any("did not start" in c for c in cards(slack)[1:])  # the second card says so too
            everything = told(slack) + cards(slack)
            assert not any("database failed" in t or "(error" in t for t in everything), everything
        finally:
            bots.stop_all()


# ----- 4. the row takes longer than an ack may wait -------------------------------------------------------
@contextlib.contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another process's writer: SQLite's write lock taken (BEGIN IMMEDIATE) until the block ends."""
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        locker.execute("COMMIT")
        locker.close()


async def click_with_the_row_held(bots: Bots, port: int, meanwhile: Callable[[], Awaitable[None]]) -> None:
    """Pause a run, then click its Approve while another process holds SQLite's write lock: the click is acked
    in time all the same (ACK_WAIT, under Slack's 3 s); `meanwhile()` runs before the lock is let go."""
    slack = bots.slack
    await bots.start(port)
    await slack.command("run acks")
    await slack.until(lambda: len(pause_messages(slack)) == 1, within=20)
    with write_lock_held(Path(bots.env["KERN_DB"])):
        status, _, took = await slack.click(ui.CONFIRM)
        assert status == 200 and ACK_WAIT - 0.1 <= took < 3.0, took
        await meanwhile()


async def test_a_click_whose_row_waits_past_ack_wait_is_acked_then_applied(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        # Jobs held 60 s: applied within the test only by the process that wrote it, not by a sweep.
        bots = acks_bots(slack, str(tmp_path / "kern.db"), tmp_path, KERN_LEASE_SECONDS="60")

        async def nothing_applied_yet() -> None:
            await asyncio.sleep(0.5)
            assert shipped(tmp_path) == []

        try:
            await click_with_the_row_held(bots, next(_ports()), nothing_applied_yet)
            await slack.until(lambda: "Completed" in cards(slack)[0], within=10)  # its row written: it runs
            assert shipped(tmp_path) and not told(slack), told(slack)
        finally:
            bots.stop_all()


async def test_a_click_whose_row_fails_after_its_ack_is_told(tmp_path: Path) -> None:
    async with DevSlack(SECRET) as slack:
        bots = acks_bots(slack, str(tmp_path / "kern.db"), tmp_path)

        async def disk_fills() -> None:  # before the row is written
            set_file_limit(bots.procs[-1].pid, 1)

        try:
            await click_with_the_row_held(bots, next(_ports()), disk_fills)
            await slack.until(lambda: any("click was not recorded" in t for t in told(slack)), within=20)
            await asyncio.sleep(1.0)
            assert shipped(tmp_path) == [] and "Completed" not in cards(slack)[0]
        finally:
            bots.stop_all()
