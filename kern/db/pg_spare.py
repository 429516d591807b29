"""One PostgreSQL connection per event loop, kept out of the pool for the hot transactions.

Checking a connection out of SQLAlchemy's pool and returning it costs about 8% of the client's CPU in a
pause cycle (a sync `continue_run` is two hot transactions). So each loop keeps one spare connection of
its own: a hot transaction takes it when it is idle, and the pool serves only transactions that run
while it is busy (the bot's bursts). The spare is a pool connection detached from the pool the first time
a pooled hot transaction ends with no spare on its loop, so a store has at most one connection per loop
beyond its pool's `pool_size + max_overflow`.

Lifetime: the spare is closed by the store's `close()` on its loop, and terminated (no IO: the socket is
dropped, the server ends the backend) when the store is garbage-collected or the interpreter exits. A
spare whose loop was closed is only dropped.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import asyncpg

_BUSY = object()  # the loop's spare is in use by a transaction


class SpareConnections:
    """Each event loop's spare connection: idle (the connection), busy, or none yet (no entry)."""

    def __init__(self, owner: object) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        weakref.finalize(owner, _terminate_all, self._by_loop)

    def take(self, loop: asyncio.AbstractEventLoop) -> asyncpg.Connection | None:
        """The loop's idle spare, now busy; None if it has none or it is busy (then use the pool)."""
        conn = self._by_loop.get(loop)
        if conn is None or conn is _BUSY:
            return None
        if conn.is_closed():  # the server or the network ended it while idle
            del self._by_loop[loop]
            return None
        self._by_loop[loop] = _BUSY
        return conn

    def wanted(self, loop: asyncio.AbstractEventLoop) -> bool:
        """True if the loop has no spare: a pooled connection ending cleanly should become it."""
        return loop not in self._by_loop

    def put(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        """`conn` is the loop's idle spare (after a clean transaction: nothing begun on it)."""
        self._by_loop[loop] = conn

    def lose(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        """The busy spare broke: terminate it; the next transaction uses the pool (and may keep one)."""
        if self._by_loop.get(loop) is _BUSY:
            del self._by_loop[loop]
        conn.terminate()

    async def close(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close the loop's idle spare. A busy one goes back when its transaction ends, and is the loop's
        spare again (a store stays usable after `close()`), until the store is collected."""
        conn = self._by_loop.pop(loop, None)
        if conn is None or conn is _BUSY:
            return
        try:
            await conn.close(timeout=5)
        except Exception:  # unreachable or broken: drop it
            conn.terminate()


def _terminate_all(by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]) -> None:
    for loop, conn in list(by_loop.items()):
        if conn is not _BUSY and not loop.is_closed() and not conn.is_closed():
            conn.terminate()
    by_loop.clear()
