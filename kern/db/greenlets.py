"""Sync code whose IO is awaited, run from a coroutine: SQLAlchemy's `greenlet_spawn`, with the greenlets kept.

A hot transaction's body is sync code (shared with SQLite, whose driver is sync) that awaits its IO through
`sqlalchemy.util.await_`: that switches to the greenlet driving the event loop with the awaitable, which
awaits it and switches back with the outcome. `greenlet_spawn` creates a greenlet per call, and creating one
and letting it end costs about 7 us of CPU (a body awaiting one finished coroutine: 8.6 us a call, against
1.3 us on a kept greenlet). `run_in_greenlet` keeps each thread's idle greenlets and reuses them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from greenlet import GreenletExit, getcurrent, greenlet

T = TypeVar("T")

# Idle greenlets kept per thread: as many as bodies ever ran at once there, up to this (about 9 KB each,
# measured with 200 bodies at once under 30 coroutine frames).
_KEEP = 64
_local = threading.local()


class _Failed:
    """A job's outcome when it raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


# What a worker switches to its driver with when its job has ended (the outcome is in `outcome`).
_ENDED = object()


class _Worker(greenlet):
    """A kept greenlet. SQLAlchemy's `await_` works in any greenlet that carries this marker."""

    __sqlalchemy_greenlet_provider__ = True
    outcome: Any = None  # the last job's result, or `_Failed`; taken (reset) by the driver


def _serve() -> None:
    """A worker's life: wait for a job, run it, leave its outcome for the driver, and wait again. An idle
    worker holds nothing of its last job (its callable may keep a store, which must stay collectable):
    jobs come as what `switch` returns, not as the greenlet's arguments, which it would keep for life."""
    me: _Worker = getcurrent()
    job: tuple[Callable[..., Any], tuple[Any, ...]] = me.parent.switch(_ENDED)
    while True:
        fn, args = job
        del job
        try:
            me.outcome = fn(*args)
        except GreenletExit:  # the worker itself is being ended (collected mid-body): end
            raise
        except BaseException as exc:
            me.outcome = _Failed(exc)
        del fn, args
        job = me.parent.switch(_ENDED)


async def run_in_greenlet(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a greenlet of this thread, its `await_` calls awaited here; its result or exception.

    As `sqlalchemy.util.greenlet_spawn`: `fn` runs in the caller's context (contextvars), an exception
    raised while awaiting is thrown into `fn` at its `await_`, and cancellation reaches it the same way."""
    idle: list[_Worker] = _local.__dict__.setdefault("idle", [])
    if idle:
        worker = idle.pop()
    else:
        worker = _Worker(_serve)
        worker.switch()  # to where it waits for a job
    driver = getcurrent()
    worker.parent = driver
    worker.gr_context = driver.gr_context
    step: Any = worker.switch((fn, args))
    while step is not _ENDED:  # an awaitable, from `await_`
        try:
            value = await step
        except BaseException:
            step = worker.throw(*sys.exc_info())
        else:
            step = worker.switch(value)
    outcome, worker.outcome = worker.outcome, None
    worker.gr_context = None  # nor the caller's context
    if len(idle) < _KEEP:
        idle.append(worker)
    if isinstance(outcome, _Failed):
        raise outcome.error
    result: T = outcome
    return result
