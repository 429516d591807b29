"""kern-bot dev's page API: what the browser calls, end to end against the real bot."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError

from bot import blocks as ui
from bot.devslack.web import DevSlackWeb
from bot.slack.app import make_client
from kern.db.sqlite import SqliteDb
from tests.test_bot_e2e import SECRET, registry_for, start_bot


@pytest.fixture
async def dev_page(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[DevSlackWeb, aiohttp.ClientSession]]:
    """kern-bot dev's pieces: the bundled examples (plus `extra_workflows` from the test module, if any)."""
    db = SqliteDb(db_file=tmp_path / "k.db")
    extra = getattr(request.module, "extra_workflows", lambda db: [])(db)
    async with DevSlackWeb(SECRET) as slack:
        bot, server, url = await start_bot(slack, registry_for(db, extra))
        slack.bot_endpoint = url
        slack.kern_bot = bot  # type: ignore[attr-defined]  # for a test that moves time on (a sweep's `now`)
        async with aiohttp.ClientSession(base_url=slack.base_url) as http:
            yield slack, http
        await bot.background.idle()
        await server.cleanup()


async def settle(slack: DevSlackWeb, http: aiohttp.ClientSession, user: str, predicate) -> dict:
    state: dict = {}

    def check() -> bool:
        nonlocal state
        state = slack.state_for(user)
        return predicate(state)

    await slack.until(check)
    return state


