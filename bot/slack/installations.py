"""Slack installations and OAuth states in kern's database: Bolt's `AsyncInstallationStore` and
`AsyncOAuthStateStore`, written through the same `BaseDb` transactions and migrations as the bot's other
tables (SQLite and PostgreSQL alike), for HTTP mode's OAuth install (bot/slack/oauth.py).

An installation is kept as the JSON of slack_sdk's `Installation` (what its own file store writes), under
(enterprise, team, installer): the installer's row, and the workspace's latest under installer '' (what
the bot's calls use). An org-wide install (Enterprise Grid) is kept under team ''. The row holds the bot
token: nothing here logs a row or a token.

A state is issued for one browser's install and consumed once: a single DELETE that also checks expiry,
so two callbacks with the same state cannot both succeed.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from sqlalchemy.engine import Connection

from bot.store.records import StoreBase
from bot.store.tables import installations, oauth_states
from kern.db.base import BaseDb

log = logging.getLogger("kern_bot")


def team_key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> str:
    """Which workspace a request or installation belongs to, as the bot's rows record it: the team, or the
    Enterprise Grid org for an org-wide install."""
    if is_enterprise_install and enterprise_id:
        return enterprise_id
    return team_id or ""


class DbInstallationStore(StoreBase, AsyncInstallationStore):
    """Bolt's installation store on kern's database. `on_saved(team)` runs after each save (the bot
    forgets a cached client for that team, so a reinstall's new token is used at once)."""

    def __init__(self, db: BaseDb, on_saved: Callable[[str], None] | None = None) -> None:
        super().__init__(db)
        self.on_saved = on_saved

    @property
    def logger(self) -> logging.Logger:
        return log

    @staticmethod
    def _keys(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> tuple[str, str]:
        return enterprise_id or "", "" if is_enterprise_install else team_id or ""

    async def async_save(self, installation: Installation) -> None:
        """Keep `installation` as its installer's and as the workspace's latest (one transaction)."""
        enterprise, team = self._keys(
            installation.enterprise_id, installation.team_id, installation.is_enterprise_install
        )
        data = json.dumps(installation.__dict__)
        key = team_key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        c = installations.c

        def body(conn: Connection) -> None:
            for user in {"", installation.user_id or ""}:
                where = sa.and_(c.enterprise_id == enterprise, c.team_id == team, c.user_id == user)
                conn.execute(installations.delete().where(where))
                conn.execute(
                    installations.insert().values(
                        enterprise_id=enterprise,
                        team_id=team,
                        user_id=user,
                        team_key=key,
                        is_enterprise_install=bool(installation.is_enterprise_install),
                        data=data,
                        installed_at=installation.installed_at,
                    )
                )

        await self._tx(body)
        log.info("installed in team %s (enterprise %s)", key or "-", enterprise or "-")
        if self.on_saved is not None:
            self.on_saved(key)

    async def async_save_bot(self, bot: Bot) -> None:
        """Keep a bot-only installation (Bolt calls `async_save` in the OAuth flow; this is the interface's
        other entry)."""
        await self.async_save(Installation(**{**bot.__dict__, "user_id": ""}))

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        """The installer's installation (`user_id`), else the workspace's latest; None if not installed."""
        enterprise, team = self._keys(enterprise_id, team_id, is_enterprise_install)
        c = installations.c
        query = sa.select(c.data).where(c.enterprise_id == enterprise, c.team_id == team, c.user_id == (user_id or ""))
        data = await self._tx(lambda conn: conn.execute(query).scalar(), write=False)
        return Installation(**json.loads(data)) if data is not None else None

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
    ) -> Bot | None:
        """The workspace's bot (its latest installation's token); None if not installed."""
        installation = await self.async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return installation.to_bot() if installation is not None and installation.bot_token else None

    async def bot_token(self, key: str) -> str | None:
        """The bot token of the workspace (or org) `key` (see `team_key`); None if not installed."""
        c = installations.c
        query = sa.select(c.data).where(c.team_key == key, c.user_id == "").order_by(c.installed_at.desc()).limit(1)
        data = await self._tx(lambda conn: conn.execute(query).scalar(), write=False)
        return json.loads(data).get("bot_token") if data is not None else None

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """Forget the workspace's bot token (an uninstall or a revoked token)."""
        await self.async_delete_installation(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        """Forget the installer's installation (`user_id`), or every installation of the workspace."""
        enterprise, team = enterprise_id or "", team_id or ""
        c = installations.c
        where = sa.and_(c.enterprise_id == enterprise, c.team_id == team)
        if user_id is not None:
            where = sa.and_(where, c.user_id == user_id)
        await self._tx(lambda conn: conn.execute(installations.delete().where(where)))
        if self.on_saved is not None:
            self.on_saved(team_key(enterprise_id, team_id, not team_id))


class DbOAuthStateStore(StoreBase, AsyncOAuthStateStore):
    """Bolt's OAuth state store on kern's database: a state lives `expiration_seconds` and is consumed once."""

    def __init__(self, db: BaseDb, expiration_seconds: float = 600.0) -> None:
        super().__init__(db)
        self.expiration_seconds = expiration_seconds

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        """A new state for one install, valid for `expiration_seconds` (expired ones are dropped here)."""
        state = secrets.token_urlsafe(24)
        now = time.time()

        def body(conn: Connection) -> None:
            conn.execute(oauth_states.delete().where(oauth_states.c.expire_at <= now))
            conn.execute(oauth_states.insert().values(state=state, expire_at=now + self.expiration_seconds))

        await self._tx(body)
        return state

    async def async_consume(self, state: str) -> bool:
        """True once for a state this store issued and that has not expired; False for any other."""
        c = oauth_states.c
        delete = oauth_states.delete().where(c.state == (state or ""), c.expire_at > time.time())
        deleted: int = await self._tx(lambda conn: conn.execute(delete).rowcount)
        return deleted == 1
