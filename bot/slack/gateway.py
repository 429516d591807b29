"""The Slack gateway: the Web API clients (one per workspace in OAuth mode: `bot.slack.workspaces`) on one connection
pool, and the calls the bot makes with them.

`send` raises `SlackCallFailed` (with Slack's error and any Retry-After) so the outbox can retry what
is owed; `call` is the best-effort form for what is not (status lines, ephemeral replies, modals).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.workspaces import TeamClients, team

log = logging.getLogger("kern_bot")


class SlackCallFailed(Exception):
    """A Web API call Slack refused or that did not reach Slack."""

    def __init__(self, method: str, error: str, retry_after: float | None = None) -> None:
        super().__init__(f"Slack {method} failed: {error}")
        self.method = method
        self.error = error
        self.retry_after = retry_after


class SlackGateway:
    """Every Slack call of the bot goes through here, with the client of the workspace it is for
    (`bot.slack.workspaces.team()`). `clients` (OAuth mode) makes them; else `client` serves every call."""

    def __init__(self, client: AsyncWebClient, clients: TeamClients | None = None) -> None:
        self.client = client
        self.clients = clients or TeamClients(client)

    @contextlib.asynccontextmanager
    async def pooled(self) -> AsyncIterator[None]:
        """One connection pool for every Slack call made inside (slack_sdk opens a connection per call
        otherwise)."""
        if self.client.session is not None:  # the caller brought its own session
            yield
            return
        session = aiohttp.ClientSession()
        self.clients.use_session(session)
        try:
            yield
        finally:
            await session.close()
            self.clients.use_session(None)

    async def send(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call the Web API for the current workspace; raises `SlackCallFailed` if Slack refused or could not
        be reached, or the workspace has not installed the app (`not_installed`, OAuth mode)."""
        client = await self.clients.client(team())
        if client is None:
            raise SlackCallFailed(method, "not_installed")
        try:
            response = await getattr(client, method)(**kwargs)
        except SlackApiError as exc:
            data = exc.response.data if exc.response is not None else None
            error = data.get("error", "error") if isinstance(data, dict) else str(exc)
            retry_after = None
            if exc.response is not None:
                header = (exc.response.headers or {}).get("retry-after") or (exc.response.headers or {}).get(
                    "Retry-After"
                )
                value = header[0] if isinstance(header, list) else header
                if value is not None:
                    with contextlib.suppress(TypeError, ValueError):
                        retry_after = float(value)
            raise SlackCallFailed(method, str(error), retry_after) from exc
        except Exception as exc:  # a network error
            raise SlackCallFailed(method, f"{type(exc).__name__}: {exc}") from exc
        return response.data if isinstance(response.data, dict) else {}

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
