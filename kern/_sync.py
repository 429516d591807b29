"""Sync wrappers over the async core.

Every sync entry point (`Workflow.run`, `continue_run`, ...) submits its coroutine to one private event
loop running in a daemon thread. Keeping a single long-lived loop means database engines and their
connection pools survive between calls (asyncpg connections are bound to the loop that made them),
and a sync call works even from code that already runs inside some other event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def _kern_loop() -> asyncio.AbstractEventLoop:
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="kern-loop", daemon=True)
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on kern's loop and wait for its result from this (non-loop) thread."""
    loop = _kern_loop()
    if threading.current_thread() is _thread:
        coro.close()
        raise RuntimeError(
            "A sync kern API was called from inside kern's own event loop; use the async form "
            "(arun / acontinue_run) there."
        )
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator on kern's loop, yielding its items to a sync caller."""
    loop = _kern_loop()
    while True:
        try:
            item = asyncio.run_coroutine_threadsafe(agen.__anext__(), loop).result()  # type: ignore[arg-type]
        except StopAsyncIteration:
            return
        yield item
