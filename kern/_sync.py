"""Sync wrappers over the async core.

A sync call (`Workflow.run`, `continue_run`, ...) made from a thread with no running event loop runs
its coroutine on that thread's own long-lived loop: no thread hop, and database pools survive between
calls. A sync call made from inside a running loop (a notebook, an async app calling sync code)
cannot block that loop's thread on itself, so it goes to one private loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E")

_local = threading.local()
_lock = threading.Lock()
_bg_loop: asyncio.AbstractEventLoop | None = None
_bg_thread: threading.Thread | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _bg_loop, _bg_thread
    with _lock:
        if _bg_loop is None or _bg_thread is None or not _bg_thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                loop.run_forever()

            thread = threading.Thread(target=serve, name="kern-loop", daemon=True)
            thread.start()
            ready.wait()
            _bg_loop, _bg_thread = loop, thread
        return _bg_loop


def _thread_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's own loop, or None if a loop is already running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_local, "loop", None)
        if loop is None or loop.is_closed():
            loop = _local.loop = asyncio.new_event_loop()
        return loop
    return None


def is_private_loop(loop: asyncio.AbstractEventLoop) -> bool:
    """True for the loop a sync call runs on in its own thread: it serves that one call and nothing else."""
    return getattr(_local, "loop", None) is loop


def _await(awaitable: Awaitable[T]) -> T:
    loop = _thread_loop()
    if loop is not None:
        return loop.run_until_complete(awaitable)
    if threading.current_thread() is _bg_thread:
        raise RuntimeError("A sync kern API was called from kern's own event loop; use the async form there.")

    async def wrap() -> T:
        return await awaitable

    return asyncio.run_coroutine_threadsafe(wrap(), _background_loop()).result()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from sync code."""
    return _await(coro)


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """Drive an async iterator from sync code, yielding its items."""
    while True:
        try:
            item = _await(agen.__anext__())
        except StopAsyncIteration:
            return
        yield item


_END = object()


class EventStream(Generic[E]):
    """An async iterator of events that may also be awaited first (awaiting gives the stream itself), so
    both `async for e in wf.acontinue_run(..., stream=True)` and `async for e in await ...` work."""

    def __init__(self, agen: AsyncGenerator[E, None]) -> None:
        self._agen = agen

    def __aiter__(self) -> EventStream[E]:
        return self

    def __anext__(self) -> Awaitable[E]:
        return self._agen.__anext__()

    def __await__(self) -> Generator[Any, None, EventStream[E]]:
        async def itself() -> EventStream[E]:
            return self

        return itself().__await__()

    async def aclose(self) -> None:
        await self._agen.aclose()


def event_stream(body: Callable[[Callable[[E], Awaitable[None]]], Awaitable[Any]]) -> EventStream[E]:
    """Run `body(emit)` as a task and iterate what it emits; re-raise what it raised at the end.

    The task is not tied to the consumer: if the consumer stops early, the run still finishes and
    persists (its pauses are saved before their events are emitted).
    """
    return EventStream(_event_stream(body))


async def _event_stream(body: Callable[[Callable[[E], Awaitable[None]]], Awaitable[Any]]) -> AsyncGenerator[E, None]:
    queue: asyncio.Queue[Any] = asyncio.Queue()  # events, then _END
    task = asyncio.ensure_future(body(queue.put))
    task.add_done_callback(lambda _t: queue.put_nowait(_END))
    while True:
        item = await queue.get()
        if item is _END:
            break
        yield item
    await task


# Set for the branches of a Parallel: their sync user code must run in threads to run concurrently.
CONCURRENT: contextvars.ContextVar[bool] = contextvars.ContextVar("kern_concurrent", default=False)


async def call_user(fn: Callable[..., Any], *args: Any) -> Any:
    """Call user code: coroutine functions are awaited, sync functions run in a worker thread.

    On a sync API call's private loop (which serves that call alone) sync functions run inline, in a
    copy of the context like a thread would: a thread hop per call was a third of a pause cycle. The
    drive's lease is then renewed from a thread (`kern.workflow.lease`), since the loop is blocked.
    Parallel branches still go to threads, so that they run concurrently.
    """
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__):
        return await fn(*args)
    if is_private_loop(asyncio.get_running_loop()) and not CONCURRENT.get():
        result = contextvars.copy_context().run(fn, *args)
    else:
        result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result
