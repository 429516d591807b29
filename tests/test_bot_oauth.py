"""OAuth mode end to end: the install from /slack/install to the stored installation through the stand-in's
authorize page and oauth.v2.access, then two workspaces in one database, each with its own token and
neither seeing nor answering the other's runs. Real bot endpoint, signed requests, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from cryptography.fernet import Fernet
from slack_sdk.oauth.installation_store import Installation
from sqlalchemy.engine import Connection

from bot import blocks as ui
from bot.config import Settings
from bot.devslack import DevSlack
from bot.registry import Registry
from bot.slack.app import KernBot, build_bot
from bot.slack.installations import DbInstallationStore
from bot.slack.oauth import oauth_parts
from bot.slack.server import create_web_app
from bot.store.tables import metadata, oauth_states
from kern.db.base import BaseDb
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results
from tests.test_bot_e2e import SECRET, registry_for
from tests.test_bot_grants import deployed
from tests.test_bot_grants import workflows as grant_workflows

ROOT = Path(__file__).resolve().parent.parent
KEY = Fernet.generate_key().decode()


@dataclass
class OAuthEnv:
    slack: DevSlack
    bot: KernBot
    db: BaseDb
    base: str  # the bot's URL
    installations: DbInstallationStore

    def browser(self) -> aiohttp.ClientSession:
        """A browser: keeps cookies and follows redirects. Bolt's state cookie is Secure: browsers send those
        to a local http:// origin as to https://, and so does this one for the bot's address."""
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[self.base])
        return aiohttp.ClientSession(cookie_jar=jar)

    async def install_link(self, browser: aiohttp.ClientSession) -> str:
        async with browser.get(self.base + "/slack/install") as page:
            assert page.status == 200
            html = await page.text()
        found = re.search(r'<a href="([^"]+)"', html)
        assert found is not None, html
        return found.group(1).replace("&amp;", "&")

    async def install(self, team: str) -> tuple[int, str]:
        """The whole install in workspace `team`, as a person's browser goes through it."""
        self.slack.installing_team = team
        async with self.browser() as browser:
            link = await self.install_link(browser)
            async with browser.get(link) as done:
                return done.status, await done.text()


@contextlib.asynccontextmanager
async def oauth_bot(db: BaseDb, registry: Registry) -> AsyncIterator[OAuthEnv]:
    """The bot in OAuth mode (settings checked as `kern-bot serve` checks them) behind the stand-in, which
    has the app's redirect URL registered and hosts no workspace the app is installed in yet."""
    async with DevSlack(SECRET, token="xoxb-none", team_id="T-none") as slack:
        settings = Settings(
            client_id=slack.client_id,
            client_secret=slack.client_secret,
            api_url=slack.api_url,
            signing_secret=SECRET,
            token_keys=KEY,
        )
        settings.check("serve")
        clients, flow = oauth_parts(settings, db)
        bot = build_bot(registry, clients.base, SECRET, clients=clients, oauth_flow=flow)
        runner = web.AppRunner(create_web_app(bot, sweep_interval=0))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        slack.bot_endpoint = base + "/slack/events"
        slack.redirect_urls = [base + "/slack/oauth_redirect"]
        assert isinstance(flow.settings.installation_store, DbInstallationStore)
        try:
            yield OAuthEnv(slack, bot, db, base, flow.settings.installation_store)
        finally:
            await bot.background.idle(10)
            await runner.cleanup()


@pytest.fixture
async def oauth(db_kind: str, tmp_path: Path) -> AsyncIterator[OAuthEnv]:
    db = make_db(db_kind, tmp_path)
    async with oauth_bot(db, registry_for(db)) as env:
        yield env


