"""What the bot remembers besides kern's runs: where each run card and pause message lives in Slack,
and the decisions on individual tool calls of an executor pause that still waits for others.

Kept in the same database as the runs, through `BaseDb.run_transaction`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kern.db.base import BaseDb
from kern.db.retry import Attempt

metadata = sa.MetaData()

cards = sa.Table(
    "kern_bot_cards",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(256), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("started_by", sa.String(64), nullable=False),
    sa.Column("input", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_kern_bot_cards_started_by", "started_by", "created_at"),  # a person's runs, for the App Home
)

pauses = sa.Table(
    "kern_bot_pauses",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # open | decided
    sa.Column("decided_by", sa.String(64)),
    sa.Column("outcome", sa.Text),
    sa.Column("posted_at", sa.Float, nullable=False),
    sa.Index("ix_kern_bot_pauses_status", "status", "posted_at"),  # open pauses, newest first (App Home)
)

# Copies of a pause message sent by DM (notify="dm"): one per recipient, kept in step with the pause message.
pause_copies = sa.Table(
    "kern_bot_pause_copies",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("recipient", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("ts", sa.String(32), nullable=False),
    sa.Column("posted_at", sa.Float, nullable=False),
)

# People who opened the App Home, and the page of "Waiting on you" they are on (refreshed for them).
home_viewers = sa.Table(
    "kern_bot_home_viewers",
    metadata,
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("page", sa.Integer, nullable=False),
    sa.Column("opened_at", sa.Float, nullable=False, index=True),
)

tool_decisions = sa.Table(
    "kern_bot_tool_decisions",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("call_index", sa.Integer, primary_key=True),
    sa.Column("decision", sa.JSON, nullable=False),
    sa.Column("decided_by", sa.String(64)),
    sa.Column("summary", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
)


# Votes on a pause that needs several people (N of M, bot/ballots.py): one row per person and pause.
votes = sa.Table(
    "kern_bot_votes",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("approve", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
)


# Pauses handed to someone else (bot/handover.py): they may answer it too. One row per pause and person.
handovers = sa.Table(
    "kern_bot_handovers",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("to_user", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("by_user", sa.String(64), nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
)


# Standing approvals of tool calls (bot/grants.py): a tool always allowed in one run, or in a workflow
# until `expires_at`, unless revoked.
grants = sa.Table(
    "kern_bot_grants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # run | workflow
    sa.Column("workflow", sa.String(256), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("tool_name", sa.String(256), nullable=False),
    sa.Column("granted_by", sa.String(64), nullable=False),
    sa.Column("granted_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_by", sa.String(64)),
    sa.Column("revoked_at", sa.Float),
    sa.Index("ix_kern_bot_grants_tool", "tool_name", "workflow"),
)


# Reminders and escalations (bot/timers.py): one row per pause and kind, fired by a sweep (compare-and-set),
# cancelled when the pause is decided.
timers = sa.Table(
    "kern_bot_timers",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # remind | escalate
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("due_at", sa.Float, nullable=False),
    sa.Column("count", sa.Integer, nullable=False),  # reminders sent so far
    sa.Column("done_at", sa.Float),  # fired for the last time, or cancelled
    sa.Index("ix_kern_bot_timers_due", "done_at", "due_at"),
)

escalations = sa.Table(
    "kern_bot_escalations",
    metadata,
    sa.Column("requirement_id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
)


# What the bot owes Slack: a row per message to post or update, written in the transaction that makes it
# owed (see bot/outbox.py), delivered until Slack accepts it.
outbox = sa.Table(
    "kern_bot_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),  # pause | card | close | notice
    sa.Column("requirement_id", sa.String(64)),
    sa.Column("detail", sa.JSON),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_at", sa.Float, nullable=False),
    sa.Column("claimed_until", sa.Float),
    sa.Column("claimed_by", sa.String(32)),  # the process holding it (until claimed_until)
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    # The deliverer's query: pending messages that are due.
    sa.Index("ix_kern_bot_outbox_due", "status", "next_at"),
)


# Requests already acted on (bot/dedupe.py): the hash of a signed body, kept for Slack's replay window.
seen_requests = sa.Table(
    "kern_bot_seen_requests",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)


@dataclass
class Card:
    run_id: str
    workflow: str
    channel: str
    ts: str
    started_by: str
    input: str | None = None


@dataclass
class OwedMessage:
    """One outbox row: what to show (`kind`) about which run and pause."""

    id: int
    run_id: str
    kind: str
    requirement_id: str | None
    detail: dict[str, Any] | None
    attempts: int


@dataclass
class PauseMessage:
    requirement_id: str
    run_id: str
    channel: str
    ts: str
    status: str
    decided_by: str | None
    outcome: str | None


@dataclass
class PauseCopy:
    """A pause message's copy sent by DM to `recipient`."""

    requirement_id: str
    recipient: str
    run_id: str
    channel: str
    ts: str


