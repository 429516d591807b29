"""One PostgreSQL connection per sync-API thread, kept out of the pool for the hot transactions.

Checking a connection out of SQLAlchemy's pool and returning it costs about 8% of the client's CPU in a
sync pause cycle (a `continue_run` is two hot transactions). So the long-lived loop a thread's sync kern
calls run on (`kern._sync`) keeps one spare connection of its own per store: its hot transactions take it
(one at a time: that loop serves one call), and the pool serves everything else. The spare is a pool
connection detached from the pool the first time a hot transaction there ends with no spare, so a store
has at most one connection per such thread beyond its pool's `pool_size + max_overflow`.

Only those loops keep one. An async caller's loop (the bot's, or one of many `asyncio.run`s) uses the
pool alone: its transactions overlap, and nothing closes a connection when such a loop ends without the
store's `close()`, so a spare there would outlive its loop until the garbage collector found it.

Lifetime: the spare is closed by the store's `close()` called on that thread, and terminated (no IO: the
socket is dropped, the server ends the backend) when the store is garbage-collected or the interpreter
exits.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import asyncpg

from kern._sync import is_private_loop

_BUSY = object()  # the loop's spare is in use by a transaction


class SpareConnections:
    """The spare connection of each sync-API loop: idle (the connection), busy, or none yet (no entry)."""

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
        """True if the loop keeps a spare and has none: a pooled connection ending cleanly should become it."""
        return loop not in self._by_loop and is_private_loop(loop)

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
