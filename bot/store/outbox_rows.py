"""The outbox's rows (bot/delivery/outbox.py): owing a message inside the transaction that makes it owed, claiming
due ones for delivery, and leaving failed ones for later."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.store.records import OwedMessage
from bot.store.tables import card_team, outbox
from bot.store.transactions import StoreBase
from kern.db.hot import Tx, dumps_or_none
from kern.db.retry import Attempt

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
_OWED_COLUMNS = (
    "run_id", "kind", "requirement_id", "detail", "status", "attempts", "next_at", "claimed_until", "claimed_by",
    "created_at",
)  # fmt: skip
# Several messages owed in one transaction: one INSERT of n rows, prepared once per n.
_OWE_ROWS: dict[int, sa.Insert] = {}


def owe_rows_statement(n: int) -> sa.Insert:
    statement = _OWE_ROWS.get(n)
    if statement is None:
        rows = [
            {name: sa.bindparam(f"r{i}_{name}", type_=outbox.c[name].type) for name in _OWED_COLUMNS}
            | {"team_id": card_team("b_team_run")}
            for i in range(n)
        ]
        statement = _OWE_ROWS[n] = outbox.insert().values(rows)
    return statement


# A reminder posted: where it lives, kept in its row's detail (redrawn from there once its pause is decided).
POSTED_REMINDER = (
    outbox.update()
    .where(outbox.c.id == sa.bindparam("b_id"))
    .values(detail=sa.bindparam("b_detail", type_=outbox.c.detail.type))
)
_REMINDERS = sa.select(outbox.c.status, outbox.c.detail, outbox.c.claimed_until).where(
    outbox.c.run_id == sa.bindparam("b_run_id"),
    outbox.c.requirement_id == sa.bindparam("b_requirement_id"),
    outbox.c.kind == "remind",
)

# Messages sent: one statement for a batch of n, prepared once per n.
_DONE: dict[int, sa.Update] = {}


def done_statement(n: int) -> sa.Update:
    statement = _DONE.get(n)
    if statement is None:
        statement = _DONE[n] = (
            outbox.update()
            .where(outbox.c.id.in_([sa.bindparam(f"b_id{i}") for i in range(n)]))
            .values(status="done", claimed_until=sa.null(), claimed_by=sa.null())
        )
    return statement


class OutboxRows(StoreBase):
    """The outbox's side of `bot.store.BotStore`."""

    def owe(
        self,
        tx: Tx,
        run_id: str,
        kind: str,
        requirement_id: str | None = None,
        detail: Any = None,
        *,
        holder: str | None = None,
        hold: float = 0.0,
    ) -> None:
        """Record a message owed to Slack, inside the caller's transaction (a `kern.db.hot.Tx`: a kern
        watcher's, or `run_hot`'s), held by `holder` (the process that will send it right away) for `hold`
        seconds: others take it only if that process died."""
        self.owe_all(tx, run_id, [(kind, requirement_id, detail)], holder=holder, hold=hold)

    def owe_all(
        self,
        tx: Tx,
        run_id: str,
        messages: list[tuple[str, str | None, Any]],
        *,
        holder: str | None,
        hold: float,
    ) -> None:
        """`owe` for several messages of one run, as (kind, requirement id, detail), in order: one statement
        (the rows' ids follow that order), inside the caller's `Tx`."""
        if not messages:
            return
        now = time.time()
        until = now + hold if holder else None
        params: dict[str, Any] = {"b_team_run": run_id}
        for i, (kind, requirement_id, detail) in enumerate(messages):
            values = (run_id, kind, requirement_id, dumps_or_none(detail), "pending", 0, now, until, holder, now)
            params.update({f"r{i}_{name}": value for name, value in zip(_OWED_COLUMNS, values, strict=True)})
        tx.execute(self.db.prepare(owe_rows_statement(len(messages))), params)

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

    async def claim_owed(
        self,
        run_id: str | None,
        *,
        hold: float,
        holder: str | None = None,
        limit: int = 100,
        skip_runs: Collection[str] = (),
    ) -> list[OwedMessage]:
        """Take due messages for delivery (of one run, or of any), oldest first, for `hold` seconds: another
        process skips them meanwhile, and takes them once the hold expires (this one died). `holder`'s own
        messages are taken too, except those of `skip_runs` (runs it is delivering right now).

        The hold's end is this call's token: if a retry follows a cut-off COMMIT, rows already held with
        it are this call's own and are taken again rather than left waiting for the hold to expire."""
        c = outbox.c
        attempt = Attempt()
        until = time.time() + hold

        def body(conn: Connection) -> list[OwedMessage]:
            now = time.time()
            free = sa.or_(c.claimed_until.is_(None), c.claimed_until < now)
            if holder is not None:  # what this process's own transactions owe, it holds already
                mine = c.claimed_by == holder
                free = sa.or_(free, sa.and_(mine, c.run_id.not_in(list(skip_runs))) if skip_runs else mine)
            if attempt.commit_unknown:
                free = sa.or_(free, c.claimed_until == until)
            query = (
                sa.select(c.id, c.run_id, c.kind, c.requirement_id, c.detail, c.attempts, c.claimed_by)
                .where(c.status == "pending", c.next_at <= now, free)
                .order_by(c.id)
                .limit(limit)
            )
            if run_id is not None:
                query = query.where(c.run_id == run_id)
            rows = conn.execute(query).all()
            if not rows:
                return []
            # One compare-and-set for the lot: a row another process took since the read is not returned.
            claim = (
                outbox.update()
                .where(c.id.in_([row.id for row in rows]), free)
                .values(claimed_until=until, claimed_by=holder)
                .returning(c.id)
            )
            taken = set(conn.execute(claim).scalars())
            ours = (None, holder)  # held by nobody, or by this process: not taken over from another
            return [OwedMessage(*row[:6], taken_over=row.claimed_by not in ours) for row in rows if row.id in taken]

        return await self.db.run_transaction(body, tables=self._tables, attempt=attempt)

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

    async def note_detail(self, message_id: int, detail: dict[str, Any]) -> None:
        """Replace an owed message's detail: how far its delivery got (bot/delivery/uploads.py), so an attempt
        after a crash or a lost answer goes on from there."""
        params = {"b_id": message_id, "b_detail": dumps_or_none(detail)}
        await self._hot(lambda tx: tx.execute(self.db.prepare(POSTED_REMINDER), params))

    async def pause_still_owed(self, requirement_id: str) -> bool:
        """True while the message of this pause is still waiting to be posted."""
        c = outbox.c
        query = sa.select(c.id).where(c.requirement_id == requirement_id, c.kind == "pause", c.status == "pending")
        return await self._tx(lambda conn: conn.execute(query).first() is not None, write=False)

    async def reminders(self, run_id: str, requirement_id: str) -> tuple[list[dict[str, Any]], bool]:
        """The reminders of a pause posted so far (their rows' details, with the `channel` and `ts` of each),
        and whether one may be on its way to Slack right now: pending and held by a process (one held by
        nobody is drawn when it is taken, from the run as it is then: once its pause is decided, never)."""
        params = {"b_run_id": run_id, "b_requirement_id": requirement_id}
        rows = await self._hot(lambda tx: tx.all(self.db.prepare(_REMINDERS), params), write=False)
        now = time.time()
        posted = [d for status, raw, _ in rows if status == "done" and (d := self.db.read_json(raw) or {}).get("ts")]
        sending = any(status == "pending" and until is not None and until > now for status, _, until in rows)
        return posted, sending

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

    async def copy_still_owed(self, requirement_id: str, to: str | None) -> bool:
        """True while the DM copy of this pause for `to` (None: the starter) is still waiting to be posted."""
        c = outbox.c
        query = sa.select(c.detail).where(c.requirement_id == requirement_id, c.kind == "dm", c.status == "pending")
        rows = await self._tx(lambda conn: conn.execute(query).all(), write=False)
        return any((row.detail or {}).get("to") == to for row in rows)

    async def fail_owed(self, message: OwedMessage, *, error: str, notice: dict[str, Any] | None, team: str) -> bool:
        """Stop trying to send `message`: Slack refused it for good (`error`). It is recorded as failed and,
        with `notice` (a "notice" row's detail: who is told, and what), a notice is owed in the same
        transaction, unless an earlier message of the run failed with the same error (told once). Returns
        whether the notice was owed."""
        c = outbox.c
        recorded = error[:500]

        def body(conn: Connection) -> bool:
            failed = outbox.update().where(c.id == message.id)
            values = {"status": "failed", "error": recorded, "claimed_until": None, "claimed_by": None}
            conn.execute(failed.values(attempts=c.attempts + 1, **values))
            if notice is None:
                return False
            earlier = sa.select(c.id).where(
                c.run_id == message.run_id, c.status == "failed", c.error == recorded, c.id != message.id
            )
            if conn.execute(earlier.limit(1)).first() is not None:
                return False
            now = time.time()
            owed = {"run_id": message.run_id, "kind": "notice", "requirement_id": message.requirement_id}
            conn.execute(
                outbox.insert().values(
                    **owed, detail=notice, status="pending", attempts=0, next_at=now, created_at=now, team_id=team
                )
            )
            return True

        return bool(await self._tx(body))

    async def failed_owed(self, run_id: str) -> list[dict[str, Any]]:
        """The messages of a run that Slack refused for good (kind, requirement id, error), oldest first."""
        c = outbox.c
        query = sa.select(c.kind, c.requirement_id, c.error).where(c.run_id == run_id, c.status == "failed")
        query = query.order_by(c.id)
        return await self._tx(lambda conn: [dict(r) for r in conn.execute(query).mappings()], write=False)


