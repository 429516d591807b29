"""Reminders and escalation: durable timers on open pauses.

`Approvers(remind_after=..., max_reminders=...)` nudges the people a pause mentions; `escalate_after` with
`escalate_to=Approvers(...)` lets another group answer too, and tells them. The timers are rows written in
the same kern transaction that opens the pause and cancelled in the one that decides it (by the outbox's
watcher: bot/store/timer_rows.py). Every sweep of every bot process fires what is due
(`fire_due`): a timer fires through a compare-and-set on its row, in the same transaction (a `run_hot` one,
statements prepared once) as the messages it owes (outbox "remind" rows, written by one INSERT: one in the
run's thread and a DM per person mentioned) and, for an escalation, its record and audit line; so it fires once across
replicas and after a restart, and its messages are delivered like any others. A deadline (`timeout`) and a timer
never both act on a decided pause: whichever decides first cancels the rest.

What a reminder shows is drawn when it is delivered (bot/delivery/presenter.py, bot/blocks/reminders.py): the
pause's question and controls, whom it waits on and since when, naming only its recipients; a reminder owed
but not yet delivered when its pause is decided is dropped, and those posted are redrawn as decided.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from bot import blocks as ui
from bot.policy import Approvers
from bot.store.tables import escalations, timers
from kern.db.hot import INSERT_AUDIT, Tx, dumps_or_none, insert_statement

if TYPE_CHECKING:
    from bot.delivery.presenter import RunView
    from bot.runs.runner import Runner

log = logging.getLogger("kern_bot")
BATCH = 50
T = TypeVar("T")


_DUE = (
    sa.select(timers.c.requirement_id, timers.c.kind, timers.c.run_id, timers.c.count)
    .where(timers.c.done_at.is_(None), timers.c.due_at <= sa.bindparam("b_now"))
    .order_by(timers.c.due_at)
    .limit(BATCH)
)


def _claim_statement(**values: Any) -> sa.Update:
    """Compare-and-set on a timer as it was read (its count, not done): counted, and `values` set."""
    c = timers.c
    return (
        timers.update()
        .where(
            c.requirement_id == sa.bindparam("b_requirement_id"),
            c.kind == sa.bindparam("b_kind"),
            c.count == sa.bindparam("b_count"),
            c.done_at.is_(None),
        )
        .values(count=sa.bindparam("b_next_count"), **values)
    )


_CLAIM_AGAIN = _claim_statement(due_at=sa.bindparam("b_due_at"))  # a reminder with more to come
_CLAIM_DONE = _claim_statement(done_at=sa.bindparam("b_now"))  # fired for the last time, or cancelled
_ESCALATED = insert_statement(escalations, "requirement_id", "run_id", "at", "team_id")


class Timers:
    """Fires due timers (from the sweeper)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.store = runner.store
        self.db = runner.store.db
        self.outbox = runner.outbox

    async def _hot(self, body: Callable[[Tx], T], write: bool = True) -> T:
        from bot.store.migrations import BOT

        return await self.db.run_hot(body, write=write, tables=BOT)

    async def fire_due(self, now: float | None = None) -> int:
        """Fire every timer due at `now` (default: the clock); returns how many fired."""
        now = time.time() if now is None else now
        due = await self._hot(lambda tx: tx.all(self.db.prepare(_DUE), {"b_now": now}), write=False)
        fired = 0
        for requirement_id, kind, run_id, count in due:
            try:
                fired += await self._fire(requirement_id, kind, run_id, count, now)
            except Exception:  # one bad timer must not stop the others; it is tried again next sweep
                log.exception("timer %s of pause %s failed", kind, requirement_id)
        return fired

    async def _fire(self, requirement_id: str, kind: str, run_id: str, count: int, now: float) -> int:
        view = await self.runner.presenter.load(run_id)
        req = view.run.step_requirements[-1] if view and view.run.is_paused and view.run.step_requirements else None
        if view is None or req is None or req.requirement_id != requirement_id:
            await self._hot(lambda tx: self._claim(tx, requirement_id, kind, count, None, now))  # over: cancel
            return 0
        rules = view.entry.approvers_for(req.step_name)
        if kind == "remind":
            more = count + 1 < rules.max_reminders and rules.remind_after
            next_due = now + rules.remind_after if more else None  # type: ignore[operator]
            nudge = {"kind": ui.REMIND, "n": count + 1, "of": rules.max_reminders, "at": now}

            def body(tx: Tx) -> bool:
                if not self._claim(tx, requirement_id, kind, count, next_due, now):
                    return False  # another process fired it
                self._tell(tx, view, requirement_id, nudge, rules)
                return True

        else:
            up = rules.escalate_to
            assert up is not None
            nudge = {"kind": ui.ESCALATE, "at": now}

            def body(tx: Tx) -> bool:
                if not self._claim(tx, requirement_id, kind, count, None, now):
                    return False
                row = {"requirement_id": requirement_id, "run_id": run_id, "at": now, "team_id": view.card.team_id}
                tx.execute(self.db.prepare(_ESCALATED), row)
                tx.execute(self.db.prepare(INSERT_AUDIT), _audit(view, req, up, now))
                self._tell(tx, view, requirement_id, nudge, up)
                self.outbox.owing.redraw(tx, run_id, requirement_id)  # "escalated to" on the pause message
                return True

        if not await self._hot(body):
            return 0
        await self.outbox.deliver(run_id)
        return 1

    def _claim(self, tx: Tx, requirement_id: str, kind: str, count: int, next_due: float | None, now: float) -> bool:
        """Compare-and-set: this process fires (or cancels) the timer as it read it; False if another did."""
        params = {"b_requirement_id": requirement_id, "b_kind": kind, "b_count": count, "b_next_count": count + 1}
        if next_due is not None:
            return tx.execute(self.db.prepare(_CLAIM_AGAIN), {**params, "b_due_at": next_due}) == 1
        return tx.execute(self.db.prepare(_CLAIM_DONE), {**params, "b_now": now}) == 1

    def _tell(self, tx: Tx, view: RunView, requirement_id: str, nudge: dict[str, Any], rules: Approvers) -> None:
        """Owe the nudge, in one statement: in the run's thread, and by DM to each user mentioned when the
        workflow DMs. Each is a "remind" row, drawn when it is delivered (from the run as it is then: none
        once the pause is decided) and redrawn as decided with the pause (`Outbox`)."""
        notices: list[tuple[str, str | None, Any]] = [("remind", requirement_id, nudge)]
        if view.entry.notify == "dm":
            notices.extend(("remind", requirement_id, {**nudge, "dm": user}) for user in _mentioned_users(rules))
        self.store.owe_all(tx, view.card.run_id, notices, holder=self.outbox.me, hold=self.outbox.hold)


def _mentioned_users(rules: Approvers) -> list[str]:
    ids = rules.notify if rules.notify is not None else rules.users
    return [i for i in ids if i in rules.users]


def _audit(view: RunView, req: Any, up: Approvers, now: float) -> dict[str, Any]:
    return {
        "run_id": view.card.run_id,
        "requirement_id": req.requirement_id,
        "workflow_name": view.entry.name,
        "step_name": req.step_name,
        "kind": req.kind,
        "actor": "kern",
        "decision": "escalate",
        "note": None,
        "data": dumps_or_none({"to": up.describe()}),
        "at": now,
    }
