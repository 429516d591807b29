"""The `@approval` records an open tool-call pause waits on (bot/runs/approval_records.py acts on them).

A row per record is written in the kern transaction that opens the pause (`watch`, called by the outbox's
watcher with the record ids kern names in its `RunChange`) and deleted in the one that decides the pause or
ends the run (`forget`). So the table holds only what is still open, and a sweep finds the records resolved
through kern's approvals API, not on Slack, with one join (`resolved`): nothing to do costs one query over
a table that is empty unless `@approval` pauses are waiting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from bot.store.tables import card_team, pause_approvals
from kern.db.base import BaseDb
from kern.db.hot import Tx
from kern.db.schema import approvals

_COLUMNS = ("approval_id", "requirement_id", "run_id")
_WATCH: dict[Any, sa.Insert] = {}  # by the store's dialect insert: INSERT ... ON CONFLICT DO NOTHING
_FORGET_PAUSE = pause_approvals.delete().where(pause_approvals.c.requirement_id == sa.bindparam("b_requirement_id"))
_FORGET_RUN = pause_approvals.delete().where(pause_approvals.c.run_id == sa.bindparam("b_run_id"))
_RESOLVED = (
    sa.select(pause_approvals.c.requirement_id, pause_approvals.c.run_id, pause_approvals.c.team_id)
    .distinct()
    .select_from(pause_approvals.join(approvals, approvals.c.id == pause_approvals.c.approval_id))
    .where(approvals.c.status != "pending")
    .order_by(pause_approvals.c.requirement_id)
    .limit(sa.bindparam("b_limit"))
)


@dataclass(frozen=True)
class Settled:
    """An open pause at least one of whose approval records was resolved (who knows where)."""

    requirement_id: str
    run_id: str
    team_id: str


def _watch(db: BaseDb) -> sa.Insert:
    statement = _WATCH.get(db.dialect_insert)
    if statement is None:
        values = {n: sa.bindparam(n, type_=pause_approvals.c[n].type) for n in _COLUMNS}
        insert = db.dialect_insert(pause_approvals).values({**values, "team_id": card_team("b_team_run")})
        statement = _WATCH[db.dialect_insert] = insert.on_conflict_do_nothing()
    return statement


def watch(tx: Tx, db: BaseDb, run_id: str, requirement_id: str, approval_ids: Sequence[str]) -> None:
    """Inside the transaction that opens a pause: the approval records it waits on (a repeat does nothing)."""
    prepared = db.prepare(_watch(db))
    for approval_id in approval_ids:
        row = {"approval_id": approval_id, "requirement_id": requirement_id, "run_id": run_id}
        tx.execute(prepared, {**row, "b_team_run": run_id})


def forget_pause(tx: Tx, db: BaseDb, requirement_id: str) -> None:
    """Inside the transaction that decides a pause: its records no longer move anything."""
    tx.execute(db.prepare(_FORGET_PAUSE), {"b_requirement_id": requirement_id})


def forget_run(tx: Tx, db: BaseDb, run_id: str) -> None:
    """Inside the transaction that ends a run (a cancel of a paused run decides no pause)."""
    tx.execute(db.prepare(_FORGET_RUN), {"b_run_id": run_id})


async def resolved(db: BaseDb, limit: int = 100) -> list[Settled]:
    """Open pauses with an approval record resolved: one query (a join over the open pauses' rows)."""
    from bot.store.migrations import BOT  # versions these tables; it imports them from bot.store.tables

    rows = await db.run_hot(lambda tx: tx.all(db.prepare(_RESOLVED), {"b_limit": limit}), write=False, tables=BOT)
    return [Settled(str(r[0]), str(r[1]), str(r[2] or "")) for r in rows]


async def forget(db: BaseDb, requirement_id: str) -> None:
    """Drop the rows of a pause found decided or gone by other means (a sweep cleaning up after itself)."""
    from bot.store.migrations import BOT

    await db.run_hot(lambda tx: forget_pause(tx, db, requirement_id), tables=BOT)