@dataclass
class Delivery:
    """What sending an owed message did: a pause message (or a DM copy of it) posted, or a pause decided
    (with its outcome); `dropped`: nothing could be shown (the run has no card here)."""

    message: OwedMessage
    pause: PauseMessage | None = None
    copy: PauseCopy | None = None
    outcome: str | None = None
    dropped: bool = False


def insert_once(
    db: BaseDb, table: sa.Table, values: dict[str, Any], *, also: Callable[[Connection], Any] | None = None
) -> Awaitable[bool]:
    """Insert a row in the bot's tables; False (nothing changed) if its key exists already, whoever wrote it.
    `also(connection)` runs in the same transaction.

    Safe under the store's retries: if an earlier attempt's COMMIT was cut off (it may have committed),
    a row with this key and exactly these values is recognised as this call's own (the values carry a
    float timestamp taken once per call), so a retried first insert is not mistaken for a repeat.
    """
    from bot.migrations import BOT  # versions these tables; it imports them from here

    attempt = Attempt()
    key = list(table.primary_key.columns)

    def body(conn: Connection) -> bool:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**values))
            first = True
        except IntegrityError:
            first = False
            if attempt.commit_unknown:
                query = sa.select(table).where(*(column == values[column.name] for column in key))
                row = conn.execute(query).mappings().first()
                first = row is not None and all(row[name] == value for name, value in values.items())
        if also is not None:
            also(conn)
        return first

    return db.run_transaction(body, tables=BOT, attempt=attempt)


def insert_copy(conn: Connection, copy: PauseCopy) -> None:
    """Remember where a DM copy lives (once: a repeated delivery finds it and does not post again)."""
    with conn.begin_nested():
        key = (pause_copies.c.requirement_id == copy.requirement_id, pause_copies.c.recipient == copy.recipient)
        if conn.execute(sa.select(pause_copies.c.ts).where(*key)).first() is None:
            conn.execute(pause_copies.insert().values(**vars(copy), posted_at=time.time()))