async def test_install_from_the_install_page_to_the_stored_installation(oauth: OAuthEnv) -> None:
    team = unique("TA")
    status, page = await oauth.install(team)
    assert status == 200 and "Thank you" in page, page
    token = oauth.slack.token_of(team)
    assert await oauth.installations.bot_token(team) == token
    bot = await oauth.installations.async_find_bot(enterprise_id=None, team_id=team)
    assert bot is not None and bot.bot_user_id == "UBOT" and "chat:write" in bot.bot_scopes
    # the exchange was made with the app's credentials and the stand-in checked them
    assert [c[0] for c in oauth.slack.calls if c[0].startswith("oauth")] == ["oauth.v2.access"]
    assert oauth.slack.rejected == []


async def test_the_install_page_writes_nothing_and_a_state_works_once(oauth: OAuthEnv) -> None:
    """300 anonymous GETs of /slack/install write no row; the callbacks' consumed states are the only rows."""
    tables = [t for t in metadata.sorted_tables if t.name in ("kern_bot_oauth_states", "kern_bot_installations")]

    def counts(conn: Connection) -> dict[str, int]:
        return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() for t in tables}

    before = await oauth.db.run_transaction(counts, write=False)
    async with aiohttp.ClientSession() as anonymous:

        async def get() -> int:
            async with anonymous.get(oauth.base + "/slack/install") as page:
                await page.read()
                return page.status

        statuses = [await get() for _ in range(300)]
    assert statuses == [200] * 300
    assert await oauth.db.run_transaction(counts, write=False) == before
    live = sa.select(sa.func.count()).select_from(oauth_states).where(oauth_states.c.expire_at > sa.bindparam("now"))

    async def live_states() -> int:
        return int(await oauth.db.run_transaction(lambda c: c.execute(live, {"now": time.time()}).scalar_one()))

    live_before = await live_states()
    team = unique("TW")
    status, page = await oauth.install(team)  # a real install still works...
    assert status == 200 and "Thank you" in page, page
    # ...and records its state once (expired states of earlier tests may be deleted meanwhile: not counted)
    assert await live_states() == live_before + 1
    assert await oauth.installations.bot_token(team) == oauth.slack.token_of(team)


async def test_an_expired_state_is_refused(oauth: OAuthEnv) -> None:
    oauth.slack.installing_team = unique("TX")
    store = oauth.bot.app.oauth_flow.settings.state_store  # type: ignore[union-attr]
    store.expiration_seconds = 1
    async with oauth.browser() as browser:
        code, state = await _code_and_state(oauth, browser)
        await asyncio.sleep(1.1)
        async with browser.get(oauth.base + "/slack/oauth_redirect", params={"code": code, "state": state}) as late:
            assert late.status == 401 and "invalid_state" in await late.text()
    assert await oauth.installations.bot_token(oauth.slack.installing_team) is None


async def _code_and_state(oauth: OAuthEnv, browser: aiohttp.ClientSession) -> tuple[str, str]:
    """Start an install in `browser` and approve it: the code and state Slack sends back."""
    link = await oauth.install_link(browser)
    async with browser.get(link, allow_redirects=False) as to_bot:
        assert to_bot.status == 302
        back = to_bot.headers["Location"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(back).query)
    return query["code"][0], query["state"][0]


def _cookie(state: str) -> dict[str, str]:
    """The state cookie of `state`, as a header (as an attacker who copied it would send it)."""
    return {"Cookie": f"slack-app-oauth-state={state}"}