async def test_page_drives_a_run_with_a_form(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    slack, http = dev_page
    async with http.get("/") as resp:
        assert resp.status == 200 and "kern-bot dev" in await resp.text()
    async with http.post("/ui/command", json={"text": "/kern list", "user": "U2"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U2", lambda s: s["ephemeral"])
    assert "`deploy`" in state["ephemeral"][-1]["text"]
    assert slack.state_for("U1")["ephemeral"] == []  # ephemeral messages are per user

    await http.post("/ui/command", json={"text": "/kern run report", "user": "U1"})
    state = await settle(slack, http, "U1", lambda s: s["messages"] and s["messages"][-1]["replies"])
    pause = state["messages"][-1]["replies"][-1]
    async with http.post("/ui/click", json={"ts": pause["ts"], "action_id": ui.OPEN_INPUT, "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: s["view"] and s["view"]["title"]["text"] == "Report")
    assert slack.state_for("U2")["view"] is None  # the modal is U1's
    view = state["view"]
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": None}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "2"}}},
        "f2": {"v": {"type": "number_input", "value": "two"}},
        "f3": {"v": {"type": "checkboxes", "selected_options": []}},
    }
    async with http.post("/ui/submit", json={"view_id": view["id"], "values": values, "user": "U1"}) as resp:
        answer = await resp.json()
    assert answer["errors"] == {"f0": "Title is required.", "f2": "Pages: expected int, got 'two'"}
    assert slack.state_for("U1")["view"] is not None  # stays open to be corrected
    values["f0"]["v"]["value"], values["f2"]["v"]["value"] = "Weekly", "4"
    async with http.post("/ui/submit", json={"view_id": view["id"], "values": values, "user": "U1"}) as resp:
        assert (await resp.json())["errors"] == {}
    state = await settle(slack, http, "U1", lambda s: "Completed" in str(s["messages"][-1]["blocks"]))
    assert state["view"] is None  # closed by the empty ack
    assert "Report 'Weekly' as html, 4 page(s), without charts." in str(state["messages"][-1]["blocks"])


async def test_slack_rejections_are_shown(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    slack, _http = dev_page
    client = make_client(slack.token, slack.api_url)
    too_long = [{"type": "header", "text": {"type": "plain_text", "text": "h" * 200}}]
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C1", text="x", blocks=too_long)
    rejected = slack.state_for("U1")["rejected"]
    assert rejected[-1]["method"] == "chat.postMessage" and rejected[-1]["error"] == "invalid_blocks"
    assert "must be less than 151 characters" in rejected[-1]["errors"][0]


async def test_response_url_rules(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    """A response_url works five times within 30 minutes, needs text, is validated like a message, and can
    replace or delete the message clicked."""
    slack, http = dev_page
    await http.post("/ui/command", json={"text": "/kern run deploy web", "user": "U1"})
    await settle(slack, http, "U1", lambda s: s["messages"] and s["messages"][-1]["replies"])
    url = slack.click_payload(ui.CONFIRM)["response_url"]
    async with aiohttp.ClientSession() as client:
        for i in range(5):
            async with client.post(url, json={"text": f"note {i}"}) as resp:
                assert resp.status == 200 and (await resp.json())["ok"]
        async with client.post(url, json={"text": "one too many"}) as resp:
            assert resp.status == 404 and (await resp.json())["error"] == "used_url"
        fresh = slack.click_payload(ui.CONFIRM)["response_url"]
        async with client.post(fresh, json={}) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "no_text"
        async with client.post(fresh, json={"text": "x", "blocks": [{"type": "section"}]}) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "invalid_blocks"
        async with client.post(url.rsplit("/", 1)[0] + "/Rnope", json={"text": "x"}) as resp:
            assert resp.status == 404
        late = slack.click_payload(ui.CONFIRM)["response_url"]  # used after its 30 minutes (below)
        clicked = slack.find(ui.CONFIRM)[0]
        async with client.post(
            slack.click_payload(ui.CONFIRM)["response_url"], json={"replace_original": True, "text": "Done"}
        ) as resp:
            assert resp.status == 200 and clicked.text == "Done" and clicked.blocks == []
        async with client.post(fresh, json={"delete_original": True}) as resp:
            assert resp.status == 200 and clicked.ts not in slack.messages
        slack.response_url_ttl = 0.0
        async with client.post(late, json={"text": "late"}) as resp:
            assert resp.status == 404 and (await resp.json())["error"] == "expired_url"
    mine = [e["text"] for e in slack.state_for("U1")["ephemeral"]]
    assert mine[-5:] == [f"note {i}" for i in range(5)] and "one too many" not in mine
    assert slack.state_for("U2")["ephemeral"] == []  # a response_url answers only the person who clicked
    assert [r["error"] for r in slack.rejected[-5:]] == [
        "used_url",
        "no_text",
        "invalid_blocks",
        "no_service",
        "expired_url",
    ]


def button(message: dict, action_id: str) -> str:
    """The action id of the first element of `message` (a page state message) named `action_id`."""
    for block in message["blocks"]:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element["action_id"].split(":")[:2] == action_id.split(":"):
                return element["action_id"]
    raise LookupError(action_id)


def home_text(state: dict) -> str:
    return json.dumps(state["home"]["blocks"]) if state["home"] else ""


async def test_the_channel_the_dm_and_the_home_are_apart(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    """`purchase` DMs its pause to U1 and UBOSS: each sees the copy in their own DM only, the channel shows
    the card with the thread copy and no DM copy; a click in the DM decides the pause everywhere. The Home
    is each person's own, published when they open it, and its buttons work."""
    slack, http = dev_page
    async with http.post("/ui/command", json={"text": "/kern run purchase a chair", "user": "U2"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(  # each copy is delivered on its own: wait for all three
        slack, http, "U1", lambda s: s["dm"] and slack.dm_of("UBOSS") and s["messages"] and s["messages"][-1]["replies"]
    )
    assert state["dm_channel"] == slack.dms["U1"]
    assert [len(s["dm"]) for s in map(slack.state_for, ("U1", "UBOSS", "U2"))] == [1, 1, 0]
    assert slack.state_for("UBOSS")["dm"][0]["ts"] != state["dm"][0]["ts"]  # a copy in each DM
    assert len(state["messages"]) == 1 and "Approve this purchase?" in json.dumps(state["messages"][0]["replies"])
    channel_ts = {m["ts"] for m in state["messages"]} | {r["ts"] for r in state["messages"][0]["replies"]}
    assert all(slack.messages[ts].channel == "C1" for ts in channel_ts)  # no DM copy in the channel view
    assert state["home"] is None  # not opened yet

    dm_copy = state["dm"][0]
    async with http.post("/ui/click", json={"ts": dm_copy["ts"], "action_id": ui.CONFIRM, "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: "Completed" in json.dumps(s["messages"][0]["blocks"]))
    assert "Ordered a chair." in json.dumps(state["messages"][0]["blocks"])

    def copies(s: dict) -> list[str]:
        shown = [s["dm"][0]["blocks"], s["messages"][0]["replies"][0]["blocks"]]
        return [json.dumps(blocks) for blocks in shown + [m.blocks for m in slack.dm_of("UBOSS")]]

    state = await settle(slack, http, "U1", lambda s: all(ui.CONFIRM not in c for c in copies(s)))  # all closed
    assert all("Approved by <@U1>" in c for c in copies(state)) and len(copies(state)) == 3

    async with http.post("/ui/command", json={"text": "/kern run deploy api", "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    await settle(slack, http, "U1", lambda s: len(s["messages"]) == 2 and s["messages"][-1]["replies"])
    async with http.post("/ui/home", json={"user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: "Deploy to production?" in home_text(s))
    assert "Waiting on you" in home_text(state) and slack.state_for("U2")["home"] is None  # U1's Home only
    async with http.post("/ui/home_click", json={"action_id": "kern:nope", "user": "U1"}) as resp:
        assert resp.status == 404
    approve = button(state["home"], ui.CONFIRM)
    async with http.post("/ui/home_click", json={"action_id": approve, "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: "Completed" in json.dumps(s["messages"][-1]["blocks"]))
    await settle(slack, http, "U1", lambda s: "Deploy to production?" not in home_text(s))  # refreshed

    async with http.post("/ui/command", json={"text": "/kern list", "user": "U1", "where": "dm"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: s["ephemeral"])
    assert state["ephemeral"][-1]["channel"] == state["dm_channel"]  # typed in the DM: answered there
