"""The installation store (bot/slack/installations.py, tokens encrypted at rest) and the signed OAuth states
(bot/slack/oauth_state.py) on kern's database, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Installation

from bot.slack.installations import DbInstallationStore, team_key
from bot.slack.oauth_state import SignedStateStore
from bot.store.migrations import BOT
from bot.store.tables import installations, oauth_states
from bot.token_keys import TokenCipher, TokenKeyError
from kern.db.base import BaseDb
from tests.conftest import unique

KEY_A, KEY_B = Fernet.generate_key().decode(), Fernet.generate_key().decode()
CIPHER = TokenCipher([KEY_A])


def _installation(team: str, token: str, user: str = "U1", **kwargs: object) -> Installation:
    return Installation(
        app_id="A1", team_id=team, team_name=team, bot_token=token, bot_id="B" + team, bot_user_id="UB" + team,
        bot_scopes="chat:write,commands", user_id=user, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_installations_are_kept_per_team_and_a_reinstall_replaces_the_token(db: BaseDb) -> None:
    saved: list[str] = []
    store = DbInstallationStore(db, CIPHER, on_saved=saved.append)
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
    store = DbInstallationStore(db, CIPHER)
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


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_tokens_never_reach_the_log(db: BaseDb, caplog: pytest.LogCaptureFixture) -> None:
    store = DbInstallationStore(db, CIPHER)
    caplog.set_level("DEBUG")
    try:
        await store.async_save(_installation(unique("T"), "xoxb-secret-token"))
        assert "installed in team" in caplog.text and "xoxb-secret-token" not in caplog.text
    finally:
        await db.close()


# ----- tokens encrypted at rest (issue 24, item 10) -----------------------------------------------------------
async def _stored(db: BaseDb, team: str) -> list[str]:
    """The `data` column of the team's rows, as the database holds it."""
    c = installations.c
    query = sa.select(c.data).where(c.team_id == team)
    return list(await db.run_transaction(lambda conn: conn.execute(query).scalars().all(), write=False, tables=BOT))


def _sqlite_bytes(db: BaseDb) -> bytes:
    """Every byte of a SQLite database's files (the main file, its WAL and shared memory)."""
    base = Path(str(db.db_file))  # type: ignore[attr-defined]
    return b"".join(p.read_bytes() for p in base.parent.glob(base.name + "*"))


async def test_stored_rows_hold_no_token(db: BaseDb, db_kind: str) -> None:
    store = DbInstallationStore(db, CIPHER)
    team = unique("TE")
    bot_token, user_token = f"xoxb-{team}-secret", f"xoxp-{team}-secret"
    try:
        await store.async_save(_installation(team, bot_token, user_token=user_token))
        await store.async_save(_installation(team, bot_token + "2", user="U2", user_token=user_token))  # a reinstall
        rows = await _stored(db, team)
        assert len(rows) == 3 and all(r.startswith("gAAAAA") for r in rows)
        secrets = (bot_token, bot_token + "2", user_token, team)
        assert not [r for r in rows if any(s in r for s in secrets)]  # nothing of the installation in clear
        if db_kind == "sqlite":
            raw = _sqlite_bytes(db)
            assert team.encode() in raw  # the file is what was read: the key columns are in clear
            assert b"xoxb-" not in raw and b"xoxp-" not in raw
        assert await store.bot_token(team) == bot_token + "2"
        found = await store.async_find_installation(enterprise_id=None, team_id=team, user_id="U1")
        assert found is not None and found.user_token == user_token
    finally:
        await store.async_delete_all(enterprise_id=None, team_id=team)
        await db.close()


async def _insert_clear(db: BaseDb, team: str, token: str) -> None:
    """A row as an older kern-bot wrote it: the installation's JSON in clear text."""
    installation = _installation(team, token)
    data = json.dumps(installation.__dict__)
    values = [
        {"enterprise_id": "", "team_id": team, "user_id": user, "team_key": team, "is_enterprise_install": False,
         "data": data, "installed_at": time.time()}
        for user in ("", "U1")
    ]  # fmt: skip
    await db.run_transaction(lambda conn: conn.execute(installations.insert(), values), tables=BOT)


