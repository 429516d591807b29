"""Pacing Slack calls: a token bucket (`Budget`), and what Slack's rate limits allow now (`RateLimits`).

Slack limits calls per method per workspace, and chat.postMessage also to about one message per second per
channel, bursts tolerated (https://docs.slack.dev/apis/web-api/rate-limits). A 429 says how long to wait
(Retry-After) for that method (for a post: that channel): `RateLimits` remembers it, so no call of that
method (in that channel) is made before then, and a channel that was limited is then paced at `post_rate`
until it has been calm for `calm` seconds. Calls of other methods, and posts to other channels, go on: one
limited call holds back nothing unrelated. Nothing here sleeps: callers are told how long to wait and
decide (the outbox defers the row; a person's own start waits its turn).
"""

from __future__ import annotations

import time
from collections.abc import Callable

POST = "chat_postMessage"


class Budget:
    """Turns at `rate` a second (a token bucket holding up to one second's worth): `reserve()` takes the next
    turn and says how long to wait for it; `refund()` gives back a turn not used."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, *, full: bool = True) -> None:
        if rate <= 0:
            raise ValueError(f"a budget's rate must be positive, got {rate}")
        self.rate = rate
        self._clock = clock
        self._tokens = rate if full else 0.0  # not `full`: the turns come from now on
        self._at = clock()

    def reserve(self, at: float | None = None) -> float:
        """Take the next turn (no sooner than `at`, on the budget's clock); returns the seconds until it
        comes (0: now)."""
        now = self._clock()
        start = max(now, at or now)
        if start > self._at:
            self._tokens = min(self.rate, self._tokens + (start - self._at) * self.rate)
            self._at = start
        self._tokens -= 1
        return max(0.0, self._at - now + (-self._tokens / self.rate if self._tokens < 0 else 0.0))

    def refund(self) -> None:
        """Give back a turn that was reserved and not used."""
        self._tokens += 1


Key = tuple[str, ...]


class RateLimits:
    """Per workspace: until when each method (each channel, for posts) is rate limited, and the channels
    being paced since Slack limited them."""

    def __init__(self, post_rate: float = 1.0, calm: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.post_rate = post_rate
        self.calm = calm
        self._clock = clock
        self._blocked: dict[Key, float] = {}  # key -> monotonic time it may be called again
        self._paced: dict[Key, tuple[Budget, float]] = {}  # post key -> (its budget, paced until)

    @staticmethod
    def key(team: str, method: str, channel: str | None) -> Key:
        return (team, method, channel or "") if method == POST else (team, method)

    def reserve(self, team: str, method: str, channel: str | None) -> float:
        """Seconds before this call may be made (0: now). A paced channel's turn is taken: `refund` it if
        the call is not made after all."""
        key = self.key(team, method, channel)
        now = self._clock()
        until = self._blocked.get(key)
        if until is not None and until <= now:
            del self._blocked[key]
            until = None
        paced = self._paced.get(key)
        if paced is not None and paced[1] < now:  # calm again: bursts are back
            del self._paced[key]
            paced = None
        if paced is None:
            return 0.0 if until is None else until - now
        return paced[0].reserve(at=until)  # its turn, once the Retry-After is over

    def refund(self, team: str, method: str, channel: str | None) -> None:
        paced = self._paced.get(self.key(team, method, channel))
        if paced is not None:
            paced[0].refund()

    def limited(self, team: str, method: str, channel: str | None, retry_after: float) -> None:
        """Slack answered 429 with `retry_after`: no such call before then; a channel is paced from then on."""
        key = self.key(team, method, channel)
        now = self._clock()
        self._blocked[key] = max(self._blocked.get(key, 0.0), now + retry_after)
        if method == POST:
            # Empty at first: Slack has just said the burst is spent.
            budget = self._paced[key][0] if key in self._paced else Budget(self.post_rate, self._clock, full=False)
            self._paced[key] = (budget, now + retry_after + self.calm)
        if len(self._blocked) > 10_000:  # forget what has expired (many workspaces and channels)
            self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._paced = {k: v for k, v in self._paced.items() if v[1] > now}
