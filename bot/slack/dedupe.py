"""Each request Slack delivers is acted on once, by one process, however often it arrives.

A signed request can arrive twice: replayed within its 300 s signature window by anyone who captured it,
or retried by Slack (with `X-Slack-Retry-Num`) when an answer was slow. Replicas share nothing but the
database, so what was seen is recorded there, in the bot's own table, with an insert that only one
delivery can win. The check is made by the work a request starts, never by its ack: a repeat is acked as
the first delivery was (so Slack does not retry it again), and nothing it would start runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.runs.background import CURRENT_JOB, REQUEST_GATE
from bot.slack.inbound import WINDOW, request_key
from bot.store.tables import seen_requests
from bot.store.transactions import insert_once
from kern.db.base import BaseDb

log = logging.getLogger("kern_bot")
KEEP = 2 * WINDOW  # a signed request is valid up to WINDOW either side of its timestamp; keep it that long
PRUNE_EVERY = 60.0  # seconds between deletes of expired rows, per process

_PRUNE = seen_requests.delete().where(seen_requests.c.seen_at < sa.bindparam("b_before"))


class SeenRequests:
    """The requests this bot (any replica of it on the same database) has already taken."""

    def __init__(self, db: BaseDb) -> None:
        self.db = db
        self._pruned_at = 0.0

    async def first(self, key: str) -> bool:
        """Record `key` (see `bot.slack.inbound.request_key`); True for its first delivery, False for a repeat.

        Expired rows are deleted in the same transaction now and then (at most every PRUNE_EVERY
        seconds per process): one indexed range delete, never a scan per request.
        """
        now = time.time()
        prune = now - self._pruned_at > PRUNE_EVERY
        if prune:
            self._pruned_at = now

        values = {"key": key, "seen_at": now}
        also = (lambda tx: tx.execute(self.db.prepare(_PRUNE), {"b_before": now - KEEP})) if prune else None
        return await insert_once(self.db, seen_requests, values, also=also)

    def gate(self, key: str) -> Callable[[], Awaitable[bool]]:
        """For one request: an async check, made once however often it is asked, that the request is
        acted on for the first time (see `bot.runs.background.REQUEST_GATE`)."""
        task: asyncio.Future[bool] | None = None

        async def first_time() -> bool:
            nonlocal task
            if task is None:
                task = asyncio.ensure_future(self.first(key))
            first = await asyncio.shield(task)
            if not first:
                log.info("repeated request ignored: nothing of it runs again")
            return first

        return first_time


def gate_requests(app: AsyncApp, seen: SeenRequests) -> None:
    """Give every request Bolt dispatches (HTTP, deferred clicks, Socket Mode envelopes) its gate, before
    any listener runs: the work its listeners spawn runs only for its first delivery."""

    async def gate(req: AsyncBoltRequest, next: Callable[[], Awaitable[Any]]) -> Any:
        raw = req.raw_body.encode() if req.raw_body else json.dumps(req.body, sort_keys=True).encode()
        key = req.context["request_key"] = request_key(raw)  # an acknowledged job's key (bot/runs/jobs.py)
        # A job's request is deduplicated by its row already: what it spawns runs without another check.
        REQUEST_GATE.set(None if CURRENT_JOB.get() is not None else seen.gate(key))
        return await next()

    app.use(gate)
