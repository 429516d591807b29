"""What the bot remembers besides kern's runs: where each run card and pause message lives in Slack,
and the decisions on individual tool calls of an executor pause that still waits for others.

Kept in the same database as the runs, through `BaseDb.run_transaction`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kern.db.base import BaseDb

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


@dataclass
class Card:
    run_id: str
    workflow: str
    channel: str
    ts: str
    started_by: str
    input: str | None = None


@dataclass
class PauseMessage:
    requirement_id: str
    run_id: str
    channel: str
    ts: str
    status: str
    decided_by: str | None
    outcome: str | None


class BotStore:
    """The bot's bookkeeping tables, next to kern's."""

    def __init__(self, db: BaseDb) -> None:
        self.db = db

    async def _tx(self, body: Any, write: bool = True) -> Any:
        return await self.db.run_transaction(body, write=write, tables=metadata)

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

    async def _insert_once(self, table: sa.Table, values: dict[str, Any]) -> bool:
        """Insert a row; False (and nothing changed) if its key exists already, whoever wrote it."""

        def body(c: Connection) -> bool:
            try:
                with c.begin_nested():
                    c.execute(table.insert().values(**values))
            except IntegrityError:
                return False
            return True

        return await self._tx(body)

    async def save_pause(self, requirement_id: str, run_id: str, channel: str, ts: str) -> bool:
        """Remember a posted pause message; False if this pause was already posted (by any process)."""
        return await self._insert_once(
            pauses,
            {
                "requirement_id": requirement_id,
                "run_id": run_id,
                "channel": channel,
                "ts": ts,
                "status": "open",
                "posted_at": time.time(),
            },
        )

    async def claim_pause_post(self, requirement_id: str, run_id: str, channel: str) -> bool:
        """Reserve the right to post a pause message (one process, once): a row with no ts yet."""
        return await self.save_pause(requirement_id, run_id, channel, "")

    async def set_pause_ts(self, requirement_id: str, ts: str) -> None:
        await self._tx(
            lambda c: c.execute(pauses.update().where(pauses.c.requirement_id == requirement_id).values(ts=ts))
        )

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

    async def mark_decided(self, requirement_id: str, by: str | None, outcome: str) -> bool:
        """open -> decided, once; False if someone else marked it first."""
        result = await self._tx(
            lambda c: c.execute(
                pauses.update()
                .where(pauses.c.requirement_id == requirement_id, pauses.c.status == "open")
                .values(status="decided", decided_by=by, outcome=outcome)
            )
        )
        return result.rowcount == 1

    async def record_tool_decision(
        self, requirement_id: str, index: int, decision: dict[str, Any], by: str, summary: str
    ) -> bool:
        """Record one tool call's decision; False if that call was already decided."""
        return await self._insert_once(
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


# Requests already acted on (bot/dedupe.py): the hash of a signed body, kept for Slack's replay window.
seen_requests = sa.Table(
    "kern_bot_seen_requests",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("seen_at", sa.Float, nullable=False, index=True),
)
