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
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict

from sqlalchemy.engine import Connection

from bot.gateway import SlackCallFailed
from bot.presenter import RETRY_SOON, NotYet, Presenter
from bot.registry import Registry
from bot.store import BotStore
from kern.db.base import RunChange

log = logging.getLogger("kern_bot")
MAX_BACKOFF = 300.0
ENDED = frozenset({"COMPLETED", "CANCELLED", "ERROR"})


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
        self.store = store
        self.presenter = presenter
        self.registry = registry
        self._names = {entry.workflow.name for entry in registry.entries.values()}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        registry.db.watch(self.record)

    def record(self, conn: Connection, change: RunChange) -> None:
        """kern's watcher: runs inside the transaction of `change`, so the rows commit with it."""
        if change.workflow_name not in self._names:
            return
        for resolution in change.resolutions:
            if resolution.requirement_id:
                detail = {
                    "decision": resolution.decision,
                    "by": resolution.resolved_by,
                    "at": resolution.resolved_at,
                    "status": resolution.status,
                }
                self.store.owe(conn, change.run_id, "close", resolution.requirement_id, detail)
        if change.status == "PAUSED" and change.requirement_id:
            self.store.owe(conn, change.run_id, "pause", change.requirement_id)
            self.store.owe(conn, change.run_id, "card")
        elif change.status in ENDED:
            self.store.owe(conn, change.run_id, "card")

    async def deliver(self, run_id: str | None = None) -> int:
        """Send what is due (for one run, or for every run); returns how many were delivered.

        Messages of one run go in the order they were owed; a failure leaves that one and the run's later
        ones for a later attempt (with backoff, honouring Retry-After).
        """
        messages = await self.store.claim_owed(run_id, hold=self.hold)
        delivered = 0
        blocked: set[str] = set()
        for message in messages:
            if message.run_id in blocked:
                await self.store.retry_owed(message, at=time.time(), error="after an earlier message", count=False)
                continue
            async with self._locks[message.run_id]:
                try:
                    channel, ts = await self.presenter.deliver(message)
                except NotYet as exc:
                    blocked.add(message.run_id)
                    await self.store.retry_owed(message, at=time.time() + RETRY_SOON, error=str(exc), count=False)
                    continue
                except SlackCallFailed as exc:
                    blocked.add(message.run_id)
                    delay = backoff(message.attempts, exc.retry_after, self.first_retry)
                    log.warning(
                        "outbox: %s (message %s, attempt %d; retry in %.1fs)",
                        exc,
                        message.id,
                        message.attempts + 1,
                        delay,
                    )
                    await self.store.retry_owed(message, at=time.time() + delay, error=str(exc))
                    continue
                await self.store.delivered(message, ts, channel)
                delivered += 1
        for run in {m.run_id for m in messages}:
            lock = self._locks.get(run)
            if lock is not None and not lock.locked():
                del self._locks[run]
        return delivered
