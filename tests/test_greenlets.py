"""kern.db.greenlets: sync bodies awaiting their IO through SQLAlchemy's `await_`, on kept greenlets.

What PostgresDb's hot transactions rely on, as `greenlet_spawn` gave it: the body's result or exception, an
error of what it awaited thrown into it where it awaited, cancellation reaching it, the caller's contextvars,
bodies suspended at once on one loop kept apart. And what the kept greenlets add: one is reused, also after a body
that failed, was cancelled or was abandoned half-way."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from greenlet import getcurrent
from sqlalchemy.util import await_

from kern.db.greenlets import run_in_greenlet

actor: contextvars.ContextVar[str] = contextvars.ContextVar("actor", default="nobody")


async def value_later(value: Any, delay: float = 0.0) -> Any:
    await asyncio.sleep(delay)
    return value


async def failing_later(error: Exception) -> None:
    await asyncio.sleep(0)
    raise error


def waiting_long(cleaned: list[str]) -> Callable[[], None]:
    """A body that waits 10 s in an `await_` and notes, in `cleaned`, that its cleanup ran."""

    def body() -> None:
        try:
            await_(asyncio.sleep(10))
        finally:
            cleaned.append("cleaned")

    return body


async def test_a_body_awaits_through_await_and_returns_its_result() -> None:
    def body(a: int, b: int) -> int:
        return await_(value_later(a)) + await_(value_later(b))

    assert await run_in_greenlet(body, 2, 3) == 5
    assert await run_in_greenlet(lambda: None) is None  # a body that awaits nothing, and returns nothing


async def test_consecutive_bodies_run_on_one_kept_greenlet() -> None:
    def where() -> Any:
        await_(value_later(None))
        return getcurrent()

    first = await run_in_greenlet(where)
    second = await run_in_greenlet(where)
    assert first is second
    assert first is not getcurrent()  # not on the caller's own


async def test_an_exception_of_the_body_reaches_the_caller_and_the_greenlet_serves_again() -> None:
    def broken() -> None:
        await_(value_later(None))
        raise KeyError("no such row")

    with pytest.raises(KeyError, match="no such row") as raised:
        await run_in_greenlet(broken)
    assert any(frame.name == "broken" for frame in raised.traceback)  # the body's frame is in the traceback
    assert await run_in_greenlet(lambda: await_(value_later("again"))) == "again"


async def test_an_error_of_what_the_body_awaited_is_raised_in_the_body_where_it_awaited() -> None:
    def handles_it() -> str:
        try:
            await_(failing_later(ConnectionResetError("server gone")))
        except ConnectionResetError as exc:
            return f"handled: {exc}"
        return "not raised"

    assert await run_in_greenlet(handles_it) == "handled: server gone"

    def lets_it_pass() -> None:
        await_(failing_later(TimeoutError("too slow")))

    with pytest.raises(TimeoutError, match="too slow"):
        await run_in_greenlet(lets_it_pass)


async def test_cancelling_the_caller_cancels_the_body_where_it_awaits_and_runs_its_cleanup() -> None:
    cleaned: list[str] = []
    task = asyncio.create_task(run_in_greenlet(waiting_long(cleaned)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cleaned"]
    assert await run_in_greenlet(lambda: await_(value_later(1))) == 1  # the greenlet went back, usable


async def test_the_body_sees_the_callers_contextvars_each_time() -> None:
    def who() -> str:
        await_(value_later(None))
        return actor.get()

    async def as_(name: str) -> str:
        actor.set(name)
        return await run_in_greenlet(who)

    # Separate tasks (separate contexts), one after the other on the same kept greenlet, then at once.
    assert await asyncio.create_task(as_("alice")) == "alice"
    assert await asyncio.create_task(as_("bob")) == "bob"
    assert await asyncio.gather(as_("carol"), as_("dave")) == ["carol", "dave"]
    assert actor.get() == "nobody"  # the caller's own context is untouched


async def test_bodies_suspended_at_once_interleave_on_greenlets_of_their_own() -> None:
    order: list[str] = []

    def body(name: str, delay: float) -> tuple[str, Any]:
        order.append(f"{name} starts")
        await_(value_later(None, delay))
        order.append(f"{name} ends")
        return name, getcurrent()

    (a, ga), (b, gb) = await asyncio.gather(run_in_greenlet(body, "a", 0.05), run_in_greenlet(body, "b", 0.0))
    assert (a, b) == ("a", "b")
    assert ga is not gb
    assert order == ["a starts", "b starts", "b ends", "a ends"]  # b finished while a still waited


async def test_a_body_abandoned_half_way_runs_its_cleanup_and_its_greenlet_serves_again() -> None:
    cleaned: list[str] = []
    call = run_in_greenlet(waiting_long(cleaned))
    step = call.send(None)  # runs the body up to its await (the sleep's future is yielded)
    assert step is not None
    call.close()  # the caller is abandoned: GeneratorExit reaches the body at its await_
    assert cleaned == ["cleaned"]
    assert await run_in_greenlet(lambda: await_(value_later("next"))) == "next"


async def test_a_kept_greenlet_holds_nothing_of_its_last_body() -> None:
    """A store whose transaction ran on a kept greenlet is still collected when its owner forgets it (a
    greenlet's first job, passed as its own arguments, once kept a never-closed store's spare connection).
    On a thread of its own: its first body is a new greenlet's first job."""

    class Store:
        def transaction(self, value: int) -> int:
            return int(await_(value_later(value)))

    async def forget_two_stores() -> list[bool]:
        collected = []
        for _ in range(2):  # a new greenlet's first job, then a kept one's
            store = Store()
            gone = weakref.ref(store)
            assert await run_in_greenlet(store.transaction, 7) == 7
            del store
            gc.collect()
            collected.append(gone() is None)
        return collected

    assert await asyncio.to_thread(asyncio.run, forget_two_stores()) == [True, True]