class BotStore:
    """The bot's bookkeeping tables, next to kern's."""

    def __init__(self, db: BaseDb) -> None:
        from bot.migrations import BOT  # versions these tables; it imports them from here

        self.db = db
        self._tables = BOT

    async def _tx(self, body: Any, write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=self._tables)

    async def ready(self) -> None:
        """Make sure the bot's tables exist (kern's transactions write the outbox from then on)."""
        await self._tx(lambda c: None)

    async def save_card(self, card: Card) -> None:
        await self._tx(lambda c: c.execute(cards.insert().values(**vars(card), created_at=time.time())))

    async def card(self, run_id: str) -> Card | None:
        row = await self._tx(
            lambda c: c.execute(
                sa.select(
                    cards.c.run_id, cards.c.workflow, cards.c.channel, cards.c.ts, cards.c.started_by, cards.c.input
                ).where(cards.c.run_id == run_id)
            ).first(),
            write=False,
        )
        return Card(*row) if row else None

    async def pause(self, requirement_id: str) -> PauseMessage | None:
        row = await self._tx(
            lambda c: c.execute(
                sa.select(
                    pauses.c.requirement_id,
                    pauses.c.run_id,
                    pauses.c.channel,
                    pauses.c.ts,
                    pauses.c.status,
                    pauses.c.decided_by,
                    pauses.c.outcome,
                ).where(pauses.c.requirement_id == requirement_id)
            ).first(),
            write=False,
        )
        return PauseMessage(*row) if row else None

    async def record_tool_decision(
        self, requirement_id: str, index: int, decision: dict[str, Any], by: str, summary: str
    ) -> bool:
        """Record one tool call's decision; False if that call was already decided."""
        return await insert_once(
            self.db,
            tool_decisions,
            {
                "requirement_id": requirement_id,
                "call_index": index,
                "decision": decision,
                "decided_by": by,
                "summary": summary,
                "at": time.time(),
            },
        )

    async def tool_decisions(self, requirement_id: str) -> dict[int, dict[str, Any]]:
        rows = await self._tx(
            lambda c: c.execute(
                sa.select(
                    tool_decisions.c.call_index,
                    tool_decisions.c.decision,
                    tool_decisions.c.decided_by,
                    tool_decisions.c.summary,
                ).where(tool_decisions.c.requirement_id == requirement_id)
            ).all(),
            write=False,
        )
        return {r[0]: {"decision": r[1], "by": r[2], "summary": r[3]} for r in rows}

    # ----- the outbox -------------------------------------------------------------------------------
    @staticmethod
    def owe(
        conn: Connection,
        run_id: str,
        kind: str,
        requirement_id: str | None = None,
        detail: Any = None,
        *,
        holder: str | None = None,
        hold: float = 0.0,
    ) -> None:
        """Record a message owed to Slack, inside the caller's transaction, held by `holder` (the process
        that will send it right away) for `hold` seconds: others take it only if that process died."""
        now = time.time()
        conn.execute(
            outbox.insert().values(
                run_id=run_id,
                kind=kind,
                requirement_id=requirement_id,
                detail=detail,
                status="pending",
                attempts=0,
                next_at=now,
                claimed_by=holder,
                claimed_until=now + hold if holder else None,
                created_at=now,
            )
        )

    async def still_pending(self, ids: list[int]) -> set[int]:
        """Which of these messages are still to be sent (another delivery may have sent some meanwhile)."""
        query = sa.select(outbox.c.id).where(outbox.c.id.in_(ids), outbox.c.status == "pending")
        return await self._tx(lambda conn: {r.id for r in conn.execute(query)}, write=False)

    async def held(self, run_id: str, holder: str) -> list[OwedMessage]:
        """The pending messages of a run that `holder` holds (its own transactions owed them): a read, no
        claim needed."""
        c = outbox.c
        query = (
            sa.select(c.id, c.run_id, c.kind, c.requirement_id, c.detail, c.attempts)
            .where(c.run_id == run_id, c.status == "pending", c.claimed_by == holder, c.next_at <= time.time())
            .order_by(c.id)
        )
        return await self._tx(lambda conn: [OwedMessage(*r) for r in conn.execute(query)], write=False)

    @staticmethod
    def expect_pause(conn: Connection, insert: Any, run_id: str, requirement_id: str) -> None:
        """Record a pause whose message is owed (no channel or ts yet), inside the caller's transaction.
        `insert` is the dialect's insert (for its ON CONFLICT DO NOTHING)."""
        row = {"requirement_id": requirement_id, "run_id": run_id, "channel": "", "ts": ""}
        conn.execute(insert(pauses).values(**row, status="open", posted_at=time.time()).on_conflict_do_nothing())

    async def claim_owed(
        self, run_id: str | None, *, hold: float, holder: str | None = None, limit: int = 100
    ) -> list[OwedMessage]:
        """Take due messages for delivery (of one run, or of any), oldest first, for `hold` seconds: another
        process skips them meanwhile, and takes them once the hold expires (this one died).

        The hold's end is this call's token: if a retry follows a cut-off COMMIT, rows already held with
        it are this call's own and are taken again rather than left waiting for the hold to expire."""
        c = outbox.c
        attempt = Attempt()
        until = time.time() + hold

        def body(conn: Connection) -> list[OwedMessage]:
            now = time.time()
            free = sa.or_(c.claimed_until.is_(None), c.claimed_until < now)
            if holder is not None:  # what this process's own transactions owe, it holds already
                free = sa.or_(free, c.claimed_by == holder)
            if attempt.commit_unknown:
                free = sa.or_(free, c.claimed_until == until)
            query = (
                sa.select(c.id, c.run_id, c.kind, c.requirement_id, c.detail, c.attempts)
                .where(c.status == "pending", c.next_at <= now, free)
                .order_by(c.id)
                .limit(limit)
            )
            if run_id is not None:
                query = query.where(c.run_id == run_id)
            taken = []
            for row in conn.execute(query).all():
                claimed = conn.execute(
                    outbox.update().where(c.id == row.id, free).values(claimed_until=until, claimed_by=holder)
                )
                if claimed.rowcount == 1:
                    taken.append(OwedMessage(*row))
            return taken

        return await self.db.run_transaction(body, tables=self._tables, attempt=attempt)

    async def delivered(self, done: list[Delivery]) -> None:
        """Record sent messages in one transaction: rows done, posted pause messages remembered (where
        they live, so they are never posted again), decided ones marked with their outcome."""
        c = outbox.c

        def body(conn: Connection) -> None:
            ids = [d.message.id for d in done]
            conn.execute(
                outbox.update().where(c.id.in_(ids)).values(status="done", claimed_until=None, claimed_by=None)
            )
            for d in done:
                if d.pause is not None:
                    values = {"run_id": d.pause.run_id, "channel": d.pause.channel, "ts": d.pause.ts}
                    updated = conn.execute(
                        pauses.update().where(pauses.c.requirement_id == d.pause.requirement_id).values(**values)
                    )
                    if updated.rowcount == 0:
                        conn.execute(
                            pauses.insert().values(
                                requirement_id=d.pause.requirement_id, status="open", posted_at=time.time(), **values
                            )
                        )
                if d.copy is not None:
                    insert_copy(conn, d.copy)
                if d.outcome is not None and d.message.requirement_id is not None and d.message.kind == "close":
                    conn.execute(
                        pauses.update()
                        .where(pauses.c.requirement_id == d.message.requirement_id)
                        .values(status="decided", decided_by=(d.message.detail or {}).get("by"), outcome=d.outcome)
                    )

        await self._tx(body)

    async def retry_owed(self, message: OwedMessage, *, at: float, error: str, count: bool = True) -> None:
        """Leave a message pending, to be tried again at `at` (`count`: this was a failed attempt)."""
        attempts = outbox.c.attempts + (1 if count else 0)
        await self._tx(
            lambda conn: conn.execute(
                outbox.update()
                .where(outbox.c.id == message.id)
                .values(attempts=attempts, next_at=at, claimed_until=None, claimed_by=None, error=error[:500])
            )
        )

    async def pause_still_owed(self, requirement_id: str) -> bool:
        """True while the message of this pause is still waiting to be posted."""
        c = outbox.c
        query = sa.select(c.id).where(c.requirement_id == requirement_id, c.kind == "pause", c.status == "pending")
        return await self._tx(lambda conn: conn.execute(query).first() is not None, write=False)

    async def cards_by_prefix(self, prefix: str, limit: int = 6) -> list[Card]:
        """Cards whose run id starts with `prefix` (an index range, not a scan), at most `limit`."""
        c = cards.c
        query = (
            sa.select(c.run_id, c.workflow, c.channel, c.ts, c.started_by, c.input)
            .where(c.run_id >= prefix, c.run_id < prefix + "\x7f")  # run ids are ASCII
            .order_by(c.run_id)
            .limit(limit)
        )
        return await self._tx(lambda conn: [Card(*r) for r in conn.execute(query)], write=False)

    async def card_at(self, channel: str, ts: str) -> Card | None:
        """The run card posted as message `ts` in `channel` (for actions on a message)."""
        c = cards.c
        query = sa.select(c.run_id, c.workflow, c.channel, c.ts, c.started_by, c.input).where(
            c.channel == channel, c.ts == ts
        )
        row = await self._tx(lambda conn: conn.execute(query).first(), write=False)
        return Card(*row) if row else None

    async def owed(self, run_id: str) -> list[dict[str, Any]]:
        """Every outbox row of a run, oldest first (for tests and operators)."""
        return await self._tx(
            lambda conn: [
                dict(r)
                for r in conn.execute(
                    sa.select(outbox).where(outbox.c.run_id == run_id).order_by(outbox.c.id)
                ).mappings()
            ],
            write=False,
        )

    # ----- DM copies of pause messages --------------------------------------------------------------
    async def copies(self, requirement_id: str) -> list[PauseCopy]:
        c = pause_copies.c
        query = sa.select(c.requirement_id, c.recipient, c.run_id, c.channel, c.ts).where(
            c.requirement_id == requirement_id
        )
        return await self._tx(lambda conn: [PauseCopy(*r) for r in conn.execute(query)], write=False)

    async def copy_still_owed(self, requirement_id: str, to: str | None) -> bool:
        """True while the DM copy of this pause for `to` (None: the starter) is still waiting to be posted."""
        c = outbox.c
        query = sa.select(c.detail).where(c.requirement_id == requirement_id, c.kind == "dm", c.status == "pending")
        rows = await self._tx(lambda conn: conn.execute(query).all(), write=False)
        return any((row.detail or {}).get("to") == to for row in rows)
