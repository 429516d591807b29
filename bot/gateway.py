"""The Slack gateway: the Web API clients (one per workspace in OAuth mode: `bot.teams`) on one connection
pool, and the calls the bot makes with them.

`send` raises `SlackCallFailed` (with Slack's error, its kind, and any Retry-After) so the outbox can retry
what is owed, or stop; `call` is the best-effort form for what is not (status lines, ephemeral replies,
modals). Every call is bounded in time and made only when Slack's rate limits allow (bot/pacing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.pacing import RateLimits
from bot.slack_errors import OUTCOME_UNKNOWN, Kind, classify
from bot.teams import TeamClients, team

log = logging.getLogger("kern_bot")


CALL_TIMEOUT = 10.0  # seconds a Web API call may take before it is given up (and retried, if owed)
PATIENCE = 1.0  # seconds a call waits for its turn (a paced channel, a Retry-After) before being deferred


class SlackCallFailed(Exception):
    """A Web API call Slack refused, that got no answer in time, or that did not reach Slack.

    `kind` (bot/slack_errors.py) says what to do about it: try again later (`transient`, no sooner than
    `retry_after` seconds), stop (`permanent`), or wait for the workspace to be reinstalled (`auth`).
    `sent`: False if the call was not made at all (its turn had not come: a rate limit still running)."""

    def __init__(
        self,
        method: str,
        error: str,
        retry_after: float | None = None,
        *,
        status: int | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after
        self.kind: Kind = classify(error, status)
        self.sent = sent

    @property
    def outcome_unknown(self) -> bool:
        """Slack may have done the call although it did not say so (its answer was lost)."""
        return self.sent and self.error in OUTCOME_UNKNOWN


class SlackGateway:
    """Every Slack call of the bot goes through here, with the client of the workspace it is for
    (`bot.teams.team()`). `clients` (OAuth mode) makes them; else `client` serves every call.

    Each call is bounded by `timeout` seconds, and made only when Slack's rate limits allow it (`limits`,
    bot/pacing.py: a 429's Retry-After holds back that method, or for a post that channel, and nothing else).
    A workspace whose token Slack refuses is remembered in `unhealthy` (for /health) until a call for it
    succeeds again."""

    def __init__(
        self,
        client: AsyncWebClient,
        clients: TeamClients | None = None,
        *,
        timeout: float = CALL_TIMEOUT,
        limits: RateLimits | None = None,
    ) -> None:
        self.client = client
        self.clients = clients or TeamClients(client)
        self.timeout = timeout
        self.patience = PATIENCE
        self.limits = limits or RateLimits()
        self.unhealthy: dict[str, str] = {}  # workspace -> Slack's error for its token

    @contextlib.asynccontextmanager
    async def pooled(self) -> AsyncIterator[None]:
        """One connection pool for every Slack call made inside (slack_sdk opens a connection per call
        otherwise), with the calls' time bound (a pooled session has none of its own but aiohttp's 5 min)."""
        if self.client.session is not None:  # the caller brought its own session
            yield
            return
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        self.clients.use_session(session)
        try:
            yield
        finally:
            await session.close()
            self.clients.use_session(None)

    async def send(self, method: str, *, patience: float | None = None, **kwargs: Any) -> dict[str, Any]:
        """Call the Web API for the current workspace; raises `SlackCallFailed` if Slack refused, did not
        answer within `timeout`, could not be reached, or the workspace has not installed the app
        (`not_installed`, OAuth mode). A call whose turn is more than `patience` seconds away (default
        `self.patience`) is not made: it fails at once with `ratelimited`, `sent` False."""
        workspace = team()
        channel = kwargs.get("channel")
        wait = self.limits.reserve(workspace, method, channel)
        if wait > (self.patience if patience is None else patience):
            self.limits.refund(workspace, method, channel)
            raise SlackCallFailed(method, "ratelimited", wait, sent=False)
        if wait > 0:
            await asyncio.sleep(wait)
        client = await self.clients.client(workspace)
        if client is None:
            raise self._failed(workspace, SlackCallFailed(method, "not_installed", sent=False))
        try:
            async with asyncio.timeout(self.timeout):
                response = await getattr(client, method)(**kwargs)
        except SlackApiError as exc:
            data = exc.response.data if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else None
            error = data.get("error", "error") if isinstance(data, dict) else f"http_{status}"
            retry_after = _retry_after(exc.response.headers if exc.response is not None else None)
            if status == 429:
                self.limits.limited(workspace, method, channel, 1.0 if retry_after is None else retry_after)
            raise self._failed(workspace, SlackCallFailed(method, str(error), retry_after, status=status)) from exc
        except TimeoutError as exc:
            raise SlackCallFailed(method, "timeout") from exc
        except Exception as exc:  # a network error
            log.warning("Slack %s: %s: %s", method, type(exc).__name__, exc)
            raise SlackCallFailed(method, "network_error") from exc
        self.unhealthy.pop(workspace, None)
        return response.data if isinstance(response.data, dict) else {}

    def _failed(self, workspace: str, exc: SlackCallFailed) -> SlackCallFailed:
        if exc.kind == "auth":
            self.unhealthy[workspace] = exc.error
        return exc

    async def send_retrying(self, method: str, *, within: float, **kwargs: Any) -> dict[str, Any]:
        """`send`, tried again after transient failures (a 5xx, a 429, no answer) until `within` seconds
        have passed, waiting for turns and Retry-After meanwhile: for a call a person is waiting on (a run
        card), not for what the outbox owes (that is retried by the outbox, without waiting). Raises the
        last `SlackCallFailed`."""
        deadline = time.monotonic() + within
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            try:
                return await self.send(method, patience=max(left, 0.0), **kwargs)
            except SlackCallFailed as exc:
                delay = max(exc.retry_after or 0.0, min(8.0, 0.5 * 2.0**attempt))
                if exc.kind != "transient" or delay > deadline - time.monotonic():
                    raise
                log.warning("%s (retry in %.1fs)", exc, delay)
                attempt += 1
                if exc.sent:
                    await asyncio.sleep(delay)

    async def call(self, method: str, **kwargs: Any) -> dict[str, Any] | None:
        """Best effort: a failure is logged and returns None (what must reach Slack goes by the outbox)."""
        try:
            return await self.send(method, **kwargs)
        except SlackCallFailed as exc:
            log.warning("%s", exc)
            return None

    async def respond(self, response_url: str, text: str, *, replace_original: bool = False) -> bool:
        """Answer through an interaction's `response_url` (ephemeral); False if Slack refused it (it works
        5 times within 30 minutes) or could not be reached."""
        try:
            webhook = AsyncWebhookClient(response_url, session=self.client.session, timeout=10)
            sent = await webhook.send(text=text, response_type="ephemeral", replace_original=replace_original)
        except Exception:  # a network error
            log.exception("response_url failed")
            return False
        if sent.status_code != 200:
            log.warning("response_url refused: %s %s", sent.status_code, sent.body)
        return sent.status_code == 200

    async def delete_reply(self, response_url: str) -> bool:
        """Delete the ephemeral reply a `response_url` belongs to (a slash command's "Starting…"), so they do
        not pile up: `delete_original` deletes an ephemeral message, which chat.delete cannot
        (https://docs.slack.dev/messaging/modifying-messages). False if Slack refused or was unreachable."""
        try:
            webhook = AsyncWebhookClient(response_url, session=self.client.session, timeout=10)
            sent = await webhook.send(delete_original=True)
        except Exception:  # a network error
            log.exception("response_url failed")
            return False
        return sent.status_code == 200

    async def tell(
        self, channel: str, user: str, text: str, thread_ts: str | None = None, response_url: str | None = None
    ) -> None:
        """An ephemeral message only `user` sees: chat.postEphemeral, or else the interaction's
        `response_url` (which works where the bot is not in the channel)."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if await self.call("chat_postEphemeral", **kwargs) is None and response_url:
            await self.respond(response_url, text)


def _retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (None if absent or unreadable)."""
    header = (headers or {}).get("retry-after") or (headers or {}).get("Retry-After")
    value = header[0] if isinstance(header, list) else header
    if value is None:
        return None
    with contextlib.suppress(TypeError, ValueError):
        return max(float(value), 0.0)
    return None
