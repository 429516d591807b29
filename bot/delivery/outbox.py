"""The outbox: every message the bot owes Slack is a row written in the transaction that makes it owed,
then delivered until Slack accepts it.

kern calls `Outbox.record` inside each transaction that changes a run's status (`BaseDb.watch`): a
pause owes its pause message and a card update, a decision owes the decided form of its pause message,
an end owes the final card. A Slack error or a crash between the commit and the send loses nothing:
the row stays pending and is delivered by `deliver` (right after the change, and by every sweep of
every bot process). Delivery claims a row for a while first, so two processes do not send it twice, and
renders from the run as stored, so a repeated send shows the same thing. A pause message is posted once:
its ts is recorded in the same transaction that marks the row done. (A crash after Slack accepted a post
but before that commit can post it again: Slack offers no idempotency key for chat.postMessage.)

A workflow with notify="dm" also owes a DM copy of each pause per recipient, and its decided form: one
row each, retried on its own, so a Slack error on one copy delays neither the others nor the run's
other messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from bot import notify
from bot.delivery.presenter import RETRY_SOON, NotYet, Presenter, RunView
from bot.registry import BotWorkflow, Registry
from bot.slack.gateway import SlackCallFailed
from bot.slack.workspaces import acting_for
from bot.store import BotStore, Delivery, OwedMessage, PauseMessage, timer_rows
from kern.db.base import RunChange
from kern.db.hot import Tx

log = logging.getLogger("kern_bot")
MAX_BACKOFF = 300.0
ENDED = frozenset({"COMPLETED", "CANCELLED", "ERROR"})
COPIES = frozenset({"dm", "close_dm"})  # one row per DM copy: each is retried on its own


def owed_for(change: RunChange, entry: BotWorkflow) -> list[tuple[str, str | None, dict[str, Any] | None]]:
    """The messages `change` owes Slack, as (kind, requirement id, detail), in the order they are sent: a
    decision owes the decided form of its pause message (and of each DM copy); a pause owes a card update
    and its message (and a DM copy to each recipient); an end owes the final card."""
    owed: list[tuple[str, str | None, dict[str, Any] | None]] = []
    recipients = notify.dm_recipients(entry.notify, entry.approvers)
    for resolution in change.resolutions:
        if resolution.requirement_id:
            detail = {
                "decision": resolution.decision,
                "by": resolution.resolved_by,
                "at": resolution.resolved_at,
                "status": resolution.status,
            }
            owed.append(("close", resolution.requirement_id, detail))
            owed.extend(("close_dm", resolution.requirement_id, {**detail, "to": to}) for to in recipients)
    if change.status == "PAUSED" and change.requirement_id:
        # The card first: the pause message is then the batch's last, recorded with the rest in one transaction.
        owed.append(("card", None, None))
        owed.append(("pause", change.requirement_id, None))
        owed.extend(("dm", change.requirement_id, {"to": to}) for to in recipients)
    elif change.status in ENDED:
        owed.append(("card", None, None))
    return owed


def backoff(attempts: int, retry_after: float | None = None, first: float = 1.0) -> float:
    """Seconds to wait before the next attempt: doubling from `first` with jitter, capped at 5 minutes,
    never sooner than Slack's Retry-After."""
    delay = min(MAX_BACKOFF, first * 2.0**attempts) * (0.5 + random.random() / 2)
    return max(delay, retry_after or 0.0)


