"""The App Home: published when a person opens it (`app_home_opened`, signed, through the real endpoint),
"Waiting on you" lists exactly the pauses they may answer with the same controls (clicked from the Home
they resolve the pause like anywhere else), newest first and paged within Slack's 100 blocks; "Your
runs" lists the runs they started; the tab is refreshed when a pause opens or closes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.workflow import Router, Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, Env, bot_env, settle, start_bot


def confirm(name: str) -> Workflow:
    step = Step(name="deploy", executor=lambda s: f"shipped {s.input}", requires_confirmation=True)
    return Workflow(name=unique(name), steps=[step])


def flows() -> list[BotWorkflow]:
    router = Router(
        name="pick",
        choices=[Step(name="fast", executor=lambda s: "went fast"), Step(name="slow", executor=lambda s: "went slow")],
        requires_user_input=True,
    )
    return [
        BotWorkflow(confirm("mine"), name="mine", approvers=Approvers(users=("UAPP",))),
        BotWorkflow(confirm("theirs"), name="theirs", approvers=Approvers(users=("UOTHER",))),
        BotWorkflow(confirm("group"), name="group", approvers=Approvers(groups=("SOPS",))),
        BotWorkflow(Workflow(name=unique("route"), steps=[router]), name="route", approvers=Approvers(users=("UAPP",))),
    ]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db("sqlite", tmp_path)
    async with DevSlack(SECRET) as slack:
        slack.groups["SOPS"] = ["UAPP", "UOPS"]
        bot, server, endpoint = await start_bot(slack, Registry(flows(), db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


async def start(env: Env, text: str, user: str = "U1") -> None:
    status, _, _ = await env.slack.command(f"run {text}", user=user)
    assert status == 200
    await settle(env)


async def open_home(env: Env, user: str) -> dict[str, Any]:
    before = env.slack.homes.get(user, {}).get("hash")
    status, _, took = await env.slack.open_home(user)
    assert status == 200 and took < 1.0
    await settle(env)
    await env.slack.until(lambda: env.slack.homes.get(user, {}).get("hash") not in (None, before))
    return env.slack.homes[user]


def text_of(view: dict[str, Any]) -> str:
    return json.dumps(view["blocks"])


def confirm_values(view: dict[str, Any]) -> list[str]:
    """The requirement ids behind the Approve buttons shown, in order."""
    return [
        el["value"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
        if el["action_id"].startswith(ui.CONFIRM)
    ]


def waiting_steps(view: dict[str, Any]) -> list[str]:
    """The `workflow / step` heads of the pauses shown, in order."""
    heads = []
    for block in view["blocks"]:
        text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
        if "` / *" in text:
            heads.append(text.split("· `", 1)[1].split("`", 1)[0])
    return heads


async def test_home_lists_only_the_pauses_the_user_may_answer_with_their_controls(env: Env) -> None:
    await start(env, "mine first")
    await start(env, "theirs x")
    await start(env, "group y")
    view = await open_home(env, "UAPP")
    assert view["type"] == "home"
    assert waiting_steps(view) == ["group", "mine"]  # newest first; not "theirs"
    assert "3 pauses" not in text_of(view) and "2 pauses wait on you" in text_of(view)
    ids = [el["action_id"] for b in view["blocks"] if b["type"] == "actions" for el in b["elements"]]
    assert (
        len(confirm_values(view)) == 2 and len(ids) == len(set(ids)) == 8
    )  # unique in the view (4 each, Hand over… too)
    assert "You have not started a run yet" in text_of(view)  # UAPP started nothing

    other = await open_home(env, "UOTHER")
    assert waiting_steps(other) == ["theirs"]
    outsider = await open_home(env, "UOUT")
    assert waiting_steps(outsider) == [] and "Nothing waits on you" in text_of(outsider)
    assert env.errors() == []


async def test_answered_from_the_home_and_refreshed_when_it_closes(env: Env) -> None:
    await start(env, "mine from-home")
    await start(env, "route")
    view = await open_home(env, "UAPP")
    assert waiting_steps(view) == ["route", "mine"]
    rid = confirm_values(view)[0]
    pause = next(m for m in env.slack.messages.values() if m.thread_ts and rid in json.dumps(m.blocks))

    # a route chosen on the Home: the picker's state comes in the view, under its own block id
    picker = next(b for b in view["blocks"] if b.get("block_id", "").startswith(ui.ROUTE_BLOCK))
    select = picker["elements"][0]
    state = {picker["block_id"]: {select["action_id"]: {"type": "static_select", "selected_option": {"value": "1"}}}}
    status, _, took = await env.slack.home_click("UAPP", ui.ROUTE_GO, state=state)
    assert status == 200 and took < 1.0
    await settle(env)
    await env.slack.until(lambda: waiting_steps(env.slack.homes["UAPP"]) == ["mine"])  # refreshed on close
    assert "went slow" in json.dumps([m.blocks for m in env.slack.messages.values()])

    await env.slack.home_click("UAPP", ui.CONFIRM)
    await settle(env)
    await env.slack.until(lambda: waiting_steps(env.slack.homes["UAPP"]) == [])
    assert "Approved by <@UAPP>" in json.dumps(env.slack.messages[pause.ts].blocks)  # the thread copy closed too
    assert "Nothing waits on you" in text_of(env.slack.homes["UAPP"])
    assert env.errors() == []


async def test_refreshed_when_a_pause_opens_and_when_it_is_answered_elsewhere(env: Env) -> None:
    await open_home(env, "UAPP")
    await open_home(env, "UOTHER")
    other_hash = env.slack.homes["UOTHER"]["hash"]
    await start(env, "mine later")
    await env.slack.until(lambda: waiting_steps(env.slack.homes["UAPP"]) == ["mine"])  # without opening it again
    assert env.slack.homes["UOTHER"]["hash"] == other_hash  # not concerned: not republished
    await env.slack.click(ui.CONFIRM, user="UAPP")  # in the thread
    await settle(env)
    await env.slack.until(lambda: waiting_steps(env.slack.homes["UAPP"]) == [])


async def test_your_runs_lists_the_runs_the_user_started_with_their_status(env: Env) -> None:
    await start(env, "mine one", user="UAPP")
    await start(env, "theirs two", user="UAPP")
    theirs = env.card()
    await start(env, "mine three", user="U1")
    await env.slack.click(ui.CONFIRM, user="UOTHER", thread_ts=theirs.ts)  # finishes the "theirs" run
    await settle(env)
    view = await open_home(env, "UAPP")
    runs = next(b["text"]["text"] for b in view["blocks"] if b["type"] == "section" and "Waiting" in b["text"]["text"])
    lines = runs.splitlines()
    assert len(lines) == 2  # not U1's run
    assert "*theirs*" in lines[0] and "Completed" in lines[0]  # newest first
    assert "*mine*" in lines[1] and "Waiting: deploy" in lines[1] and "<#C1>" in lines[1]
    assert all("/archives/C1/p" in line for line in lines)  # each links to its run card


PAGED = 20  # pauses of 8 blocks each (with what each is about): two pages of the Home


async def test_waiting_on_you_is_paged_within_100_blocks(env: Env) -> None:
    for i in range(PAGED):
        await env.slack.command(f"run mine n{i:02d}")
    await settle(env)
    await env.slack.until(lambda: sum(1 for m in env.slack.messages.values() if m.thread_ts) == PAGED)
    view = await open_home(env, "UAPP")
    assert len(view["blocks"]) <= 100
    first = waiting_steps(view)
    shown = len(first)
    assert 1 < shown < PAGED
    assert f"{PAGED} pauses wait on you" in text_of(view) and f"Showing 1-{shown}." in text_of(view)
    assert f"...and {PAGED - shown} more" in text_of(view)
    with pytest.raises(LookupError):
        env.slack.home_click_payload("UAPP", ui.HOME_PAGE, value="-1")  # no Previous at the start
    await env.slack.home_click("UAPP", ui.HOME_PAGE, value=str(shown))
    await settle(env)
    await env.slack.until(lambda: f"Showing {shown + 1}-{PAGED}." in text_of(env.slack.homes["UAPP"]))
    second = env.slack.homes["UAPP"]
    assert len(first) + len(waiting_steps(second)) == PAGED and len(second["blocks"]) <= 100
    assert "more: *Next*" not in text_of(second)
    rids = [confirm_values(v) for v in (view, second)]
    assert len(set(rids[0]) | set(rids[1])) == PAGED  # every pause once, in one window or the other
    # newest first (the runs started at once: "newest" is the order their pauses were made)
    assert env.bot.home is not None
    newest_first = [row.requirement_id for _, row in await env.bot.home.waiting_on("UAPP")]
    assert rids[0] + rids[1] == newest_first
    assert any(
        el["text"]["text"] == "Previous" and el["value"] == "0"
        for b in second["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
    )
    # a refresh keeps the person where they were
    await open_home(env, "UAPP")
    assert f"Showing {shown + 1}-{PAGED}." in text_of(env.slack.homes["UAPP"])
    assert env.errors() == []


# ----- the stand-in validates as Slack does -------------------------------------------------------------
async def test_stand_in_refuses_what_slack_refuses() -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    async with DevSlack(SECRET) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)

        async def error(method: str, **kwargs: Any) -> str:
            with pytest.raises(SlackApiError) as refused:
                await getattr(client, method)(**kwargs)
            return str(refused.value.response["error"])

        block = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}
        home = {"type": "home", "blocks": [block]}
        assert (await client.views_publish(user_id="U1", view=home))["view"]["type"] == "home"
        assert await error("views_publish", user_id="U1", view={**home, "blocks": [block] * 101}) == "invalid_blocks"
        assert await error("views_publish", user_id="U1", view={**home, "type": "modal"}) == "invalid_arguments"
        assert await error("views_publish", user_id="nobody", view=home) == "invalid_arguments"
        slack.users = {"U1"}
        assert await error("views_publish", user_id="U2", view=home) == "invalid_arguments"
        slack.home_tab_enabled = False
        assert await error("views_publish", user_id="U1", view=home) == "not_enabled"

        assert await error("conversations_open", users="U2") == "user_not_found"
        assert await error("conversations_open", users=",".join(f"U{i}" for i in range(9))) == "too_many_users"
        opened = await client.conversations_open(users="U1")
        assert opened["channel"]["id"] == (await client.conversations_open(users="U1"))["channel"]["id"]
        assert await error("chat_postMessage", channel="DNEVER", text="hi") == "channel_not_found"
        posted = await client.chat_postMessage(channel=opened["channel"]["id"], text="hi")
        link = await client.chat_getPermalink(channel=opened["channel"]["id"], message_ts=posted["ts"])
        assert link["permalink"].endswith(f"/archives/{opened['channel']['id']}/p{posted['ts'].replace('.', '')}")
        assert await error("chat_getPermalink", channel="C1", message_ts="1.2") == "message_not_found"


async def test_an_event_without_its_user_is_refused(env: Env) -> None:
    event = env.slack.event_envelope(env.slack.home_event("U1"))
    del event["event"]["user"]
    status, body, _ = await env.slack.send(json.dumps(event).encode(), "application/json")
    assert status == 400 and "app_home_opened without user" in body
    assert "U1" not in env.slack.homes


def test_both_manifests_turn_on_the_home_tab_its_event_and_dms() -> None:
    root = Path(__file__).resolve().parent.parent / "manifests"
    manifest = json.loads((root / "http.json").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert manifest["features"]["app_home"]["messages_tab_enabled"] is True  # DM'd pauses arrive there
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
    assert {"chat:write", "im:write"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    lines = [line.split("#")[0].strip() for line in (root / "socket-mode.yaml").read_text().splitlines()]
    for line in ("home_tab_enabled: true", "messages_tab_enabled: true", "- app_home_opened", "- im:write"):
        assert line in lines, line


async def test_a_click_on_an_out_of_date_home_shows_it_as_it_is_now(env: Env) -> None:
    await start(env, "group stale")
    card = env.card()
    view = await open_home(env, "UAPP")
    assert waiting_steps(view) == ["group"]
    env.slack.fail_next["views.publish"] = "internal_error"  # the refresh after the answer below is lost
    await env.slack.click(ui.CONFIRM, user="UOPS", thread_ts=card.ts)
    await settle(env)
    assert waiting_steps(env.slack.homes["UAPP"]) == ["group"]  # out of date
    await env.slack.home_click("UAPP", ui.CONFIRM)
    await settle(env)
    await env.slack.until(lambda: waiting_steps(env.slack.homes["UAPP"]) == [])
    assert "Approved by <@UOPS>" in json.dumps(
        [m for m in env.slack.thread(card.ts) if m.blocks][-1].blocks
    )  # UAPP's click changed nothing


async def test_a_group_is_asked_once_per_publish(env: Env) -> None:
    for i in range(3):
        await start(env, f"group g{i}")
    before = sum(1 for method, _a, _b in env.slack.calls if method == "usergroups.users.list")
    view = await open_home(env, "UOPS")
    assert waiting_steps(view) == ["group"] * 3
    assert sum(1 for method, _a, _b in env.slack.calls if method == "usergroups.users.list") == before + 1


async def test_the_events_url_answers_slacks_challenge(env: Env) -> None:
    """Slack verifies an Events API request URL (the HTTP manifest's event_subscriptions) with a signed
    url_verification request before it sends any event."""
    body = {"token": "t", "challenge": "c-123", "type": "url_verification"}
    status, answer, _ = await env.slack.send(json.dumps(body).encode(), "application/json")
    assert status == 200 and "c-123" in answer


async def test_home_over_socket_mode(tmp_path: Path) -> None:
    import asyncio
    import contextlib

    from bot.cli import _socket_mode
    from bot.config import Settings
    from bot.slack.app import build_bot, make_client

    db = make_db("sqlite", tmp_path)
    async with DevSlack(SECRET) as slack:
        bot = build_bot(Registry(flows(), db), make_client(slack.token, slack.api_url), None)
        settings = Settings(bot_token=slack.token, app_token="xapp-test", db=str(tmp_path / "kern.db"))
        task = asyncio.create_task(_socket_mode(bot, settings, 0.2))
        try:
            ack = await slack.socket_home_opened("UAPP")
            assert ack["envelope_id"].startswith("env-")
            await slack.until(lambda: "UAPP" in slack.homes)
            assert "Nothing waits on you" in text_of(slack.homes["UAPP"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await bot.background.idle()


async def test_a_refresh_reads_the_store_as_often_with_many_open_pauses_as_with_few(env: Env) -> None:
    """Every pause posted or closed republishes the Home of those it concerns, so a refresh must not read
    the store once (or more) per open pause: with 4 or 16 pauses open, a click that closes one (and the
    refresh of two viewers' Homes) reads the store about as often, the difference well under the 12 pauses
    between them. (Not exactly as often: how the outbox batches a click's deliveries, and whether a change
    lands during a republish, which then runs once more, depends on timing.)"""
    calls: list[str] = []
    for name in ("run_transaction", "run_hot", "load_run", "load_runs"):
        method = getattr(env.db, name)

        def counted(*args: Any, _method: Any = method, _name: str = name, **kwargs: Any) -> Any:
            calls.append(_name)
            return _method(*args, **kwargs)

        setattr(env.db, name, counted)

    async def store_reads_of_a_click(open_pauses: int) -> int:
        while sum(1 for m in env.slack.messages.values() if m.thread_ts and "Approve" in json.dumps(m.blocks)) < (
            open_pauses
        ):
            await env.slack.command("run group more")
            await settle(env)
        await open_home(env, "UAPP")
        await open_home(env, "UOPS")
        calls.clear()
        before = env.slack.homes["UOPS"]["hash"]
        await env.slack.click(ui.CONFIRM, user="UAPP")  # the newest pause, in its thread
        await settle(env)
        await env.slack.until(lambda: env.slack.homes["UOPS"]["hash"] != before)  # both Homes refreshed
        await settle(env)
        return len(calls)

    few = await store_reads_of_a_click(4)
    many = await store_reads_of_a_click(16)
    assert abs(many - few) < 16 - 4, (few, many)  # reading once per pause gave 24 and 57
    assert env.errors() == []


async def test_a_burst_of_clicks_republishes_a_viewers_home_a_few_times_not_once_per_pause(env: Env) -> None:
    """Each pause closed republishes the Home of those it concerns; a burst of them is coalesced (one
    republish at a time per person, and one more if anything changed meanwhile), and the last one shows
    the final state."""
    for i in range(8):
        await env.slack.command(f"run mine burst{i}")
    await settle(env)
    await env.slack.until(lambda: sum(1 for m in env.slack.messages.values() if m.thread_ts) == 8)
    view = await open_home(env, "UAPP")
    assert len(confirm_values(view)) == 8
    threads = [m.ts for m in env.slack.messages.values() if m.thread_ts is None]
    published = len([c for c in env.slack.calls if c[0] == "views.publish"])

    await asyncio.gather(*(env.slack.click(ui.CONFIRM, user="UAPP", thread_ts=ts) for ts in threads))
    await settle(env)
    await env.slack.until(lambda: "Nothing waits on you" in text_of(env.slack.homes["UAPP"]))
    await settle(env)
    republished = len([c for c in env.slack.calls if c[0] == "views.publish"]) - published
    assert 1 <= republished < 8, republished  # one per closed pause before
    assert "Nothing waits on you" in text_of(env.slack.homes["UAPP"])
    assert env.errors() == []


async def test_drawing_a_home_of_many_pauses_lets_other_work_run_in_between(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Home of many pauses takes tens of ms of CPU to draw, on the event loop that acks every click: the
    draw gives the loop back every few pauses, so an ack never waits behind a whole Home."""
    for i in range(25):
        await env.slack.command(f"run mine many{i}")
    await settle(env)
    await env.slack.until(lambda: sum(1 for m in env.slack.messages.values() if m.thread_ts) == 25)

    ticks = 0

    async def other_work() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    presenter = env.bot.home.presenter
    draw = presenter.pause_view
    ticks_at_each_draw: list[int] = []

    def drawn(*args: Any, **kwargs: Any) -> Any:
        ticks_at_each_draw.append(ticks)
        return draw(*args, **kwargs)

    monkeypatch.setattr(presenter, "pause_view", drawn)
    ticker = asyncio.create_task(other_work())
    try:
        await env.bot.home.show("UAPP")
    finally:
        ticker.cancel()
    assert len(ticks_at_each_draw) > 2  # the pauses that fit, and one more to find they are all that fit
    assert ticks_at_each_draw == sorted(set(ticks_at_each_draw)), ticks_at_each_draw  # other work between each
    assert len(confirm_values(env.slack.homes["UAPP"])) >= 1  # and the Home was published
    assert env.errors() == []


# ----- every Home that listed a pause is redrawn when it is decided (issue 27, defect 2) ---------------------
# People of this test's own (the PostgreSQL tables, Home viewers included, are shared by test runs).
P = {name: f"U{name}{uuid.uuid4().hex[:8].upper()}" for name in ("STARTER", "APP", "LEAD", "LEADTWO")}


@pytest.fixture
async def escalating(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    leads = Approvers(users=(P["LEAD"], P["LEADTWO"]))
    entry = BotWorkflow(
        confirm("escalating"),
        name="escalating",
        approvers=Approvers(users=(P["APP"],), escalate_after=60, escalate_to=leads),
    )
    async with bot_env(Registry([entry], db), db) as env:
        yield env


async def test_an_escalated_pause_approved_from_a_leads_home_leaves_no_home_listing_it(escalating: Env) -> None:
    env = escalating
    t0 = time.time()
    await start(env, "escalating now", user=P["STARTER"])
    for user in (P["APP"], P["LEAD"], P["LEADTWO"], P["STARTER"]):
        await open_home(env, user)
    assert waiting_steps(env.slack.homes[P["APP"]]) == ["escalating"]
    assert waiting_steps(env.slack.homes[P["LEAD"]]) == []  # not theirs yet
    await sweep_once(env.bot.runner, env.bot.registry, now=t0 + 61)  # it escalates to the leads
    await settle(env)
    for lead in (P["LEAD"], P["LEADTWO"]):  # listed on their Homes without opening them again
        await env.slack.until(lambda lead=lead: waiting_steps(env.slack.homes[lead]) == ["escalating"])

    status, _, _ = await env.slack.home_click(P["LEAD"], ui.CONFIRM)  # approved from a lead's Home
    assert status == 200
    await settle(env)
    await env.slack.until(
        lambda: f"Approved by <@{P['LEAD']}>" in json.dumps([m.blocks for m in env.slack.thread(env.card().ts)])
    )
    for user in (
        P["LEAD"],
        P["LEADTWO"],
        P["APP"],
    ):  # every Home that listed it is redrawn: nothing waits, no live buttons
        await env.slack.until(lambda user=user: waiting_steps(env.slack.homes[user]) == [])
        assert confirm_values(env.slack.homes[user]) == []
    await env.slack.until(lambda: "Completed" in text_of(env.slack.homes[P["STARTER"]]))  # the starter's "Your runs"
    assert env.errors() == []
