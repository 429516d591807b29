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

from kern.db.base import BaseDb
from kern.db.hot import Sql, Tx, dumps_or_none, insert_statement
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


# The statements of a click's path, prepared once per store (`BaseDb.prepare`) and run on the bare driver
# connection (`BaseDb.run_hot`, and kern's watcher transactions): SQLAlchemy's per-statement work costs
# more than these statements do.
_OWE = insert_statement(
    outbox, "run_id", "kind", "requirement_id", "detail", "status", "attempts", "next_at", "claimed_until",
    "claimed_by", "created_at",
)  # fmt: skip
_CARD = sa.select(
    cards.c.run_id, cards.c.workflow, cards.c.channel, cards.c.ts, cards.c.started_by, cards.c.input
).where(cards.c.run_id == sa.bindparam("b_run_id"))
_PAUSE_COLUMNS = (
    pauses.c.requirement_id, pauses.c.run_id, pauses.c.channel, pauses.c.ts, pauses.c.status, pauses.c.decided_by,
    pauses.c.outcome,
)  # fmt: skip
_PAUSE = sa.select(*_PAUSE_COLUMNS).where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
_CARD_COLUMNS = (cards.c.run_id, cards.c.workflow, cards.c.channel, cards.c.ts, cards.c.started_by, cards.c.input)
_PAUSE_WITH_CARD = (
    sa.select(*_PAUSE_COLUMNS, *_CARD_COLUMNS)
    .select_from(pauses.outerjoin(cards, cards.c.run_id == pauses.c.run_id))
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
)
_HELD = (
    sa.select(outbox.c.id, outbox.c.run_id, outbox.c.kind, outbox.c.requirement_id, outbox.c.detail, outbox.c.attempts)
    .where(
        outbox.c.run_id == sa.bindparam("b_run_id"),
        outbox.c.status == "pending",
        outbox.c.claimed_by == sa.bindparam("b_holder"),
        outbox.c.next_at <= sa.bindparam("b_now"),
    )
    .order_by(outbox.c.id)
)
# Messages sent: one statement for a batch of n, prepared once per n.
_DONE: dict[int, sa.Update] = {}


def _done(n: int) -> sa.Update:
    statement = _DONE.get(n)
    if statement is None:
        statement = _DONE[n] = (
            outbox.update()
            .where(outbox.c.id.in_([sa.bindparam(f"b_id{i}") for i in range(n)]))
            .values(status="done", claimed_until=sa.null(), claimed_by=sa.null())
        )
    return statement


_PAUSE_POSTED = (
    pauses.update()
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
    .values(run_id=sa.bindparam("b_run_id"), channel=sa.bindparam("b_channel"), ts=sa.bindparam("b_ts"))
)
_PAUSE_ROW = insert_statement(pauses, "requirement_id", "run_id", "channel", "ts", "status", "posted_at")
_PAUSE_DECIDED = (
    pauses.update()
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
    .values(status="decided", decided_by=sa.bindparam("b_by"), outcome=sa.bindparam("b_outcome"))
)
# Per dialect: INSERT ... ON CONFLICT DO NOTHING of a table's given columns (`insert_once`).
_INSERTS_IGNORING: dict[tuple[Any, str, tuple[str, ...]], tuple[sa.ClauseElement, sa.ClauseElement]] = {}


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


def _inserts_ignoring(db: BaseDb, table: sa.Table, names: tuple[str, ...]) -> tuple[Sql, Sql]:
    """(INSERT of `names` that does nothing on a key conflict, SELECT of those columns by key), prepared."""
    key = (db.dialect_insert, table.name, names)
    statements = _INSERTS_IGNORING.get(key)
    if statements is None:
        insert = db.dialect_insert(table).values({n: sa.bindparam(n, type_=table.c[n].type) for n in names})
        select = sa.select(*(table.c[n] for n in names)).where(
            *(column == sa.bindparam(f"b_{column.name}") for column in table.primary_key.columns)
        )
        statements = _INSERTS_IGNORING[key] = (insert.on_conflict_do_nothing(), select)
    return db.prepare(statements[0]), db.prepare(statements[1])