async def test_a_bad_code_a_replayed_forged_or_cookieless_state_store_nothing(oauth: OAuthEnv) -> None:
    team = unique("TB")
    oauth.slack.installing_team = team
    redirect = oauth.base + "/slack/oauth_redirect"
    async with oauth.browser() as browser:
        code, state = await _code_and_state(oauth, browser)
        # a bad code with the real state: refused by the stand-in's oauth.v2.access, nothing stored
        async with browser.get(redirect, params={"code": "1.bad", "state": state}) as bad:
            assert bad.status == 401 and "invalid_code" in await bad.text()
        assert oauth.slack.rejected[-1] == {"method": "oauth.v2.access", "error": "invalid_code", "errors": []}
        # that state again (its cookie too), now with the good code: consumed already
        query = {"code": code, "state": state}
        async with (
            aiohttp.ClientSession() as bare,
            bare.get(redirect, params=query, headers=_cookie(state)) as replayed,
        ):
            assert replayed.status == 401 and "invalid_state" in await replayed.text()
        # a forged state, with a cookie to match: never issued
        forgery = {"code": code, "state": "forged"}
        async with (
            aiohttp.ClientSession() as bare,
            bare.get(redirect, params=forgery, headers=_cookie("forged")) as forged,
        ):
            assert forged.status == 401 and "invalid_state" in await forged.text()
    # a real state from a browser that did not start the install (no cookie, or another's)
    async with oauth.browser() as starter, oauth.browser() as other:
        code, state = await _code_and_state(oauth, starter)
        async with other.get(redirect, params={"code": code, "state": state}) as stolen:
            assert stolen.status == 400 and "invalid_browser" in await stolen.text()
        query = {"code": code, "state": state}
        async with (
            aiohttp.ClientSession() as bare,
            bare.get(redirect, params=query, headers=_cookie(state + "x")) as mismatched,
        ):
            assert mismatched.status == 400
    assert await oauth.installations.bot_token(team) is None
    assert await oauth.installations.async_find_installation(enterprise_id=None, team_id=team) is None
    assert not [i for i in oauth.slack.installs if i["team"]["id"] == team]


async def test_the_stand_in_refuses_a_wrong_secret_or_redirect_like_slack(oauth: OAuthEnv) -> None:
    oauth.slack.installing_team = unique("TC")
    async with oauth.browser() as browser:
        link = await oauth.install_link(browser)
        async with browser.get(link, allow_redirects=False) as to_bot:
            code = urllib.parse.parse_qs(urllib.parse.urlsplit(to_bot.headers["Location"]).query)["code"][0]
        api = oauth.slack.api_url + "oauth.v2.access"
        good = {"client_id": oauth.slack.client_id, "client_secret": oauth.slack.client_secret, "code": code}
        for wrong, error in (
            ({"client_secret": "nope"}, "bad_client_secret"),
            ({"client_id": "9.9"}, "invalid_client_id"),
            ({"code": code + "x"}, "invalid_code"),
        ):
            async with browser.post(api, data={**good, **wrong}) as answer:
                assert (await answer.json())["error"] == error
        async with browser.post(api, data=good) as answer:
            assert (await answer.json())["ok"] is True
        async with browser.post(api, data=good) as again:  # a code works once
            assert (await again.json())["error"] == "invalid_code"
        bad_redirect = link.replace("client_id=", "redirect_uri=http%3A%2F%2Fevil.example%2F&client_id=")
        async with browser.get(bad_redirect, allow_redirects=False) as refused:
            assert refused.status == 400 and await refused.text() == "bad_redirect_uri"


async def test_health_in_oauth_mode_asks_slack_without_a_token(oauth: OAuthEnv) -> None:
    async with oauth.browser() as browser, browser.get(oauth.base + "/health") as health:
        body = await health.text()
    assert (health.status, body) == (200, "ok")
    assert [c[0] for c in oauth.slack.calls if c[0] in ("api.test", "auth.test")] == ["api.test"]
    await asyncio.sleep(0)


async def settle(oauth: OAuthEnv) -> None:
    await asyncio.sleep(0.05)
    await oauth.bot.background.idle(15)