async def test_clear_text_rows_are_read_once_and_encrypted_in_place(db: BaseDb, db_kind: str) -> None:
    store = DbInstallationStore(db, CIPHER)
    read, migrated = unique("TR"), unique("TM")
    try:
        await _insert_clear(db, read, f"xoxb-{read}")
        await _insert_clear(db, migrated, f"xoxb-{migrated}")
        assert all(r.startswith("{") for r in await _stored(db, read))
        # read: still works, and the row read is encrypted from then on
        assert await store.bot_token(read) == f"xoxb-{read}"
        assert sorted(r[:1] for r in await _stored(db, read)) == ["g", "{"]  # the installer's row: not read
        assert await store.bot_token(read) == f"xoxb-{read}"
        # the migration (every start in OAuth mode, and `kern-bot db upgrade`): every clear row, in place
        encrypted, _, unreadable, _ = await store.encrypt_all()  # (PostgreSQL's rows are shared with other tests)
        assert encrypted >= 3 and not [name for name in unreadable if read in name or migrated in name]
        for team in (read, migrated):
            assert all(r.startswith("gAAAAA") for r in await _stored(db, team))
        assert (await store.encrypt_all())[:2] == (0, 0)  # nothing left to do
        found = await store.async_find_installation(enterprise_id=None, team_id=migrated, user_id="U1")
        assert found is not None and found.bot_token == f"xoxb-{migrated}"
        if db_kind == "sqlite":
            await db.close()  # its last connection checkpoints the WAL into the file
            raw = _sqlite_bytes(db)
            assert read.encode() in raw and b"xoxb-" not in raw  # the clear text was zeroed, not left in free pages
    finally:
        if db_kind != "sqlite":  # the shared PostgreSQL database (a SQLite file is this test's own)
            for team in (read, migrated):
                await store.async_delete_all(enterprise_id=None, team_id=team)
        await db.close()


async def test_keys_rotate_and_a_wrong_key_is_named(db: BaseDb) -> None:
    team = unique("TK")
    old = DbInstallationStore(db, TokenCipher([KEY_A]))
    try:
        await old.async_save(_installation(team, f"xoxb-{team}"))
        # step 1 of a rotation: the new key first, the old one after it; both read the row
        rotating = DbInstallationStore(db, TokenCipher([KEY_B, KEY_A]))
        assert await rotating.bot_token(team) == f"xoxb-{team}"
        assert (await rotating.encrypt_all())[1] >= 2
        # step 2: the old key is dropped; the rows were re-encrypted with the new one
        new = DbInstallationStore(db, TokenCipher([KEY_B]))
        assert await new.bot_token(team) == f"xoxb-{team}"
        # a process with only the old (now wrong) key: a clear error naming the setting, never the token
        with pytest.raises(
            TokenKeyError, match=f"none of the keys in KERN_TOKEN_KEYS decrypts the installation of team {team}"
        ) as error:
            await old.bot_token(team)
        assert "xoxb" not in str(error.value)
        assert [name for name in (await old.encrypt_all())[2] if team in name] == [
            f"the installation of team {team} (user -)",
            f"the installation of team {team} (user U1)",
        ]
    finally:
        await old.async_delete_all(enterprise_id=None, team_id=team)
        await db.close()


# ----- signed OAuth states (issue 24, item 11) -----------------------------------------------------------------
async def _state_rows(db: BaseDb, nonce: str | None = None) -> int:
    """The consumed states recorded (of `nonce` only, if given)."""
    count = sa.select(sa.func.count()).select_from(oauth_states)
    if nonce is not None:
        count = count.where(oauth_states.c.state == nonce)
    return int(await db.run_transaction(lambda conn: conn.execute(count).scalar_one(), write=False, tables=BOT))


async def test_a_signed_state_is_issued_without_a_write_and_consumed_once(db: BaseDb) -> None:
    states = SignedStateStore(db, "client-secret", expiration_seconds=600)
    try:
        before = await _state_rows(db)
        issued = [await states.async_issue() for _ in range(300)]
        assert len(set(issued)) == 300 and await _state_rows(db) == before  # issuing writes nothing
        state, other = issued[:2]
        # Two callbacks with the same state at once: exactly one wins.
        assert sorted(await asyncio.gather(states.async_consume(state), states.async_consume(state))) == [False, True]
        assert await states.async_consume(state) is False  # replayed
        assert await _state_rows(db, state.split(".")[1]) == 1  # its nonce, recorded once
        stamp, nonce, signature = other.split(".")
        forged = [
            "forged", "", f"{stamp}.{nonce}.{signature[:-1]}", f"{stamp}.{nonce}x.{signature}",
            f"{int(stamp) + 1}.{nonce}.{signature}",
        ]  # fmt: skip
        for bad in forged:
            assert await states.async_consume(bad) is False, bad
        other_app = SignedStateStore(db, "another-secret")
        assert await other_app.async_consume(await other_app.async_issue()) is True
        assert await states.async_consume(await other_app.async_issue()) is False  # signed with another key
        assert await states.async_consume(other) is True
        short = SignedStateStore(db, "client-secret", expiration_seconds=1)
        late = await short.async_issue()
        await asyncio.sleep(1.1)
        assert await short.async_consume(late) is False  # expired
    finally:
        await db.close()
