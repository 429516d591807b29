"""Conversation turns starting at once (bot/runs/turn_starts.py): at most `at_once` hold a place; a place is
given back at the model's first word, after `hold` seconds, or at the turn's end, whichever comes first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bot.runs.turn_starts import TurnStarts
from kern.run.agent import RunContentEvent, RunStartedEvent


async def test_a_third_turn_waits_until_a_starting_one_hears_the_model() -> None:
    starts = TurnStarts(at_once=2, hold=30)
    first, second = await starts.enter(), await starts.enter()
    third = asyncio.ensure_future(starts.enter())
    await asyncio.sleep(0.02)
    assert not third.done()  # both places are held

    async def run_events() -> AsyncIterator[object]:
        yield RunStartedEvent(run_id="r1")
        await asyncio.sleep(0.02)
        yield RunContentEvent(run_id="r1", content="Hello")
        await asyncio.sleep(10)  # the model goes on: the place is not needed for that
        yield RunContentEvent(run_id="r1", content=" there")

    seen = []
    async for event in starts.watched(run_events(), first):
        seen.append(event)
        if isinstance(event, RunStartedEvent):
            await asyncio.sleep(0.01)
            assert not third.done()  # started, the model not heard yet
        else:
            break
    await asyncio.wait_for(third, 1)  # the model spoke: its place went to the next turn
    second.release()
    second.release()  # given back once, however often asked
    third.result().release()
    back = [await asyncio.wait_for(starts.enter(), 1) for _ in range(2)]  # every place back...
    extra = asyncio.ensure_future(starts.enter())
    await asyncio.sleep(0.02)
    assert not extra.done()  # ...and no more
    extra.cancel()
    for place in back:
        place.release()


async def test_a_slow_first_step_gives_its_place_back_after_hold() -> None:
    starts = TurnStarts(at_once=1, hold=0.05)
    await starts.enter()  # a turn whose first step takes long, the model not heard
    waited = asyncio.get_running_loop().time()
    later = await asyncio.wait_for(starts.enter(), 1)
    assert asyncio.get_running_loop().time() - waited >= 0.04
    later.release()


async def test_a_turn_that_stops_gives_its_place_back() -> None:
    starts = TurnStarts(at_once=1, hold=30)
    place = await starts.enter()

    async def failing() -> AsyncIterator[object]:
        yield RunStartedEvent(run_id="r2")
        raise RuntimeError("the database went away")

    try:
        async for _event in starts.watched(failing(), place):
            pass
    except RuntimeError:
        pass
    await asyncio.wait_for(starts.enter(), 1)