async def test_two_workspaces_share_one_database_and_neither_sees_nor_answers_the_others_runs(
    oauth: OAuthEnv,
) -> None:
    slack, store = oauth.slack, oauth.bot.store
    a, b = unique("TA"), unique("TB")
    for team in (a, b):
        assert (await oauth.install(team))[0] == 200
    channel = {a: "CA", b: "CB"}
    cards = {}
    for team in (a, b):
        with slack.as_team(team):
            status, body, _ = await slack.command(f"run deploy {team}", user="U1", channel=channel[team])
        assert status == 200 and "Starting" in body, body
        await settle(oauth)
        cards[team] = [m for m in slack.messages.values() if m.channel == channel[team] and m.thread_ts is None][-1]
    # each workspace's messages went out with its own bot token
    for team in (a, b):
        posted = [m for m in slack.messages.values() if m.channel == channel[team]]
        assert len(posted) >= 2 and {m.team for m in posted} == {team}  # the card and its pause message
    run = {}
    for team, other in ((a, b), (b, a)):
        card = await store.card_at(channel[team], cards[team].ts, team=team)
        assert card is not None and card.team_id == team
        assert await store.card_at(channel[team], cards[team].ts, team=other) is None
        run[team] = card.run_id
        owed = await store.owed(card.run_id)  # what the run owed Slack, recorded in kern's transactions
        assert owed and {row["team_id"] for row in owed} == {team}

    # status and cancel from the other workspace: the same answer as for a run that does not exist
    with slack.as_team(b):
        _, seen, _ = await slack.command(f"status {run[a][:12]}", channel="CB")
        _, unknown, _ = await slack.command(f"status {'0' * 12}", channel="CB")
        await slack.command(f"cancel {run[a][:12]}", channel="CB")
        await settle(oauth)
    assert seen.replace(run[a][:12], "X") == unknown.replace("0" * 12, "X") and "No run" in seen
    assert slack.ephemeral[-1]["text"].startswith(f"No run `{run[a][:12]}`")
    with slack.as_team(a):
        _, own, _ = await slack.command(f"status {run[a][:12]}", channel="CA")
    assert "waiting at deploy" in own

    # a click on A's pause message, copied and sent as from workspace B: refused as unknown, run untouched
    payload = slack.click_payload(ui.CONFIRM, user="U2", thread_ts=cards[a].ts)
    assert payload["team"]["id"] == slack.team_id  # made as from the stand-in's own team: now B's
    payload["team"]["id"] = b
    requirement_id = payload["actions"][0]["value"]
    pause, card_of_pause = await store.pause_with_card(requirement_id, team=a)
    assert pause is not None and card_of_pause is not None and card_of_pause.run_id == run[a]
    assert await store.pause_with_card(requirement_id, team=b) == (None, None)
    before = len(slack.ephemeral)
    with slack.as_team(b):
        status, _, _ = await slack.send(slack.interaction_body(payload), "application/x-www-form-urlencoded")
    assert status == 200
    await settle(oauth)
    told = slack.ephemeral[before:]
    assert [t["text"] for t in told] == ["This card does not belong to a run I know."], told
    entry = oauth.bot.registry.get("deploy")
    assert entry is not None and (await entry.workflow.aget_run(run[a])).is_paused

    # the App Home of a person in each workspace shows that workspace's pause only
    homes = {}
    for team, user in ((a, "UA1"), (b, "UB1")):
        with slack.as_team(team):
            await slack.open_home(user)
        await settle(oauth)
        homes[team] = json.dumps(slack.homes[user])
    for team, other in ((a, b), (b, a)):
        assert run[team][:12] in homes[team] and run[other][:12] not in homes[team]

    # a click from A itself answers A's run; B's stays paused
    with slack.as_team(a):
        status, _, _ = await slack.click(ui.CONFIRM, user="U2", thread_ts=cards[a].ts)
    await settle(oauth)
    assert (await entry.workflow.aget_run(run[a])).status.value == "COMPLETED"
    assert (await entry.workflow.aget_run(run[b])).is_paused
    assert [r for r in slack.rejected if r["method"] != "oauth.v2.access"] == []
    # every bot row about either run carries its workspace
    tables = [t for t in metadata.sorted_tables if "run_id" in t.c and "team_id" in t.c]

    def teams_of(conn: Connection) -> dict[tuple[str, str], set[str]]:
        found: dict[tuple[str, str], set[str]] = {}
        for table in tables:
            for team, run_id in ((a, run[a]), (b, run[b])):
                rows = conn.execute(sa.select(table.c.team_id).where(table.c.run_id == run_id)).scalars()
                found[(table.name, team)] = set(rows)
        return found

    found = await oauth.db.run_transaction(teams_of, write=False)
    assert {name for (name, _), teams in found.items() if teams} >= {
        "kern_bot_cards",
        "kern_bot_pauses",
        "kern_bot_outbox",
    }
    assert all(teams <= {team} for (_, team), teams in found.items()), found


