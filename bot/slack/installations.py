"""Slack installations in kern's database: Bolt's `AsyncInstallationStore`, written through the same
`BaseDb` transactions and migrations as the bot's other tables (SQLite and PostgreSQL alike), for HTTP
mode's OAuth install (bot/slack/oauth.py).

An installation is kept as the JSON of slack_sdk's `Installation` (what its own file store writes),
encrypted with KERN_TOKEN_KEYS (bot/token_keys.py), under (enterprise, team, installer): the installer's
row, and the workspace's latest under installer '' (what the bot's calls use). An org-wide install
(Enterprise Grid) is kept under team ''. The row holds the bot token: nothing here logs a row or a token.
A row written in clear text by an older version is still read, and is encrypted in place as it is read;
`encrypt_all` encrypts every such row and re-encrypts the others with the first key (rotation).

OAuth states are in bot/slack/oauth_state.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, NamedTuple

import sqlalchemy as sa
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from sqlalchemy.engine import Connection

from bot.store.tables import installations
from bot.store.transactions import StoreBase
from bot.token_keys import TokenCipher, TokenKeyError
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

    def __init__(self, db: BaseDb, cipher: TokenCipher, on_saved: Callable[[str], None] | None = None) -> None:
        super().__init__(db)
        self.cipher = cipher
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
        data = self.cipher.encrypt(json.dumps(installation.__dict__))
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
        where = sa.and_(c.enterprise_id == enterprise, c.team_id == team, c.user_id == (user_id or ""))
        data = await self._read(where)
        return Installation(**data) if data is not None else None

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
        data = await self._read(sa.and_(c.team_key == key, c.user_id == ""), latest=True)
        return data.get("bot_token") if data is not None else None

    async def _read(self, where: sa.ColumnElement[bool], latest: bool = False) -> dict[str, Any] | None:
        """The installation of the row `where` selects (the latest one with `latest`), decrypted; a row
        still in clear text is encrypted in place first. Raises TokenKeyError if no key decrypts it."""
        c = installations.c
        query = sa.select(c.enterprise_id, c.team_id, c.user_id, c.data).where(where)
        if latest:
            query = query.order_by(c.installed_at.desc()).limit(1)
        row = await self._tx(lambda conn: conn.execute(query).first(), write=False)
        if row is None:
            return None
        if self.cipher.is_clear(row.data):
            await self._tx(lambda conn: _replace(conn, row, self.cipher.encrypt(row.data)))
        return dict(json.loads(self.cipher.decrypt(row.data, _named(row))))

    async def encrypt_all(self) -> Encrypted:
        """Encrypt every installation still in clear text and re-encrypt the others with the first key
        (one transaction). Safe to repeat, and to run on several processes at once."""

        def body(conn: Connection) -> Encrypted:
            if conn.dialect.name == "sqlite":
                # The replaced clear text is zeroed in the file, not left in free space (the default of many
                # SQLite builds, not of all; left on for this connection: it only costs on deletes).
                conn.exec_driver_sql("PRAGMA secure_delete=ON")
            c = installations.c
            encrypted = rotated = 0
            unreadable: list[str] = []
            # One order for every process, so that two starting at once do not deadlock.
            keys = (c.enterprise_id, c.team_id, c.user_id)
            rows = conn.execute(sa.select(*keys, c.data).order_by(*keys)).all()
            for row in rows:
                if self.cipher.is_current(row.data):
                    continue
                try:
                    clear = self.cipher.decrypt(row.data, _named(row))
                except TokenKeyError:
                    unreadable.append(_named(row))
                    continue
                encrypted += self.cipher.is_clear(row.data)
                rotated += not self.cipher.is_clear(row.data)
                _replace(conn, row, self.cipher.encrypt(clear))
            return Encrypted(encrypted, rotated, unreadable, len(rows))

        return await self._tx(body)

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


class Encrypted(NamedTuple):
    """What `encrypt_all` did: rows encrypted (they were in clear text), re-encrypted with the first key,
    the rows no key decrypts (named by team and user), and the rows there are."""

    encrypted: int
    rotated: int
    unreadable: list[str]
    total: int


def _named(row: Any) -> str:
    """A stored installation, named for an error message (never its data)."""
    return f"the installation of team {row.team_id or row.enterprise_id or '-'} (user {row.user_id or '-'})"


def _replace(conn: Connection, row: Any, data: str) -> None:
    """Store `data` in place of the row's data, if the row still holds what was read."""
    c = installations.c
    where = sa.and_(
        c.enterprise_id == row.enterprise_id, c.team_id == row.team_id, c.user_id == row.user_id, c.data == row.data
    )
    conn.execute(installations.update().where(where).values(data=data))