class Outbox:
    """Records what is owed (inside kern's transactions) and delivers it.

    A message being sent is held by its process for the store's `lease_seconds` (as a running run is):
    if the process dies meanwhile, another one sends it after that. `first_retry` is the first backoff.
    """

    def __init__(self, store: BotStore, presenter: Presenter, registry: Registry, first_retry: float = 1.0) -> None:
        self.first_retry = first_retry
        self.hold = registry.db.lease_seconds
        self.me = uuid.uuid4().hex  # this process, as the holder of the messages its transactions owe
        self.store = store
        self.presenter = presenter
        self.registry = registry
        self._entries = {entry.workflow.name: entry for entry in registry.entries.values()}
        # Called with each batch delivered for a run (e.g. to refresh the App Home); must not block.
        self.listeners: list[Callable[[RunView, list[Delivery]], None]] = []
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Runs whose messages this process is about to deliver itself (`delivering`): sweeps leave them be.
        self._in_flight: Counter[str] = Counter()
        registry.db.watch(self.record)

    @contextlib.contextmanager
    def delivering(self, run_id: str) -> Iterator[None]:
        """While inside, this process will deliver what `run_id` owes (`deliver(run_id)` before leaving):
        a sweep (`deliver()`) does not claim this process's messages of that run meanwhile. Without it, a
        sweep during a burst re-claimed every message still on its way, one UPDATE each, to send none."""
        self._in_flight[run_id] += 1
        try:
            yield
        finally:
            self._in_flight[run_id] -= 1
            if not self._in_flight[run_id]:
                del self._in_flight[run_id]

    def record(self, conn: Tx, change: RunChange) -> None:
        """kern's watcher: runs inside the transaction of `change`, so the rows commit with it (`conn` is
        that transaction, on the bare driver connection: write through the store's prepared statements)."""
        entry = self._entries.get(change.workflow_name or "")
        if entry is None:
            return
        now = time.time()
        for resolution in change.resolutions if entry.has_timers else ():  # a decided pause: its timers end
            if resolution.requirement_id:
                timer_rows.cancel(conn, self.store.db, resolution.requirement_id, now)
        if change.status == "PAUSED" and change.requirement_id:
            # Known from now on, so a click on its message is understood even before its ts is recorded.
            self.store.expect_pause(conn, change.run_id, change.requirement_id)
            timer_rows.schedule(
                conn, self.store.db, entry.approvers_for(change.step_name), change.run_id, change.requirement_id, now
            )
        self.store.owe_all(conn, change.run_id, owed_for(change, entry), holder=self.me, hold=self.hold)

    async def deliver(self, run_id: str | None = None, *, as_written: bool = False) -> int:
        """Send what is due; returns how many were delivered.

        With `run_id` (right after this process changed that run): what this process's own transactions
        owe for it, which it holds from the start, so finding them is a read (`as_written`: for a drive
        that has just ended here, the run is shown as it saved it, see `Presenter.load`). Without (a
        sweep): whatever is due and held by nobody, or by a process whose hold expired, claimed first.
        Messages of one run go in the order they were owed, one delivery at a time per run; a failure leaves
        that one and the run's later ones for a later attempt (with backoff, honouring Retry-After).
        """
        if run_id is not None:
            async with self._locks[run_id]:
                done = await self._deliver_run(run_id, await self.store.held(run_id, self.me), as_written)
                if done:
                    await self.store.delivered(done)
            self._forget_lock(run_id)
            return sum(1 for d in done if not d.dropped)
        messages = await self.store.claim_owed(None, hold=self.hold, holder=self.me, skip_runs=list(self._in_flight))
        by_run: dict[str, list[OwedMessage]] = {}
        for message in messages:
            by_run.setdefault(message.run_id, []).append(message)
        done = []
        for run, owed in by_run.items():
            async with self._locks[run]:
                pending = await self.store.still_pending([m.id for m in owed])  # the fast path may have sent some
                done.extend(await self._deliver_run(run, [m for m in owed if m.id in pending]))
            self._forget_lock(run)
        if done:
            await self.store.delivered(done)
        return sum(1 for d in done if not d.dropped)

    def _forget_lock(self, run_id: str) -> None:
        lock = self._locks.get(run_id)
        if lock is not None and not lock.locked() and not lock._waiters:  # nobody is waiting on it either
            del self._locks[run_id]

    async def _deliver_run(self, run_id: str, owed: list[OwedMessage], as_written: bool = False) -> list[Delivery]:
        if not owed:
            return []
        view = await self.presenter.load(run_id, as_written=as_written)
        if view is None:
            return [Delivery(m, dropped=True) for m in owed]
        with acting_for(view.card.team_id):  # sent with the token of the run's workspace
            return await self._deliver_view(view, owed)

    async def _deliver_view(self, view: RunView, owed: list[OwedMessage]) -> list[Delivery]:
        done: list[Delivery] = []
        posted: dict[str, PauseMessage] = {}
        last_card = max((i for i, m in enumerate(owed) if m.kind == "card"), default=-1)
        for index, message in enumerate(owed):
            if message.kind == "card" and index != last_card:
                done.append(Delivery(message))  # a later card update of this batch shows the same state
                continue
            try:
                delivery = await self.presenter.deliver(message, view, posted)
                if (delivery.pause is not None or delivery.copy is not None) and index < len(owed) - 1:
                    # recorded at once (the last of a batch is recorded with the batch, right after): a decision
                    # on it may be owed any moment
                    await self.store.delivered([delivery])
                    delivery.recorded = True
                done.append(delivery)
            except NotYet as exc:
                if message.kind in COPIES:  # a copy waits alone; the others go on
                    await self._later([message], time.time() + RETRY_SOON, str(exc), counted=False)
                    continue
                await self._later(owed[index:], time.time() + RETRY_SOON, str(exc), counted=False)
                break
            except SlackCallFailed as exc:
                delay = backoff(message.attempts, exc.retry_after, self.first_retry)
                log.warning(
                    "outbox: %s (message %s, attempt %d; retry in %.1fs)", exc, message.id, message.attempts + 1, delay
                )
                if message.kind in COPIES:
                    await self._later([message], time.time() + delay, str(exc), counted=True)
                    continue
                await self._later(owed[index:], time.time() + delay, str(exc), counted=True)
                break
        for listener in self.listeners:
            listener(view, done)
        return done

    async def _later(self, owed: list[OwedMessage], at: float, error: str, *, counted: bool) -> None:
        """Leave the first message (and the run's later ones, behind it) pending until `at`."""
        await self.store.retry_owed(owed[0], at=at, error=error, count=counted)
        for message in owed[1:]:
            await self.store.retry_owed(message, at=at, error="waits for an earlier message", count=False)
