"""Lease renewal from a thread, for drives whose event loop may be blocked by user code.

A sync API call (`Workflow.run`, `continue_run`, ...) drives its run on the calling thread's private
loop (`kern._sync.is_private_loop`). That loop serves the one call and nothing else, so the engine runs
sync user code (executors, evaluators, selectors) inline there instead of paying a worker-thread hop
per call. While such code runs, the loop cannot fire a heartbeat timer; a drive on a private loop is
therefore kept alive by the `LeaseKeeper`: one daemon thread for the process that renews the lease of
every registered drive every `lease_seconds / 3`, on an event loop of its own.

Registering and unregistering a drive is a dict insert and delete under a lock: the keeper thread is
only woken for a drive whose renewal is due sooner than its next planned wake-up (one with a shorter
lease), so a drive that ends before its first renewal costs no thread switch. With no drive registered,
the keeper still wakes every renewal interval (of the last drive registered), rather than sleeping until
told: otherwise, once it had woken and found none, each drive of a run of short ones that began before it
next looked would wake it (measured in a worker with 1 s renewals: woken on about a tenth of all pause
cycles, 6% fewer cycles done).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable

from kern._sync import run_sync

log = logging.getLogger("kern.workflow")
# How often a renewal in flight checks whether its drive has ended (and then stops retrying).
_POLL = 0.05


class Lease:
    """One registered drive: what renews its lease, and when next."""

    __slots__ = ("due", "interval", "live", "renew")

    def __init__(self, renew: Callable[[], Awaitable[None]], interval: float) -> None:
        self.renew = renew
        self.interval = interval
        self.due = time.monotonic() + interval
        self.live = True


class LeaseKeeper:
    """Renews the leases of registered drives from its own thread (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._live: dict[int, Lease] = {}
        self._wake_at = math.inf  # when the keeper thread wakes next; -inf while it is renewing
        self._idle = math.inf  # how long the keeper sleeps with no drive registered: the last one's interval
        self._thread: threading.Thread | None = None

    def add(self, renew: Callable[[], Awaitable[None]], interval: float) -> Lease:
        """Renew by awaiting `renew()` every `interval` seconds until `remove`."""
        lease = Lease(renew, interval)
        with self._cond:
            self._live[id(lease)] = lease
            self._idle = interval
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="kern-lease", daemon=True)
                self._thread.start()
            elif lease.due < self._wake_at:
                self._cond.notify()
        return lease

    def remove(self, lease: Lease) -> None:
        """Stop renewing; a renewal in flight is cancelled within `_POLL` seconds."""
        lease.live = False
        with self._cond:
            self._live.pop(id(lease), None)

    def _serve(self) -> None:
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    due = [lease for lease in self._live.values() if lease.due <= now]
                    if due:
                        break
                    self._wake_at = min((lease.due for lease in self._live.values()), default=now + self._idle)
                    self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)
                for lease in due:
                    lease.due = now + lease.interval
                self._wake_at = -math.inf  # renewing: nobody needs to wake us, we look again after
            run_sync(self._renew_all(due))  # on this thread's own loop

    @staticmethod
    async def _renew_all(leases: list[Lease]) -> None:
        async def renew(lease: Lease) -> None:
            task = asyncio.ensure_future(lease.renew())
            while not task.done():
                await asyncio.wait({task}, timeout=_POLL)
                if not lease.live:  # the drive ended: a renewal still retrying must not extend its lease
                    task.cancel()
            if not task.cancelled() and task.exception() is not None:  # a store failure is already logged
                log.error("Lease renewal failed", exc_info=task.exception())

        await asyncio.gather(*(renew(lease) for lease in leases))


KEEPER = LeaseKeeper()
