"""The rows of reminders and escalations (bot/runs/timers.py fires them): written in the same kern
transaction that opens a pause (`schedule`, called by the outbox's watcher) and cancelled in the one that
decides it (`cancel`)."""

from __future__ import annotations

import sqlalchemy as sa

from bot.policy import Approvers
from bot.store.tables import card_team, timers
from kern.db.base import BaseDb
from kern.db.hot import Tx, insert_statement

_SCHEDULE = insert_statement(timers, "requirement_id", "kind", "run_id", "due_at", "count").values(
    team_id=card_team("b_team_run")
)
_CANCEL = (
    timers.update()
    .where(timers.c.requirement_id == sa.bindparam("b_requirement_id"), timers.c.done_at.is_(None))
    .values(done_at=sa.bindparam("b_now"))
)


def schedule(tx: Tx, db: BaseDb, rules: Approvers, run_id: str, requirement_id: str, now: float) -> None:
    """Inside the transaction that opens a pause (kern's watcher `Tx`): its reminder and escalation timers,
    per its rules."""
    rows = []
    if rules.remind_after and rules.max_reminders:
        rows.append({"kind": "remind", "due_at": now + rules.remind_after})
    if rules.escalate_after:
        rows.append({"kind": "escalate", "due_at": now + rules.escalate_after})
    for row in rows:
        values = {"requirement_id": requirement_id, "run_id": run_id, "count": 0, "b_team_run": run_id}
        tx.execute(db.prepare(_SCHEDULE), {**values, **row})


def cancel(tx: Tx, db: BaseDb, requirement_id: str, now: float) -> None:
    """Inside the transaction that decides a pause: its timers will not fire."""
    tx.execute(db.prepare(_CANCEL), {"b_requirement_id": requirement_id, "b_now": now})
