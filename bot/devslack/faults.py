"""The stand-in misbehaving on purpose, as Slack can: a 429 with Retry-After for a method (or a channel),
an error answer (a permanent one such as `is_archived`, or a passing `internal_error`), a call that never
answers, a call done whose answer is lost, and Slack's own pace for posts (about one message per second
per channel, short bursts allowed: https://docs.slack.dev/apis/web-api/rate-limits).

A mixin of `DevSlack` (bot/devslack/slack.py): its `_api` asks `take_fault` before answering a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

Answer = Literal["ratelimited", "error", "hang", "lose"]


@dataclass
class Fault:
    """How the stand-in answers the next `times` calls of `method` (in `channel`, if given; `times` 0:
    every call until removed from `faults`), once the first `after` such calls have gone through:

    - "ratelimited": HTTP 429, `Retry-After: retry_after`, nothing done;
    - "error": `{"ok": false, "error": error}` with HTTP `status` (200, as Slack answers its errors; 500 or
      503 when Slack itself fails), nothing done;
    - "hang": no answer (until the stand-in closes, or 60 s), nothing done;
    - "lose": the call is done, and its answer never comes back (as "hang")."""

    method: str
    answer: Answer
    error: str = ""
    retry_after: float = 0.0
    channel: str | None = None
    times: int = 1
    after: int = 0
    status: int = 200
    hits: int = 0


class Faults:
    """Uses DevSlack's `calls`, `_released`, `_answer`, and its shorthands `rate_limit_next` (method -> how
    many 429s), `fail_next` (method -> an error, or errors in turn) and `swallow_next` (method -> how many
    calls to hang on)."""

    calls: list[tuple[str, dict[str, Any], dict[str, Any]]]
    _released: asyncio.Event
    _answer: Any  # DevSlack's: records the call and answers it
    rate_limit_next: dict[str, int]
    fail_next: dict[str, str | list[str]]
    swallow_next: dict[str, int]

    def init_faults(self) -> None:
        self.faults: list[Fault] = []
        # chat.postMessage's pace per channel, as (messages per second, burst); None: no limit.
        self.post_limit: tuple[float, int] | None = None
        self.limited: list[tuple[str, str | None, float]] = []  # 429s answered: (method, channel, Retry-After)
        self.lost: list[tuple[str, dict[str, Any]]] = []  # calls done whose answer was lost
        self.swallowed: list[tuple[str, dict[str, Any]]] = []  # calls never answered (and not done)
        self._post_buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)

    def fault(
        self,
        method: str,
        answer: Answer,
        *,
        error: str = "",
        retry_after: float = 0.0,
        channel: str | None = None,
        times: int = 1,
        after: int = 0,
        status: int = 200,
    ) -> Fault:
        """Misbehave on the next `times` calls of `method` (see `Fault`); returns the fault (its `hits`)."""
        fault = Fault(method, answer, error, retry_after, channel, times, after, status)
        self.faults.append(fault)
        return fault

    def take_fault(self, method: str, args: dict[str, Any]) -> Fault | None:
        """The fault that answers this call, if any (counted as hit; a spent one is removed), or Slack's own
        429 for a post over its channel's pace."""
        shorthand = self._shorthand(method)
        if shorthand is not None:
            return shorthand
        channel = args.get("channel")
        for fault in self.faults:
            if fault.method == method and fault.channel in (None, channel):
                if fault.after > 0:  # this one goes through
                    fault.after -= 1
                    continue
                fault.hits += 1
                if fault.times > 0 and fault.hits >= fault.times:
                    self.faults.remove(fault)
                return fault
        if method == "chat.postMessage" and self.post_limit is not None and channel:
            wait = self._post_turn(channel)
            if wait > 0:
                return Fault(method, "ratelimited", retry_after=math.ceil(wait), channel=channel)
        return None

    def _shorthand(self, method: str) -> Fault | None:
        """The fault a shorthand asks for this call, if any (and taken from it)."""
        if self.rate_limit_next.get(method, 0) > 0:
            self.rate_limit_next[method] -= 1
            return Fault(method, "ratelimited")
        if method in self.fail_next:
            errors = self.fail_next[method]
            if isinstance(errors, str) or len(errors) <= 1:
                self.fail_next.pop(method)
            return Fault(method, "error", errors if isinstance(errors, str) else errors.pop(0))
        if self.swallow_next.get(method, 0) > 0:
            self.swallow_next[method] -= 1
            return Fault(method, "hang")
        return None

    def _post_turn(self, channel: str) -> float:
        """Take a post's turn in `channel` (a token bucket of `post_limit`); seconds until one comes if none
        is left (the post is refused then, and takes no turn)."""
        assert self.post_limit is not None
        rate, burst = self.post_limit
        now = time.monotonic()
        tokens, at = self._post_buckets.get(channel, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        if tokens < 1:
            self._post_buckets[channel] = (tokens, now)
            return (1 - tokens) / rate
        self._post_buckets[channel] = (tokens - 1, now)
        return 0.0

    async def fault_answer(self, fault: Fault, method: str, args: dict[str, Any]) -> web.Response:
        """The answer of a fault that does nothing ("ratelimited", "error", "hang")."""
        if fault.answer == "ratelimited":
            body = {"ok": False, "error": "ratelimited"}
            self.calls.append((method, args, body))
            self.limited.append((method, args.get("channel"), fault.retry_after))
            return web.json_response(body, status=429, headers={"Retry-After": f"{fault.retry_after:g}"})
        if fault.answer == "error":
            answer = self._answer(method, args, {"ok": False, "error": fault.error})
            answer.set_status(fault.status)
            return answer
        self.swallowed.append((method, args))
        await self.never_answer()
        return web.json_response({"ok": False, "error": "request_timeout"}, status=504)

    async def lose(self, method: str, args: dict[str, Any], answer: web.Response) -> web.Response:
        """A call done, whose answer is lost: it never comes back (the caller gives up waiting)."""
        self.lost.append((method, args))
        await self.never_answer()
        return answer

    async def never_answer(self) -> None:
        """Wait until the stand-in closes (at most 60 s): the caller sees no answer."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), 60)
