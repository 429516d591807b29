"""Which Slack workspace the bot is acting for, and the Web API client that speaks for it.

The team is a context variable, set once where work for a workspace begins and inherited from there by
every task spawned for it: by a Bolt middleware for each request (`bot.app`, OAuth mode), by the outbox
for each delivery and by the sweeper for each takeover (from the run's card). The gateway asks
`TeamClients` for the current team's client on each call. In token mode there is one workspace,
recorded as team '' on the bot's rows, and one client; in OAuth mode each workspace's client carries the
bot token of its installation (bot/installations.py), made on first use and forgotten when the workspace
reinstalls or uninstalls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

import aiohttp
from slack_sdk.web.async_client import AsyncWebClient

from bot.installations import team_key

current_team: ContextVar[str] = ContextVar("kern_bot_team", default="")


def team() -> str:
    """The workspace the current work is for ('' in token mode)."""
    return current_team.get()


@contextlib.contextmanager
def acting_for(team_id: str) -> Iterator[None]:
    """Within: work (and the tasks it spawns) is for workspace `team_id`."""
    token = current_team.set(team_id)
    try:
        yield
    finally:
        current_team.reset(token)


class Tokens(Protocol):
    async def bot_token(self, key: str) -> str | None: ...


class TeamClients:
    """The one client factory, configured by team: `base` alone in token mode; in OAuth mode (`tokens`
    given) a client per installed workspace, all on the base client's connection pool."""

    def __init__(self, base: AsyncWebClient, tokens: Tokens | None = None) -> None:
        self.base = base
        self.tokens = tokens
        self._clients: dict[str, AsyncWebClient] = {}

    @property
    def multi(self) -> bool:
        """True in OAuth mode: requests carry their workspace's team."""
        return self.tokens is not None

    def key(self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> str:
        """The team a request's rows are recorded under: '' in token mode (as every row made before OAuth
        mode), else the workspace (or the Enterprise Grid org, for an org-wide install)."""
        return team_key(enterprise_id, team_id, is_enterprise_install) if self.multi else ""

    async def client(self, team_id: str) -> AsyncWebClient | None:
        """The client for workspace `team_id`; None if that workspace has not installed the app."""
        if self.tokens is None:
            return self.base
        client = self._clients.get(team_id)
        if client is None:
            token = await self.tokens.bot_token(team_id) if team_id else None
            if token is None:
                return None
            client = AsyncWebClient(
                token=token,
                base_url=self.base.base_url,
                retry_handlers=self.base.retry_handlers,
                session=self.base.session,
                timeout=self.base.timeout,
            )
            self._clients[team_id] = client
        return client

    def forget(self, team_id: str) -> None:
        """Drop a workspace's client (its token changed or was revoked): the next call reads the token again."""
        self._clients.pop(team_id, None)

    def use_session(self, session: aiohttp.ClientSession | None) -> None:
        """Every client (the base one and each workspace's) sends on `session`."""
        self.base.session = session
        for client in self._clients.values():
            client.session = session
