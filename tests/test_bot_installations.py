"""The installation and OAuth state stores on kern's database (bot/slack/installations.py), SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.oauth.installation_store import Installation

from bot.slack.installations import DbInstallationStore, DbOAuthStateStore, team_key
from kern.db.base import BaseDb
from tests.conftest import unique


def _installation(team: str, token: str, user: str = "U1", **kwargs: object) -> Installation:
    return Installation(
        app_id="A1", team_id=team, team_name=team, bot_token=token, bot_id="B" + team, bot_user_id="UB" + team,
        bot_scopes="chat:write,commands", user_id=user, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_installations_are_kept_per_team_and_a_reinstall_replaces_the_token(db: BaseDb) -> None:
    saved: list[str] = []
    store = DbInstallationStore(db, on_saved=saved.append)
    a, b = unique("TA"), unique("TB")
    try:
        assert await store.async_find_bot(enterprise_id=None, team_id=a) is None
        await store.async_save(_installation(a, "xoxb-a-1"))
        await store.async_save(_installation(b, "xoxb-b-1", user="U9"))
        bot_a = await store.async_find_bot(enterprise_id=None, team_id=a)
        assert bot_a is not None and (bot_a.bot_token, bot_a.bot_user_id, bot_a.team_id) == ("xoxb-a-1", "UB" + a, a)
        assert await store.bot_token(b) == "xoxb-b-1"
        installer = await store.async_find_installation(enterprise_id=None, team_id=b, user_id="U9")
        assert (
            installer is not None and installer.user_id == "U9" and installer.bot_scopes == ["chat:write", "commands"]
        )
        await store.async_save(_installation(a, "xoxb-a-2", user="U2"))  # a reinstall, by someone else
        assert await store.bot_token(a) == "xoxb-a-2"
        latest = await store.async_find_installation(enterprise_id=None, team_id=a)
        assert latest is not None and latest.bot_token == "xoxb-a-2" and latest.user_id == "U2"
        assert saved == [a, b, a]
        await store.async_delete_all(enterprise_id=None, team_id=a)
        assert await store.async_find_bot(enterprise_id=None, team_id=a) is None
        assert await store.bot_token(a) is None and await store.bot_token(b) == "xoxb-b-1"
    finally:
        await store.async_delete_all(enterprise_id=None, team_id=b)
        await db.close()


async def test_an_org_wide_install_is_found_by_its_enterprise(db: BaseDb) -> None:
    store = DbInstallationStore(db)
    org = unique("E")
    try:
        await store.async_save(_installation("", "xoxb-org", enterprise_id=org, is_enterprise_install=True))
        bot = await store.async_find_bot(enterprise_id=org, team_id="T-any", is_enterprise_install=True)
        assert bot is not None and bot.bot_token == "xoxb-org"
        assert team_key(org, "T-any", True) == org and await store.bot_token(org) == "xoxb-org"
        assert await store.async_find_bot(enterprise_id=org, team_id="T-any", is_enterprise_install=False) is None
    finally:
        await store.async_delete_all(enterprise_id=org, team_id=None)
        await db.close()


async def test_a_state_is_consumed_once_and_expires(db: BaseDb) -> None:
    states = DbOAuthStateStore(db, expiration_seconds=600)
    short = DbOAuthStateStore(db, expiration_seconds=0.2)
    try:
        state = await states.async_issue()
        other = await states.async_issue()
        assert state != other
        # Two callbacks with the same state at once: exactly one wins.
        assert sorted(await asyncio.gather(states.async_consume(state), states.async_consume(state))) == [False, True]
        assert await states.async_consume(state) is False
        assert await states.async_consume("forged-" + other) is False
        assert await states.async_consume("") is False
        assert await states.async_consume(other) is True
        late = await short.async_issue()
        await asyncio.sleep(0.3)
        assert await short.async_consume(late) is False
    finally:
        await db.close()


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_tokens_never_reach_the_log(db: BaseDb, caplog: pytest.LogCaptureFixture) -> None:
    store = DbInstallationStore(db)
    caplog.set_level("DEBUG")
    try:
        await store.async_save(_installation(unique("T"), "xoxb-secret-token"))
        assert "installed in team" in caplog.text and "xoxb-secret-token" not in caplog.text
    finally:
        await db.close()
