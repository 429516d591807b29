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
        await slack.bot_joins()  # as `kern-bot dev` starts: the bot's intro in the channel
        await slack.until(lambda: any(m.channel == "C1" for m in slack.messages.values()))
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
    # refused as Slack's client refuses it, before the bot hears of it (status 0: nothing was sent)
    assert answer == {"status": 0, "errors": {"f0": "This field is required.", "f2": "Enter a number."}}
    assert slack.state_for("U1")["view"] is not None  # stays open to be corrected
    values["f0"]["v"]["value"], values["f2"]["v"]["value"] = "Weekly", "2.5"
    async with http.post("/ui/submit", json={"view_id": view["id"], "values": values, "user": "U1"}) as resp:
        assert (await resp.json())["errors"] == {"f2": "Enter a whole number."}  # is_decimal_allowed: false
    values["f2"]["v"]["value"] = "4"
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
    intro, *cards = state["messages"]  # the bot's intro comes first, as `kern-bot dev` starts
    assert "Hi, I'm kern" in intro["text"]
    assert len(cards) == 1 and "Approve this purchase?" in json.dumps(cards[0]["replies"])
    channel_ts = {m["ts"] for m in state["messages"]} | {r["ts"] for r in cards[0]["replies"]}
    assert all(slack.messages[ts].channel == "C1" for ts in channel_ts)  # no DM copy in the channel view
    assert state["home"] is None  # not opened yet

    dm_copy = state["dm"][0]
    async with http.post("/ui/click", json={"ts": dm_copy["ts"], "action_id": ui.CONFIRM, "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: "Completed" in json.dumps(s["messages"][1]["blocks"]))
    assert "Ordered a chair." in json.dumps(state["messages"][1]["blocks"])

    def copies(s: dict) -> list[str]:
        shown = [s["dm"][0]["blocks"], s["messages"][1]["replies"][0]["blocks"]]
        return [json.dumps(blocks) for blocks in shown + [m.blocks for m in slack.dm_of("UBOSS")]]

    state = await settle(slack, http, "U1", lambda s: all(ui.CONFIRM not in c for c in copies(s)))  # all closed
    assert all("Approved by <@U1>" in c for c in copies(state)) and len(copies(state)) == 3

    async with http.post("/ui/command", json={"text": "/kern run deploy api", "user": "U1"}) as resp:
        assert (await resp.json())["status"] == 200
    await settle(slack, http, "U1", lambda s: len(s["messages"]) == 3 and s["messages"][-1]["replies"])
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


def pause_of(state: dict) -> dict:
    """The newest pause message in the channel (the last reply of the last card)."""
    return state["messages"][-1]["replies"][-1]


async def test_the_page_starts_with_the_intro_and_its_channel_has_members(
    dev_page: tuple[DevSlackWeb, aiohttp.ClientSession],
) -> None:
    """The bot's intro is the channel's first message (posted by the bot on member_joined_channel), and
    conversations.members lists the page's people (and the bot), page by page, so `channel_members` rules
    can be tried there."""
    slack, _http = dev_page
    intro = slack.state_for("U2")["messages"][0]
    assert intro["author"] == "" and "Hi, I'm kern" in intro["text"]
    assert "/kern run <workflow> [input]" in json.dumps(intro["blocks"]) and "`deploy`" in json.dumps(intro["blocks"])
    client = make_client(slack.token, slack.api_url)
    everyone = (await client.conversations_members(channel="C1"))["members"]
    assert everyone == ["U1", "U2", "UBOSS", "UBOT"]
    pages, cursor = [], None
    while True:
        page = await client.conversations_members(channel="C1", limit=3, cursor=cursor)
        pages.append(page["members"])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == [["U1", "U2", "UBOSS"], ["UBOT"]]

    from bot.approvals.access import Access  # the bot's own membership check, through every page
    from bot.slack.gateway import SlackGateway

    gateway = SlackGateway(client)
    async with gateway.pooled():
        access = Access(gateway, None)
        assert [await access.member(u, "C1") for u in ("UBOSS", "U9")] == [True, False]


async def test_a_hand_over_from_the_page(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    """The hand-over modal's users_select is answered as Slack answers it (`selected_user`); left empty it
    is refused by the page itself; a person picked: the pause says who it was handed to."""
    slack, http = dev_page
    await http.post("/ui/command", json={"text": "/kern run deploy api", "user": "U1"})
    state = await settle(slack, http, "U1", lambda s: len(s["messages"]) == 2 and s["messages"][-1]["replies"])
    pause_ts = pause_of(state)["ts"]
    async with http.post("/ui/click", json={"ts": pause_ts, "action_id": ui.HANDOVER, "user": "U1"}) as r:
        assert (await r.json())["status"] == 200
    state = await settle(slack, http, "U1", lambda s: s["view"] and s["view"]["title"]["text"] == "Hand over")
    view = state["view"]
    assert view["blocks"][1]["element"]["type"] == "users_select"
    empty = {"to": {"v": {"type": "users_select", "selected_user": None}}, "note": {"v": {"type": "plain_text_input"}}}
    async with http.post("/ui/submit", json={"view_id": view["id"], "values": empty, "user": "U1"}) as resp:
        assert await resp.json() == {"status": 0, "errors": {"to": "This field is required."}}
    picked = {**empty, "to": {"v": {"type": "users_select", "selected_user": "U2"}}}
    async with http.post("/ui/submit", json={"view_id": view["id"], "values": picked, "user": "U1"}) as resp:
        assert await resp.json() == {"status": 200, "errors": {}}
    pause = slack.messages[pause_ts]
    await settle(slack, http, "U1", lambda s: "Handed to <@U2> by <@U1>" in json.dumps(pause.blocks))
    notice = pause_of(slack.state_for("U2"))  # the thread's notice to the new person
    assert notice["text"].startswith("<@U2>, <@U1> handed you *deploy*")
    assert slack.state_for("U1")["view"] is None


async def test_the_picker_s_next_with_nothing_chosen(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    """The shortcut's picker: Next with no workflow chosen is refused in the page (Slack's client does not
    submit a required select left empty), never sent to the bot to be misread."""
    slack, http = dev_page
    await http.post("/ui/shortcut", json={"user": "U1"})
    state = await settle(slack, http, "U1", lambda s: s["view"] and s["view"]["title"]["text"] == "Run a workflow")
    values = {
        ui.WORKFLOW_BLOCK: {"v": {"type": "static_select", "selected_option": None}},
        ui.CHANNEL_BLOCK: {"v": {"type": "conversations_select", "selected_conversation": "C1"}},
    }
    async with http.post("/ui/submit", json={"view_id": state["view"]["id"], "values": values, "user": "U1"}) as r:
        assert await r.json() == {"status": 0, "errors": {ui.WORKFLOW_BLOCK: "This field is required."}}
    assert slack.state_for("U1")["view"]["title"]["text"] == "Run a workflow"  # still open, nothing sent


async def test_the_page_enforces_each_element_s_bounds(dev_page: tuple[DevSlackWeb, aiohttp.ClientSession]) -> None:
    """What Slack's client checks before a submission, for each kind of input: required, min/max length,
    number bounds and decimals, email and URL format; optional inputs may stay empty."""
    slack, http = dev_page
    client = make_client(slack.token, slack.api_url)

    def field(block_id: str, element: dict, optional: bool = False) -> dict:
        label = {"type": "plain_text", "text": block_id}
        return {"type": "input", "block_id": block_id, "label": label, "optional": optional, "element": element}

    blocks = [
        field("name", {"type": "plain_text_input", "action_id": "v", "min_length": 3, "max_length": 5}),
        field(
            "pages",
            {
                "type": "number_input",
                "action_id": "v",
                "is_decimal_allowed": False,
                "min_value": "1",
                "max_value": "50",
            },
        ),
        field("ratio", {"type": "number_input", "action_id": "v", "is_decimal_allowed": True, "max_value": "1"}),
        field("mail", {"type": "email_text_input", "action_id": "v"}),
        field("site", {"type": "url_text_input", "action_id": "v"}),
        field("who", {"type": "multi_users_select", "action_id": "v"}),
        field("when", {"type": "timepicker", "action_id": "v"}, optional=True),
        field(
            "pick",
            {
                "type": "radio_buttons",
                "action_id": "v",
                "options": [{"text": {"type": "plain_text", "text": "A"}, "value": "a"}],
            },
        ),
        field("rich", {"type": "rich_text_input", "action_id": "v"}),
    ]
    view = {"type": "modal", "callback_id": "x", "title": {"type": "plain_text", "text": "Bounds"}, "blocks": blocks}
    view["submit"] = {"type": "plain_text", "text": "Send"}
    opened = (await client.views_open(trigger_id=slack._trigger("U1"), view=view))["view"]

    async def submit(**given: dict) -> dict:
        values = {b["block_id"]: {"v": {"type": b["element"]["type"], **given.get(b["block_id"], {})}} for b in blocks}
        async with http.post("/ui/submit", json={"view_id": opened["id"], "values": values, "user": "U1"}) as resp:
            return (await resp.json())["errors"]

    rich = {
        "rich_text_value": {
            "type": "rich_text",
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": "hi"}]}],
        }
    }
    assert await submit(
        name={"value": "ab"},
        pages={"value": "-5"},
        ratio={"value": "1.5"},
        mail={"value": "not-mail"},
        site={"value": "example.com"},
        who={"selected_users": []},
        pick={"selected_option": None},
        rich={"rich_text_value": None},
    ) == {
        "name": "Enter at least 3 characters.",
        "pages": "Enter a number between 1 and 50.",
        "ratio": "Enter a number of at most 1.",
        "mail": "Enter a valid email address.",
        "site": "Enter a valid URL (https://…).",
        "who": "This field is required.",
        "pick": "This field is required.",
        "rich": "This field is required.",
    }
    assert await submit(
        name={"value": "abcdef"},
        pages={"value": "1e23"},
        ratio={"value": "0.5"},
        mail={"value": "a@b.co"},
        site={"value": "https://kern.dev"},
        who={"selected_users": ["U2"]},
        pick={"selected_option": {"value": "a"}},
        rich=rich,
    ) == {"name": "Enter no more than 5 characters.", "pages": "Enter a whole number."}
    pick = {"selected_option": {"value": "a"}}
    assert (
        await submit(
            name={"value": "abc"},
            pages={"value": "50"},
            ratio={"value": "0.5"},
            mail={"value": "a@b.co"},
            site={"value": "https://kern.dev"},
            who={"selected_users": ["U2"]},
            pick=pick,
            rich=rich,
        )
        == {}
    )  # sent: the bot answers (it knows no such form: nothing to show), the optional time left empty


async def test_text_in_the_channel_is_a_message_and_the_bot_hints(
    dev_page: tuple[DevSlackWeb, aiohttp.ClientSession],
) -> None:
    """Typed without the slash, a command is posted as the person's message and the bot (its `message`
    event) answers only them with the command it reads as; a mention (`app_mention`) gets how to talk to it;
    talk between people gets nothing; an unknown slash command is Slackbot's answer, as in Slack."""
    slack, http = dev_page

    async def say(text: str, user: str = "U1") -> None:
        async with http.post("/ui/command", json={"text": text, "user": user}) as resp:
            assert (await resp.json())["status"] in (0, 200)

    def mine(user: str = "U1") -> list[str]:
        return [e["text"] for e in slack.state_for(user)["ephemeral"]]

    await say("run deploy api")
    state = await settle(slack, http, "U1", lambda s: s["ephemeral"])
    assert state["messages"][-1]["author"] == "U1" and state["messages"][-1]["text"] == "run deploy api"
    assert mine() == ["Commands start with a slash: did you mean `/kern run deploy api`?"]
    assert mine("U2") == []  # only its author sees the hint

    await say("hello team, the deploy went fine")  # people talking: no hint
    await say("@kern what can you do?")
    await settle(slack, http, "U1", lambda s: len(s["ephemeral"]) == 2)
    assert "I answer to `/kern` commands" in mine()[-1]
    assert any(m["text"] == "<@UBOT> what can you do?" for m in slack.state_for("U1")["messages"])  # as Slack stores it

    await say("/kenr list")
    await settle(slack, http, "U1", lambda s: len(s["ephemeral"]) == 3)
    last = slack.state_for("U1")["ephemeral"][-1]
    assert last["author"] == "Slackbot" and last["text"].startswith("`/kenr` is not a valid command.")
    assert not any(m["text"] == "/kenr list" for m in slack.state_for("U1")["messages"])  # never posted
    assert len(mine()) == 3  # and "hello team" got nothing