def insert_once(
    db: BaseDb, table: sa.Table, values: dict[str, Any], *, also: Callable[[Tx], Any] | None = None
) -> Awaitable[bool]:
    """Insert a row in the bot's tables; False (nothing changed) if its key exists already, whoever wrote it.
    `also(tx)` runs in the same transaction (a `kern.db.hot.Tx`: statements from `db.prepare`).

    Safe under the store's retries: if an earlier attempt's COMMIT was cut off (it may have committed),
    a row with this key and exactly these values is recognised as this call's own (the values carry a
    float timestamp taken once per call), so a retried first insert is not mistaken for a repeat.
    """
    from bot.migrations import BOT  # versions these tables; it imports them from here

    attempt = Attempt()
    names = tuple(values)
    json_columns = {n for n in names if isinstance(table.c[n].type, sa.JSON)}
    params = {n: dumps_or_none(v) if n in json_columns else v for n, v in values.items()}
    key = {f"b_{column.name}": values[column.name] for column in table.primary_key.columns}

    def body(tx: Tx) -> bool:
        insert, select = _inserts_ignoring(db, table, names)
        mine = False
        if attempt.commit_unknown and (row := tx.first(select, key)) is not None:
            stored = dict(zip(names, row, strict=True))
            mine = stored | {n: db.read_json(stored[n]) for n in json_columns} == values
        first = mine or (tx.execute if also else tx.write_alone)(insert, params) == 1
        if also is not None:
            also(tx)
        return first

    return db.run_hot(body, tables=BOT, attempt=attempt)


def insert_copy(tx: Tx, db: BaseDb, copy: PauseCopy) -> None:
    """Remember where a DM copy lives (once: a repeated delivery finds it and does not post again)."""
    insert, _select = _inserts_ignoring(db, pause_copies, (*vars(copy), "posted_at"))
    tx.execute(insert, {**vars(copy), "posted_at": time.time()})


