"""How many conversation turns start at once in this process.

A turn's start is the costly part of it on the event loop: its run is created and saved, its session and
history read, the model's request built and its first answer parsed. Fifty mentions arriving together would
all do that in the same few loop iterations, and every click's ack waits behind them (measured with
bench/conversation.py: a click ack p99 of 0.5-1 s while 50 conversations started at once). So at most
`at_once` turns are starting at a time; a turn gives its place back as soon as the model speaks (its first
text or tool call: from then on it mostly waits on the model), after `hold` seconds (a slow first step does
not hold others back), or when it stops, whichever comes first. A turn waiting for its place has not started
its run: nothing of it is stored yet, as for a turn not yet begun.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from kern.run.agent import RunContentEvent, ToolCallStartedEvent

TURNS_STARTING = 4  # turns starting at once in one process
START_HOLD = 0.25  # seconds a starting turn holds its place at most
MODEL_SPOKE = (RunContentEvent, ToolCallStartedEvent)  # the turn now waits on the model, not on this process


class Starting:
    """One turn's place among those starting; `release` gives it back (once)."""

    def __init__(self, places: asyncio.Semaphore, hold: float) -> None:
        self._places = places
        self._released = False
        self._timer = asyncio.get_running_loop().call_later(hold, self.release)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._timer.cancel()
            self._places.release()


class TurnStarts:
    """The places of the turns starting in this process (`at_once`), each held at most `hold` seconds."""

    def __init__(self, at_once: int = TURNS_STARTING, hold: float = START_HOLD) -> None:
        self._places = asyncio.Semaphore(at_once)
        self.hold = hold

    async def enter(self) -> Starting:
        """Wait for a place; the caller gives it back (`Starting.release`) when the turn stops, at the latest."""
        await self._places.acquire()
        return Starting(self._places, self.hold)

    @staticmethod
    async def watched(events: AsyncIterator[object], starting: Starting) -> AsyncIterator[object]:
        """`events`, as they come, giving the place back at the first word of the model or at their end."""
        try:
            async for event in events:
                if isinstance(event, MODEL_SPOKE):
                    starting.release()
                yield event
        finally:
            starting.release()