@dataclass(frozen=True)
class Owing:
    """How one process's own transactions owe Slack a message: the row is held by that process (`holder`)
    for `hold` seconds, so it sends it itself right after the commit (`Outbox.deliver(run_id)`), and
    others take it only if that process died. Given to whatever records a change on an open pause (a vote,
    a hand-over, a tool call decided, an escalation), so it writes what it owes without a detour through
    delivery (`Outbox.owing`)."""

    rows: OutboxRows
    holder: str
    hold: float

    def redraw(self, tx: Tx, run_id: str, requirement_id: str, clicked: tuple[str, str] | None = None) -> None:
        """Owe a redraw of the open pause `requirement_id` (its message, its DM copies and `clicked`, the
        message clicked, if its ts may not be recorded yet), inside the transaction `tx` that records what
        changed on it. Dropped when delivered after the pause was decided: its decided form shows everything."""
        detail = {"clicked": list(clicked)} if clicked else None
        self.rows.owe(tx, run_id, "redraw", requirement_id, detail, holder=self.holder, hold=self.hold)

    def owe(self, tx: Tx, run_id: str, kind: str, requirement_id: str | None = None, detail: Any = None) -> None:
        """Owe a message of `kind` (e.g. "notice": a line in the run's thread, `detail={"text": ...}`), inside `tx`."""
        self.rows.owe(tx, run_id, kind, requirement_id, detail, holder=self.holder, hold=self.hold)
