"""Background work of one bot process: tasks it owns, and click work deferred until a burst has passed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("kern_bot")
QUIET = 0.002  # seconds without a new click before deferred click work starts
MAX_DEFER = 0.25  # deferred click work starts after this long however busy the endpoint is


class Background:
    """Spawned tasks (kept referenced, failures logged) and deferred click work."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self._deferred: deque[tuple[float, Callable[[], Awaitable[Any]]]] = deque()
        self._quiet_at = 0.0
        self._drainer: asyncio.Task[Any] | None = None

    def spawn(self, coro: Awaitable[Any]) -> asyncio.Task[Any]:
        """Run `coro` in the background, keeping a reference and logging its failure."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    def defer(self, work: Callable[[], Awaitable[Any]]) -> None:
        """Start `work()` in the background once clicks stop arriving (or after MAX_DEFER).

        Slack waits for a click's ack, not for its effect: while a burst of clicks is coming in, their
        acks go first and the resolutions they trigger start in a pause between requests. Without this,
        every ack in a burst of 200 waits behind the work of the clicks before it.
        """
        now = asyncio.get_running_loop().time()
        self._deferred.append((now, work))
        self._quiet_at = now + QUIET
        if self._drainer is None or self._drainer.done():
            self._drainer = self.spawn(self._drain())

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._deferred:
            queued_at, work = self._deferred[0]
            now = loop.time()
            if now < self._quiet_at and now - queued_at < MAX_DEFER:
                await asyncio.sleep(min(self._quiet_at, queued_at + MAX_DEFER) - now)
                continue
            self._deferred.popleft()
            self.spawn(work())
            await asyncio.sleep(0)  # one start per loop pass, so requests arriving meanwhile are read first

    async def idle(self, within: float = 30.0) -> None:
        """Wait until no background work is left (tests and shutdown)."""
        deadline = time.monotonic() + within
        while self.tasks and time.monotonic() < deadline:  # the drainer is a task while work is deferred
            await asyncio.wait(list(self.tasks), timeout=max(0.0, deadline - time.monotonic()))

    async def cancel_all(self) -> None:
        """Stop what is still running (shutdown after `idle` gave up): runs are durable, so a cancelled
        follower loses nothing; another process takes the run over once its lease expires."""
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=5)