class BotStore:
    """The bot's bookkeeping tables, next to kern's."""

    def __init__(self, db: BaseDb) -> None:
        from bot.migrations import BOT  # versions these tables; it imports them from here

        self.db = db
        self._tables = BOT
        # Records a pause as known before its message is posted (ON CONFLICT DO NOTHING: the dialect's).
        self._expect = (
            db.dialect_insert(pauses)
            .values(
                {
                    n: sa.bindparam(n, type_=pauses.c[n].type)
                    for n in ("requirement_id", "run_id", "status", "posted_at")
                }
                | {"channel": "", "ts": ""}
            )
            .on_conflict_do_nothing()
        )

    async def _hot(self, body: Callable[[Tx], Any], write: bool = True) -> Any:
        return await self.db.run_hot(body, write=write, tables=self._tables)

    async def _tx(self, body: Any, write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=self._tables)

    async def ready(self) -> None:
        """Make sure the bot's tables exist (kern's transactions write the outbox from then on)."""
        await self._tx(lambda c: None)

    async def save_card(self, card: Card) -> None:
        await self._tx(lambda c: c.execute(cards.insert().values(**vars(card), created_at=time.time())))

    async def card(self, run_id: str) -> Card | None:
        row = await self._hot(lambda tx: tx.first(self.db.prepare(_CARD), {"b_run_id": run_id}), write=False)
        return Card(*row) if row else None

    async def pause_with_card(self, requirement_id: str) -> tuple[PauseMessage | None, Card | None]:
        """A pause and its run's card, read together (what a click on the pause needs first)."""
        row = await self._hot(
            lambda tx: tx.first(self.db.prepare(_PAUSE_WITH_CARD), {"b_requirement_id": requirement_id}), write=False
        )
        if row is None:
            return None, None
        size = len(_PAUSE_COLUMNS)
        return PauseMessage(*row[:size]), Card(*row[size:]) if row[size] is not None else None

    async def pause(self, requirement_id: str) -> PauseMessage | None:
        row = await self._hot(
            lambda tx: tx.first(self.db.prepare(_PAUSE), {"b_requirement_id": requirement_id}), write=False
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
    def owe(
        self,
        tx: Tx | Connection,
        run_id: str,
        kind: str,
        requirement_id: str | None = None,
        detail: Any = None,
        *,
        holder: str | None = None,
        hold: float = 0.0,
    ) -> None:
        """Record a message owed to Slack, inside the caller's transaction (a kern watcher's `Tx`, or a
        SQLAlchemy connection), held by `holder` (the process that will send it right away) for `hold`
        seconds: others take it only if that process died."""
        now = time.time()
        row = {
            "run_id": run_id,
            "kind": kind,
            "requirement_id": requirement_id,
            "detail": detail,
            "status": "pending",
            "attempts": 0,
            "next_at": now,
            "claimed_by": holder,
            "claimed_until": now + hold if holder else None,
            "created_at": now,
        }
        if isinstance(tx, Connection):
            tx.execute(outbox.insert().values(**row))
        else:
            tx.execute(self.db.prepare(_OWE), {**row, "detail": dumps_or_none(detail)})

    async def still_pending(self, ids: list[int]) -> set[int]:
        """Which of these messages are still to be sent (another delivery may have sent some meanwhile)."""
        query = sa.select(outbox.c.id).where(outbox.c.id.in_(ids), outbox.c.status == "pending")
        return await self._tx(lambda conn: {r.id for r in conn.execute(query)}, write=False)

    async def held(self, run_id: str, holder: str) -> list[OwedMessage]:
        """The pending messages of a run that `holder` holds (its own transactions owed them): a read, no
        claim needed."""
        params = {"b_run_id": run_id, "b_holder": holder, "b_now": time.time()}
        rows = await self._hot(lambda tx: tx.all(self.db.prepare(_HELD), params), write=False)
        return [OwedMessage(i, run, kind, req, self.db.read_json(detail), n) for i, run, kind, req, detail, n in rows]

    def expect_pause(self, tx: Tx, run_id: str, requirement_id: str) -> None:
        """Record a pause whose message is owed (no channel or ts yet), inside the caller's transaction."""
        row = {"requirement_id": requirement_id, "run_id": run_id, "status": "open", "posted_at": time.time()}
        tx.execute(self.db.prepare(self._expect), row)

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
        prepare = self.db.prepare

        ids = sorted({d.message.id for d in done})

        def body(tx: Tx) -> None:
            if ids:
                tx.execute(prepare(_done(len(ids))), {f"b_id{i}": id_ for i, id_ in enumerate(ids)})
            for d in done:
                if d.pause is not None:
                    values = {"b_run_id": d.pause.run_id, "b_channel": d.pause.channel, "b_ts": d.pause.ts}
                    if tx.execute(prepare(_PAUSE_POSTED), {"b_requirement_id": d.pause.requirement_id, **values}) == 0:
                        row = {
                            "requirement_id": d.pause.requirement_id,
                            "run_id": d.pause.run_id,
                            "channel": d.pause.channel,
                            "ts": d.pause.ts,
                            "status": "open",
                            "posted_at": time.time(),
                        }
                        tx.execute(prepare(_PAUSE_ROW), row)
                if d.copy is not None:
                    insert_copy(tx, self.db, d.copy)
                if d.outcome is not None and d.message.requirement_id is not None and d.message.kind == "close":
                    decided = {"b_by": (d.message.detail or {}).get("by"), "b_outcome": d.outcome}
                    tx.execute(prepare(_PAUSE_DECIDED), {"b_requirement_id": d.message.requirement_id, **decided})

        await self._hot(body)

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