async def test_a_workflow_wide_grant_in_one_workspace_allows_nothing_in_another(
    db_kind: str, tmp_path: Path, server: FakeOpenAI
) -> None:
    db = make_db(db_kind, tmp_path)
    names = {"ship": unique("ship"), "fleet": unique("fleet")}
    deployed.clear()
    async with oauth_bot(db, Registry(grant_workflows(server, names), db)) as oauth:
        slack = oauth.slack
        a, b = unique("TA"), unique("TB")
        for team in (a, b):
            assert (await oauth.install(team))[0] == 200

        def tool_cards(channel: str) -> list[str]:
            return [
                json.dumps(m.blocks)
                for m in slack.messages.values()
                if m.channel == channel and "wants to call `" in json.dumps(m.blocks)  # open or decided
            ]

        server.script(call("deploy", service="api"), echo_tool_results)
        with slack.as_team(a):
            await slack.command(f"run {names['fleet']} one", channel="CA")
            await slack.until(lambda: len(tool_cards("CA")) == 1)
            await slack.click(ui.TOOL_ALLOW_WORKFLOW, user="U2")
        await slack.until(lambda: "api" in deployed)
        await settle(oauth)
        grants = oauth.bot.tool_calls.grants if oauth.bot.tool_calls else None
        assert grants is not None and [g["team_id"] for g in await grants.active(names["fleet"], team=a)] == [a]
        assert await grants.active(names["fleet"], team=b) == []

        # the same workflow and tool in workspace B: a person is asked
        server.script(call("deploy", service="web"), echo_tool_results)
        with slack.as_team(b):
            await slack.command(f"run {names['fleet']} two", channel="CB")
            await slack.until(lambda: len(tool_cards("CB")) == 1)
        await settle(oauth)
        assert "Approve once" in tool_cards("CB")[0] and "web" not in deployed
        with slack.as_team(b):  # approved there, once, by a person of B
            await slack.click(ui.TOOL_OK, user="U3")
        await slack.until(lambda: "web" in deployed)
        await settle(oauth)
        # and in workspace A the grant still covers it, without a click
        server.script(call("deploy", service="db"), echo_tool_results)
        with slack.as_team(a):
            await slack.command(f"run {names['fleet']} three", channel="CA")
        await slack.until(lambda: "db" in deployed)
        await settle(oauth)
        assert len(tool_cards("CA")) == 2 and "Approved automatically" in tool_cards("CA")[-1]


async def test_an_uninstall_deletes_the_token_and_a_reinstall_brings_a_new_one(oauth: OAuthEnv) -> None:
    slack, team = oauth.slack, unique("TU")
    assert (await oauth.install(team))[0] == 200
    first = await oauth.installations.bot_token(team)
    assert first is not None
    with slack.as_team(team):
        assert (await slack.command("run deploy first", channel="CU"))[0] == 200
        await settle(oauth)  # the card is posted: the bot holds a client with this token now
        status, _, _ = await slack.event({"type": "app_uninstalled"})
    assert status == 200
    del slack.teams[first]  # Slack revokes the token of an uninstalled app
    await settle(oauth)
    assert await oauth.installations.bot_token(team) is None
    assert await oauth.installations.async_find_bot(enterprise_id=None, team_id=team) is None
    assert (await oauth.install(team))[0] == 200
    second = await oauth.installations.bot_token(team)
    assert second is not None and second != first
    with slack.as_team(team):  # the bot answers again, with the new token
        status, body, _ = await slack.command("run deploy again", channel="CU")
    assert status == 200 and "Starting" in body
    await settle(oauth)
    cards = [m for m in slack.messages.values() if m.channel == "CU" and m.thread_ts is None]
    assert len(cards) == 2 and "again" in json.dumps(cards[-1].blocks)  # posted, so with the new token
    assert slack.rejected == []


