"""Acknowledged means durable: work the bot answers Slack for is in the database before the answer.

A click is acked with an empty 200 and a `/kern run` with "Starting…", and Slack never sends either again.
So before that answer the request is written as a job (`accept`): one row keyed by the request, so a
repeated delivery is a repeat (the row is its dedupe record, as `bot.slack.dedupe`'s are for other requests).
Rows of requests arriving together are written in one statement (a burst of clicks costs a few commits,
not one each; on PostgreSQL through a small pool of their own, so an ack never queues for a connection
behind the work of earlier clicks), and an ack waits for its row at most ACK_WAIT seconds: past that it
goes, and the row is still written (the job then runs) or its person told it was not.

A job is then run (`run`) by the process that accepted it, which holds it (`next_at` is the hold's end).
It is done in the transaction that applies it: the work names the run it acts on (`working_on`), and
kern's watcher transaction of that run (the decision recorded, the run created) marks the job done too.
Work that ends without changing a run (a refusal told, a vote counted) is marked done when it ends. A
job that failed (the database did not answer) is left for later with backoff, and a process that died
holding one leaves it to the hold's end: any process's sweep (`sweep`) then claims it, compare-and-set,
so exactly one runs it again. Running a job again is safe: a decision is compare-and-set in kern, and a
start reuses the run id fixed when it was accepted.

Nobody waits in silence: a job that fails is told to its person once ("kept, will be applied"), and one
that still fails after `give_up` seconds is dropped and its person told it did not happen. A request
whose row cannot be written at all (a full disk, a read-only file) is answered, and its person told at
once that nothing was done.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bot.blocks.text import escape
from bot.runs.background import CURRENT_JOB, JOB_TASKS, Background
from bot.store.tables import jobs
from bot.store.transactions import StoreBase
from kern.db.base import BaseDb, RunChange
from kern.db.hot import Tx
from kern.db.retry import Attempt
from kern.exceptions import StoreError, StoreUnavailableError

log = logging.getLogger("kern_bot")

CLICK, START = "click", "start"
ACK_WAIT = 2.0  # seconds an ack waits for its job's row (Slack gives up at 3)
GIVE_UP = 300.0  # seconds a job is retried before its person is told it did not happen
MAX_BATCH = 64  # rows written by one accepting statement
WRITERS = 4  # accepting transactions in flight at once (clicks arriving meanwhile wait for the next one)
KEEP = 600.0  # seconds an ended job's row is kept: a repeated delivery is recognised that long (2 x 300 s)
PRUNE_EVERY = 60.0
_FIRST_RETRY, _MAX_RETRY = 0.5, 15.0

# What a job's person is told, per kind and event: REFUSED (it could not even be written: nothing
# happened), RETRYING (its first failure: it is kept), GAVE_UP (still failing after `give_up` seconds).
REFUSED, RETRYING, GAVE_UP = "refused", "retrying", "gave_up"
MESSAGES = {
    CLICK: {
        REFUSED: ":warning: Your click was not recorded: {why}. Nothing changed; please try again in a moment.",
        RETRYING: ":hourglass: Your click is saved, but {why}: it will be applied as soon as it can be.",
        GAVE_UP: ":warning: Your click was not applied: {why} for {minutes}. Nothing changed; please click again.",
    },
    START: {
        REFUSED: ":warning: `{workflow}` did not start: {why}. Nothing ran; please try again in a moment.",
        RETRYING: ":hourglass: `{workflow}` has not started yet: {why}. It will start as soon as it can.",
        GAVE_UP: ":warning: `{workflow}` did not start: {why} for {minutes}. Nothing ran; please try again.",
    },
}

_c = jobs.c
_SELECT = sa.select(_c.key, _c.kind, _c.payload, _c.attempts, _c.created_at)
_DONE = (
    jobs.update()
    .where(_c.key == sa.bindparam("b_key"), _c.status == "pending")
    .values(status=sa.bindparam("b_status"), next_at=sa.bindparam("b_now"), claimed_by=sa.null())
)
_LATER = (
    jobs.update()
    .where(_c.key == sa.bindparam("b_key"), _c.status == "pending")
    .values(attempts=_c.attempts + sa.bindparam("b_count"), next_at=sa.bindparam("b_at"), claimed_by=sa.null())
)
_PRUNE = jobs.delete().where(_c.status != "pending", _c.next_at < sa.bindparam("b_before"))
_INSERTS: dict[tuple[Any, int], tuple[sa.Insert, sa.Select[Any]]] = {}


def _size(n: int) -> int:
    """The batch size `n` rows are written with: a power of two, so that a few statements serve every
    burst (each compiled once; a batch is padded by repeating its last row, which the INSERT skips)."""
    return 1 << (n - 1).bit_length()


def _batch_statements(db: BaseDb, n: int) -> tuple[sa.Insert, sa.Select[Any]]:
    """(INSERT of n jobs that skips keys already there, SELECT of those of the n keys this batch wrote)."""
    key = (db.dialect_insert, n)
    statements = _INSERTS.get(key)
    if statements is None:
        names = ("key", "kind", "payload")
        rows = [{name: sa.bindparam(f"r{i}_{name}", type_=_c[name].type) for name in names} for i in range(n)]
        common = {
            "status": "pending",
            "attempts": 0,
            "next_at": sa.bindparam("b_until"),
            "claimed_by": sa.bindparam("b_me"),
            "created_at": sa.bindparam("b_token"),
        }
        insert = db.dialect_insert(jobs).values([row | common for row in rows]).on_conflict_do_nothing()
        mine = sa.select(_c.key).where(
            _c.key.in_([sa.bindparam(f"r{i}_key") for i in range(n)]),
            _c.created_at == sa.bindparam("b_token"),
            _c.claimed_by == sa.bindparam("b_me"),
        )
        statements = _INSERTS[key] = (insert, mine)
    return statements


class NotHere(Exception):
    """Raised by a handler for a job this process cannot run (a workflow it does not offer): the job is left
    for another process, without counting as a failure or telling anyone (until `give_up`)."""


@dataclass
class Job:
    """One acknowledged request: `kind` says which handler runs it, `payload` what it needs."""

    key: str
    kind: str
    payload: dict[str, Any]
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    taken_up: bool = False  # claimed by a sweep: an earlier attempt (perhaps in a process that died) ran it


class JobRun:
    """A job while it runs here (`CURRENT_JOB`): what it works on, for the watcher to mark it done."""

    def __init__(self, jobs_: Jobs, job: Job) -> None:
        self.jobs = jobs_
        self.job = job
        self.runs: dict[str, str | None] = {}  # run id -> the person whose decision settles the job (None: any change)
        self.settled = False  # a transaction applying it has marked it done

    def working_on(self, run_id: str, user: str | None = None) -> None:
        self.runs[run_id] = user
        self.jobs._working.setdefault(run_id, set()).add(self)

    def applied(self) -> bool:
        return self.settled

    def settles(self, change: RunChange) -> bool:
        if change.run_id not in self.runs:
            return False
        user = self.runs[change.run_id]
        return user is None or any(r.resolved_by == user for r in change.resolutions)


Handler = Callable[[Job], Awaitable[None]]
Teller = Callable[[Job, str], Awaitable[None]]


class _Accepting:
    """A job waiting for its row: `ack` is resolved when it is written (True: new, False: a repeat), or with
    None by `ack_now` (ACK_WAIT passed: the request is acked, and the writer finishes the job's part)."""

    def __init__(self, job: Job, then: Callable[[], None] | None = None) -> None:
        self.job = job
        self.then = then
        self.ack: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()

    def ack_now(self) -> None:
        if not self.ack.done():
            self.ack.set_result(None)

    def written(self, new: bool) -> None:
        if not self.ack.done():
            self.ack.set_result(new)
        elif new and self.then is not None:  # acked already: run it now that it is written
            self.then()

    def failed(self, exc: Exception, jobs: Jobs) -> None:
        if not self.ack.done():
            self.ack.set_exception(exc)
        elif isinstance(exc, StoreError):  # acked already: its person is told nothing happened
            jobs.background.spawn_apart(jobs.tell(self.job, REFUSED, exc))
        else:
            log.error("an acknowledged job could not be written", exc_info=exc)


class Jobs(StoreBase):
    """The bot's acknowledged jobs: accepted before the ack, run here, swept up anywhere if left."""

    def __init__(self, db: BaseDb, background: Background, *, give_up: float = GIVE_UP) -> None:
        super().__init__(db)
        self.background = background
        self.writes = _accepting_store(db)
        self.hold = db.lease_seconds  # how long a process holds a job it runs (as it holds a running run)
        self.give_up = give_up
        self.me = uuid.uuid4().hex
        self.handlers: dict[str, Handler] = {}
        self.tellers: dict[str, Teller] = {}  # tell a job's person something, per kind
        self.running: set[str] = set()
        self._working: dict[str, set[JobRun]] = {}
        self._queue: list[_Accepting] = []
        self._writers = 0
        self._pruned_at = 0.0
        db.watch(self.record)

    # ----- before the ack --------------------------------------------------------------------------
    async def accept(self, job: Job) -> bool:
        """Write `job`, held by this process; True if it is new, False if its key was taken already (a
        repeated delivery). Raises StoreError if it could not be written. Concurrent calls share a write."""
        return bool(await self._queued(_Accepting(job)))

    async def accept_before_ack(self, job: Job, then: Callable[[], None]) -> bool:
        """`accept` for a request about to be acked: False for a repeat; True once the job is written (and
        `then()` called to run it), or if it is still being written after ACK_WAIT (the ack goes; `then()`
        is called once it is written, or its person told it was not). Raises StoreError if the job could
        not be written (nothing will happen: the caller tells the person so, with `message(REFUSED)`).

        The writer resolves the ack's own future: under load every hop through the event loop waits behind
        everything else that is ready, so the ack waits for the write and for nothing in between."""
        accepting = _Accepting(job, then)
        timer = asyncio.get_running_loop().call_later(ACK_WAIT, accepting.ack_now)
        try:
            new = await self._queued(accepting)
        finally:
            timer.cancel()
        if new is None:  # acked before its row was written: `then()` is the writer's to call
            return True
        if new:
            then()
        return new

    def _queued(self, accepting: _Accepting) -> asyncio.Future[bool | None]:
        self._queue.append(accepting)
        if self._writers < WRITERS:
            self._writers += 1
            self.background.spawn_apart(self._write_queue())
        return accepting.ack

    async def _write_queue(self) -> None:
        try:
            await self._write_batches()
        finally:
            self._writers -= 1

    async def _write_batches(self) -> None:
        await asyncio.sleep(0)  # the requests read in this loop pass join the batch
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                new = await self._insert([accepting.job for accepting in batch])
            except Exception as exc:
                for accepting in batch:
                    accepting.failed(exc, self)
                continue
            for accepting in batch:
                accepting.written(accepting.job.key in new)

    async def _insert(self, batch: list[Job]) -> set[str]:
        attempt = Attempt()
        token = time.time()  # this write's mark (created_at): a retry after a cut-off COMMIT finds its rows
        size = _size(len(batch))
        insert, mine = _batch_statements(self.writes, size)
        params: dict[str, Any] = {"b_until": token + self.hold, "b_me": self.me, "b_token": token}
        for i, job in enumerate(batch):
            params |= {f"r{i}_key": job.key, f"r{i}_kind": job.kind, f"r{i}_payload": json.dumps(job.payload)}
        for i in range(len(batch), size):  # padding: the last key again, skipped by the INSERT (no payload)
            params |= {f"r{i}_key": batch[-1].key, f"r{i}_kind": batch[-1].kind, f"r{i}_payload": ""}

        def body(tx: Tx) -> set[str]:
            if attempt.commit_unknown:
                done = {row[0] for row in tx.all(self.writes.prepare(mine), params)}
                if done:
                    return done
            # One statement, a transaction of its own where the dialect can (one round trip before the ack).
            if tx.write_alone(self.writes.prepare(insert), params) == len({job.key for job in batch}):
                return {job.key for job in batch}
            return {row[0] for row in tx.all(self.writes.prepare(mine), params)}

        return await self.writes.run_hot(body, tables=self._tables)

    async def close(self) -> None:
        """Release the accepting connections (the store itself is its owner's to close)."""
        if self.writes is not self.db:
            await self.writes.close()

    async def ready(self) -> None:
        """The table exists and the accepting statements are compiled, before the first ack waits on them."""
        await super().ready()
        for n in (1 << i for i in range(MAX_BATCH.bit_length())):
            for statement in _batch_statements(self.writes, n):
                self.writes.prepare(statement)
        if self.writes is not self.db:  # its connections opened now, not by the first burst's acks (a
            # PostgreSQL connection takes tens of milliseconds to open; each writer holds one)
            hold = sa.text("SELECT pg_sleep(0.02)")  # held together, so that each takes a connection of its own
            await asyncio.gather(
                *(self.writes.run_transaction(lambda conn: conn.execute(hold), write=False) for _ in range(WRITERS))
            )

    # ----- running ---------------------------------------------------------------------------------
    async def run(self, job: Job) -> None:
        """Run a job held by this process, then record how it ended (done, or left for a later attempt)."""
        current = JobRun(self, job)
        tasks: list[asyncio.Task[Any]] = []
        outer, spawned = CURRENT_JOB.set(current), JOB_TASKS.set(tasks)
        self.running.add(job.key)
        failure: BaseException | None = None
        try:
            await self.handlers[job.kind](job)
            if tasks:
                await asyncio.wait(tasks)
                failure = next((t.exception() for t in tasks if not t.cancelled() and t.exception()), None)
        except Exception as exc:
            failure = exc
        finally:
            JOB_TASKS.reset(spawned)
            CURRENT_JOB.reset(outer)
            self.running.discard(job.key)
            for run_id in current.runs:
                working = self._working.get(run_id, set())
                working.discard(current)
                if not working:
                    self._working.pop(run_id, None)
        if failure is not None:
            await self._failed(job, failure)
        elif not current.settled:
            with contextlib.suppress(StoreError):  # not marked: the hold ends and a sweep runs it again
                await self._end(job, "done")

    def launch(self, job: Job) -> None:
        """Run `job` in the background, apart from the caller's request and job."""
        self.background.spawn_apart(self.run(job))

    def record(self, tx: Tx, change: RunChange) -> None:
        """kern's watcher: a transaction that applies a job running here (a decision on its run, its run
        created) marks the job done with it."""
        for current in tuple(self._working.get(change.run_id, ())):  # (it may run on a store's worker thread)
            if current.settles(change):
                tx.execute(self.db.prepare(_DONE), {"b_key": current.job.key, "b_status": "done", "b_now": time.time()})
                current.settled = True

    async def _end(self, job: Job, status: str) -> None:
        params = {"b_key": job.key, "b_status": status, "b_now": time.time()}
        await self._hot(lambda tx: tx.write_alone(self.db.prepare(_DONE), params))

    async def _failed(self, job: Job, failure: BaseException) -> None:
        elsewhere = isinstance(failure, NotHere)
        if elsewhere:
            log.info("job %s (%s) left for another process: %s", job.key[:12], job.kind, failure)
        else:
            log.warning("job %s (%s) failed on attempt %d", job.key[:12], job.kind, job.attempts + 1, exc_info=failure)
        if time.time() - job.created_at >= self.give_up:
            with contextlib.suppress(StoreError):  # unrecorded, it is dropped here anyway: told once
                await self._end(job, "dropped")
            await self.tell(job, GAVE_UP, failure)
            return
        if job.attempts == 0 and not elsewhere:
            await self.tell(job, RETRYING, failure)
        at = time.time() + min(_MAX_RETRY, _FIRST_RETRY * 2.0**job.attempts) * random.uniform(0.75, 1.0)
        params = {"b_key": job.key, "b_at": time.time() + self.hold if elsewhere else at, "b_count": int(not elsewhere)}
        with contextlib.suppress(StoreError):  # not recorded: the hold ends and a sweep takes it up anyway
            await self._hot(lambda tx: tx.write_alone(self.db.prepare(_LATER), params))

    async def tell(self, job: Job, event: str, failure: BaseException) -> None:
        """Tell the job's person what `event` (REFUSED, RETRYING, GAVE_UP) means for their request, and why
        in a few words (never SQL); never raises."""
        teller = self.tellers.get(job.kind)
        if teller is None:
            return
        try:
            await teller(job, self.message(job, event, failure))
        except Exception:
            log.exception("could not tell the person of job %s", job.key[:12])

    def message(self, job: Job, event: str, failure: BaseException) -> str:
        """What the job's person is told about `event`, with why in a few plain words (never SQL)."""
        minutes = max(1, round(self.give_up / 60))
        return MESSAGES[job.kind][event].format(
            why=_why(failure),
            workflow=escape(job.payload.get("workflow", "")),
            minutes=f"{minutes} minute{'s' if minutes > 1 else ''}",
        )

    # ----- the sweep -------------------------------------------------------------------------------
    async def sweep(self, limit: int = 50) -> int:
        """Claim jobs that are due and held by nobody (their process died, or an attempt failed), and run
        them here; returns how many. One indexed query when there are none."""
        now = time.time()
        prune = now - self._pruned_at > PRUNE_EVERY
        if prune:
            self._pruned_at = now
        until, me = now + self.hold, self.me
        running = list(self.running)

        def body(conn: sa.Connection) -> list[Job]:
            if prune:
                conn.execute(_PRUNE, {"b_before": now - KEEP})
            due = sa.and_(_c.status == "pending", _c.next_at <= now)
            query = _SELECT.where(due).order_by(_c.next_at).limit(limit)
            if running:
                query = query.where(_c.key.not_in(running))
            rows = conn.execute(query).all()
            if not rows:
                return []
            claim = (
                jobs.update()
                .where(_c.key.in_([row.key for row in rows]), due)
                .values(next_at=until, claimed_by=me)
                .returning(_c.key)
            )
            taken = set(conn.execute(claim).scalars())
            return [
                Job(r.key, r.kind, json.loads(r.payload), r.attempts, r.created_at, taken_up=True)
                for r in rows
                if r.key in taken
            ]

        claimed = await self._tx(body)
        for job in claimed:
            log.info("job %s (%s) taken up by a sweep (attempt %d)", job.key[:12], job.kind, job.attempts + 1)
            self.launch(job)
        return len(claimed)

    async def status(self, key: str) -> str | None:
        """A job's status (pending, done, dropped), None if unknown (for tests and operators)."""
        query = sa.select(_c.status).where(_c.key == key)
        return await self._tx(lambda conn: conn.execute(query).scalar(), write=False)


def _accepting_store(db: BaseDb) -> BaseDb:
    """Where accepts write: on PostgreSQL a small pool of their own, so an ack never queues for a connection
    behind the work of clicks acked before it; on SQLite the store itself (one writer at a time anyway)."""
    from kern.db.postgres import PostgresDb  # imported here: asyncpg is only needed with PostgreSQL

    if isinstance(db, PostgresDb):
        return PostgresDb(
            db.db_url,
            db_schema=db.db_schema,
            create_schema=db.create_schema,
            pool_size=WRITERS,
            max_overflow=0,
            lease_seconds=db.lease_seconds,
            retry_for=db.retry_for,
        )
    return db


def _why(failure: BaseException) -> str:
    """What people are told about a failure, in a few plain words (the details are in the log)."""
    if isinstance(failure, NotHere):
        return "no running copy of the bot offers it"
    if isinstance(failure, StoreUnavailableError):
        return "the bot's database is not answering"
    if isinstance(failure, StoreError):
        return "the bot's database cannot save it right now"
    return "something went wrong on my side"
