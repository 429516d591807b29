"""The bot's store: its tables (`tables`) under their own migrations (`migrations`), the row records
(`records`) and the transactions every table is written in (`transactions`), the outbox's rows
(`outbox_rows`), what was done to a pause (`pause_notes`, `votes`) and the counters and gauges read from
them (`metrics`). May import only `bot.blocks` and the top-level foundations
(`bot.policy`, `bot.registry`, `bot.config`, ...), and kern.

This module: what the bot remembers besides kern's runs: where each run card and pause message (and its DM copies)
lives in Slack, and the decisions on individual tool calls of an executor pause that still waits for others.

`BotStore` is the facade the bot's modules use; the outbox's rows are its `OutboxRows` part
(bot/store/outbox_rows.py), the tables are declared in bot/store/tables.py and the row records in bot/store/records.py.
Kept in the same database as the runs, through `BaseDb.run_transaction`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bot.store.outbox_rows import POSTED_REMINDER, OutboxRows, done_statement
from bot.store.records import Card, Delivery, OwedMessage, PauseCopy, PauseMessage, insert_copy
from bot.store.tables import card_team, cards, pause_copies, pauses, tool_decisions
from bot.store.transactions import insert_once
from kern.db.base import BaseDb
from kern.db.hot import Tx, dumps_or_none, insert_statement

__all__ = ["BotStore", "Card", "Delivery", "OwedMessage", "PauseCopy", "PauseMessage", "insert_once"]

# A card's columns, in `Card`'s order (every read of a card selects these).
CARD_COLUMNS = (
    cards.c.run_id, cards.c.workflow, cards.c.channel, cards.c.ts, cards.c.started_by, cards.c.input, cards.c.team_id
)  # fmt: skip
_CARD = sa.select(*CARD_COLUMNS).where(cards.c.run_id == sa.bindparam("b_run_id"))
_TEAM_CARD = _CARD.where(cards.c.team_id == sa.bindparam("b_team"))
_PAUSE_COLUMNS = (
    pauses.c.requirement_id, pauses.c.run_id, pauses.c.channel, pauses.c.ts, pauses.c.status, pauses.c.decided_by,
    pauses.c.outcome,
)  # fmt: skip
_PAUSE = sa.select(*_PAUSE_COLUMNS).where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
_PAUSE_WITH_CARD = (
    sa.select(*_PAUSE_COLUMNS, *CARD_COLUMNS)
    .select_from(pauses.outerjoin(cards, cards.c.run_id == pauses.c.run_id))
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"), pauses.c.team_id == sa.bindparam("b_team"))
)
_CARD_WITH_OPEN_PAUSES = (  # one row per open pause (or one with no pause)
    sa.select(*CARD_COLUMNS, *_PAUSE_COLUMNS)
    .select_from(cards.outerjoin(pauses, sa.and_(pauses.c.run_id == cards.c.run_id, pauses.c.status == "open")))
    .where(cards.c.run_id == sa.bindparam("b_run_id"))
)

_COPIES = sa.select(
    pause_copies.c.requirement_id, pause_copies.c.recipient, pause_copies.c.run_id, pause_copies.c.channel,
    pause_copies.c.ts, pause_copies.c.team_id,
).where(pause_copies.c.requirement_id == sa.bindparam("b_requirement_id"))  # fmt: skip
_TOOL_DECISIONS = sa.select(
    tool_decisions.c.call_index, tool_decisions.c.decision, tool_decisions.c.decided_by, tool_decisions.c.summary
).where(tool_decisions.c.requirement_id == sa.bindparam("b_requirement_id"))


_PAUSE_POSTED = (
    pauses.update()
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
    .values(run_id=sa.bindparam("b_run_id"), channel=sa.bindparam("b_channel"), ts=sa.bindparam("b_ts"))
)
_PAUSE_ROW = insert_statement(pauses, "requirement_id", "run_id", "channel", "ts", "status", "posted_at").values(
    team_id=card_team("b_team_run")
)
_PAUSE_DECIDED = (
    pauses.update()
    .where(pauses.c.requirement_id == sa.bindparam("b_requirement_id"))
    .values(status="decided", decided_by=sa.bindparam("b_by"), outcome=sa.bindparam("b_outcome"))
)


class BotStore(OutboxRows):
    """The bot's bookkeeping tables, next to kern's."""

    def __init__(self, db: BaseDb) -> None:
        super().__init__(db)
        # Records a pause as known before its message is posted (ON CONFLICT DO NOTHING: the dialect's).
        self._expect = (
            db.dialect_insert(pauses)
            .values(
                {
                    n: sa.bindparam(n, type_=pauses.c[n].type)
                    for n in ("requirement_id", "run_id", "status", "posted_at")
                }
                | {"channel": "", "ts": "", "team_id": card_team("b_team_run")}
            )
            .on_conflict_do_nothing()
        )

    async def save_card(self, card: Card) -> None:
        await insert_once(self.db, cards, vars(card) | {"created_at": time.time()})

    async def card(self, run_id: str, *, team: str | None = None) -> Card | None:
        """The run's card if it is in workspace `team` (None: in any; for the outbox and the sweeper, which
        then act for the card's team)."""
        statement, params = (
            (_CARD, {"b_run_id": run_id}) if team is None else (_TEAM_CARD, {"b_run_id": run_id, "b_team": team})
        )
        row = await self._hot(lambda tx: tx.first(self.db.prepare(statement), params), write=False)
        return Card(*row) if row else None

    async def card_with_open_pauses(self, run_id: str) -> tuple[Card | None, dict[str, PauseMessage]]:
        """A run's card (in any workspace: the outbox then acts for the card's team) and its pauses not yet
        decided (by requirement id), read together: what delivering the run's owed messages needs."""
        rows = await self._hot(
            lambda tx: tx.all(self.db.prepare(_CARD_WITH_OPEN_PAUSES), {"b_run_id": run_id}), write=False
        )
        if not rows:
            return None, {}
        size = len(CARD_COLUMNS)
        open_pauses = {row[size]: PauseMessage(*row[size:]) for row in rows if row[size] is not None}
        return Card(*rows[0][:size]), open_pauses

    async def pause_with_card(self, requirement_id: str, *, team: str) -> tuple[PauseMessage | None, Card | None]:
        """A pause of workspace `team` and its run's card, read together (what a click on the pause needs
        first); (None, None) for a pause of another workspace, as for one that does not exist."""
        params = {"b_requirement_id": requirement_id, "b_team": team}
        row = await self._hot(lambda tx: tx.first(self.db.prepare(_PAUSE_WITH_CARD), params), write=False)
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
        self,
        requirement_id: str,
        index: int,
        decision: dict[str, Any],
        by: str,
        summary: str,
        *,
        team: str,
        owes: Callable[[Tx], None] | None = None,
    ) -> bool:
        """Record one tool call's decision (in workspace `team`, the run's), and what it `owes` Slack in the
        same transaction; False if that call was already decided (nothing written)."""
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
                "team_id": team,
            },
            if_first=owes,
        )

    async def tool_decisions(self, requirement_id: str) -> dict[int, dict[str, Any]]:
        """The decisions on a tool-call pause's calls so far, by call index (one statement: every card and
        Home drawing of the pause asks)."""
        params = {"b_requirement_id": requirement_id}
        rows = await self._hot(lambda tx: tx.all(self.db.prepare(_TOOL_DECISIONS), params), write=False)
        return {r[0]: {"decision": self.db.read_json(r[1]), "by": r[2], "summary": r[3]} for r in rows}

    def expect_pause(self, tx: Tx, run_id: str, requirement_id: str) -> None:
        """Record a pause whose message is owed (no channel or ts yet), inside the caller's transaction."""
        row = {"requirement_id": requirement_id, "run_id": run_id, "status": "open", "posted_at": time.time()}
        tx.execute(self.db.prepare(self._expect), {**row, "b_team_run": run_id})

    async def delivered(self, done: list[Delivery]) -> None:
        """Record sent messages in one transaction: rows done, posted pause messages remembered (where
        they live, so they are never posted again), decided ones marked with their outcome."""
        prepare = self.db.prepare

        ids = sorted({d.message.id for d in done})

        def body(tx: Tx) -> None:
            if ids:
                tx.execute(prepare(done_statement(len(ids))), {f"b_id{i}": id_ for i, id_ in enumerate(ids)})
            for d in done:
                if d.pause is not None and not d.recorded:
                    values = {"b_run_id": d.pause.run_id, "b_channel": d.pause.channel, "b_ts": d.pause.ts}
                    if tx.execute(prepare(_PAUSE_POSTED), {"b_requirement_id": d.pause.requirement_id, **values}) == 0:
                        row = {
                            "requirement_id": d.pause.requirement_id,
                            "run_id": d.pause.run_id,
                            "channel": d.pause.channel,
                            "ts": d.pause.ts,
                            "status": "open",
                            "posted_at": time.time(),
                            "b_team_run": d.pause.run_id,
                        }
                        tx.execute(prepare(_PAUSE_ROW), row)
                if d.copy is not None and not d.recorded:
                    insert_copy(tx, self.db, d.copy)
                if d.posted is not None:  # where a reminder lives, in its own row: redrawn once its pause is decided
                    where = {**(d.message.detail or {}), "channel": d.posted[0], "ts": d.posted[1]}
                    tx.execute(prepare(POSTED_REMINDER), {"b_id": d.message.id, "b_detail": dumps_or_none(where)})
                if d.outcome is not None and d.message.requirement_id is not None and d.message.kind == "close":
                    decided = {"b_by": (d.message.detail or {}).get("by"), "b_outcome": d.outcome}
                    tx.execute(prepare(_PAUSE_DECIDED), {"b_requirement_id": d.message.requirement_id, **decided})

        await self._hot(body)

    async def cards_by_prefix(self, prefix: str, *, team: str, limit: int = 6) -> list[Card]:
        """Cards of workspace `team` whose run id starts with `prefix` (an index range, not a scan), at most
        `limit`."""
        c = cards.c
        query = (
            sa.select(*CARD_COLUMNS)
            .where(c.run_id >= prefix, c.run_id < prefix + "\x7f", c.team_id == team)  # run ids are ASCII
            .order_by(c.run_id)
            .limit(limit)
        )
        return await self._tx(lambda conn: [Card(*r) for r in conn.execute(query)], write=False)

    async def card_at(self, channel: str, ts: str, *, team: str) -> Card | None:
        """The run card of workspace `team` posted as message `ts` in `channel` (for actions on a message)."""
        c = cards.c
        query = sa.select(*CARD_COLUMNS).where(c.channel == channel, c.ts == ts, c.team_id == team)
        row = await self._tx(lambda conn: conn.execute(query).first(), write=False)
        return Card(*row) if row else None

    # ----- DM copies of pause messages --------------------------------------------------------------
    async def copies(self, requirement_id: str) -> list[PauseCopy]:
        """Where copies of a pause's message were posted (DMs, approvals channel): one statement, as every
        redrawing of the pause asks."""
        params = {"b_requirement_id": requirement_id}
        rows = await self._hot(lambda tx: tx.all(self.db.prepare(_COPIES), params), write=False)
        return [PauseCopy(*r) for r in rows]