async def _older_installation(db_file: Path, team: str, token: str) -> None:
    """A database with the bot's tables and one workspace installed by a version that kept tokens in clear."""
    from bot.store.migrations import BOT
    from bot.store.tables import installations
    from kern.db.sqlite import SqliteDb

    db = SqliteDb(db_file=db_file)
    await db.upgrade(BOT)
    installation = Installation(
        app_id="A1", team_id=team, bot_token=token, bot_id="B1", bot_user_id="UBOT", user_id="U1"
    )
    data = json.dumps(installation.__dict__)
    rows = [
        {"enterprise_id": "", "team_id": team, "user_id": user, "team_key": team, "is_enterprise_install": False,
         "data": data, "installed_at": time.time()}
        for user in ("", "U1")
    ]  # fmt: skip
    await db.run_transaction(lambda conn: conn.execute(installations.insert(), rows), tables=BOT)
    await db.close()


async def test_kern_bot_serve_in_oauth_mode_installs_and_answers_and_logs_no_token(tmp_path: Path) -> None:
    """The real `kern-bot serve` process with SLACK_CLIENT_ID/SECRET: the install through the stand-in,
    then a command answered with the new token; its log never shows a token or the client secret. A
    workspace installed by an older version (its row in clear text) is encrypted as the process starts,
    and still served; no byte of the database file holds a token afterwards."""
    db_file = tmp_path / "kern.db"
    old_team, old_token = unique("TO"), "xoxb-installed-by-an-older-version"
    await _older_installation(db_file, old_team, old_token)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with DevSlack(SECRET, token="xoxb-none", team_id="T-none") as slack:
        slack.redirect_urls = [base + "/slack/oauth_redirect"]
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "KERN_"))},
            "SLACK_CLIENT_ID": slack.client_id,
            "SLACK_CLIENT_SECRET": slack.client_secret,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "KERN_DB": str(db_file),
            "KERN_DB_AUTO_UPGRADE": "1",
            "KERN_TOKEN_KEYS": KEY,
            "KERN_OPS_PORT": "0",
            "PYTHONPATH": str(ROOT),
        }
        command = [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the test then only talks HTTP to it)
            command,
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            async with aiohttp.ClientSession() as session:
                while True:
                    assert proc.poll() is None, proc.communicate()
                    with contextlib.suppress(aiohttp.ClientError):
                        async with session.get(base + "/health") as health:
                            if health.status == 200:
                                break
                    assert time.monotonic() < deadline, "kern-bot serve did not come up"
                    await asyncio.sleep(0.05)
            installer = OAuthEnv(slack, None, None, base, None)  # type: ignore[arg-type]
            team = unique("TS")
            status, page = await installer.install(team)
            assert status == 200 and "Thank you" in page
            slack.bot_endpoint = base + "/slack/events"
            with slack.as_team(team):
                status, body, _ = await slack.command("run deploy api", channel="CS")
            assert status == 200 and "Starting" in body
            await slack.until(lambda: any(m.channel == "CS" and m.team == team for m in slack.messages.values()))
            slack.teams[old_token] = old_team
            with slack.as_team(old_team):  # the workspace installed before: served with its (decrypted) token
                status, body, _ = await slack.command("run deploy old", channel="CO")
            assert status == 200 and "Starting" in body
            await slack.until(lambda: any(m.channel == "CO" and m.team == old_team for m in slack.messages.values()))
        finally:
            proc.terminate()
            out, err = proc.communicate(timeout=30)
    logged = out.decode() + err.decode()
    assert "installations: 2 encrypted" in logged
    with sqlite3.connect(db_file) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert b"xoxb-" not in db_file.read_bytes() and old_team.encode() in db_file.read_bytes()
    assert "/slack/install" in logged and "installed in team" in logged
    assert slack.token_of(team) not in logged and slack.client_secret not in logged and "xoxb-" not in logged
