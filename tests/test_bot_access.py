"""Who may start, answer, cancel and read a run: checked on every command, button and form; a refusal is
private and changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Collection
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.blocks.text import unseen
from bot.devslack import DevSlack
from bot.devslack.people import dm_id
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow, Registry
from bot.store import Card
from bot.store.migrations import BOT
from bot.store.tables import home_viewers
from kern.db.base import BaseDb
from kern.run.base import RunStatus
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, Env, run_id_of_card, settle, start_bot

LONG = "result line\n" * 400  # long enough for the card's "View full output" button


def guarded() -> list[BotWorkflow]:
    steps = [Step(name="deploy", executor=lambda s: LONG, requires_confirmation=True)]
    return [
        BotWorkflow(
            Workflow(name=unique("guarded"), steps=steps), name="guarded", approvers=Approvers(users=("UAPP",))
        ),
        BotWorkflow(
            Workflow(name=unique("restricted"), steps=[Step(name="s", executor=lambda s: "ok")]),
            name="restricted",
            starters=Audience(users=("U1",), groups=("SOPS",)),
        ),
        # anyone may answer (the default rules)
        BotWorkflow(
            Workflow(
                name=unique("open"), steps=[Step(name="deploy", executor=lambda s: LONG, requires_confirmation=True)]
            ),
            name="open",
        ),
        BotWorkflow(
            Workflow(
                name=unique("review"),
                steps=[Step(name="draft", executor=lambda s: "a draft", requires_output_review=True)],
            ),
            name="review",
        ),
        BotWorkflow(
            Workflow(
                name=unique("crowd"),
                steps=[Step(name="ship", executor=lambda s: "shipped", requires_confirmation=True)],
            ),
            name="crowd",
            approvers=Approvers(channel_members=True),
        ),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        slack.members["C1"] = ["U1", "UAPP", "UREADER"]
        slack.groups["SOPS"] = ["UOPS"]
        bot, server, endpoint = await start_bot(slack, Registry(guarded(), db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()
            await forget_home_viewers(db, slack.homes)


async def forget_home_viewers(db: BaseDb, users: Collection[str]) -> None:
    """Forget who opened their App Home here: the shared PostgreSQL database would otherwise republish
    their Home (and its "Your runs", of other tests' cards) in every later test."""
    if users:
        await db.run_transaction(
            lambda conn: conn.execute(home_viewers.delete().where(home_viewers.c.user_id.in_(list(users)))), tables=BOT
        )


async def paused_run(env: Env) -> str:
    await env.slack.command("run guarded", user="U1")
    await settle(env)
    await env.slack.until(lambda: "Waiting: deploy" in json.dumps(env.card().blocks))
    return await run_id_of_card(env)


async def test_outsiders_cannot_cancel_or_read(env: Env) -> None:
    run_id = await paused_run(env)
    entry = env.bot.registry.get("guarded")
    assert entry is not None
    _, body, _ = await env.slack.command(f"status {run_id}", user="UOUT")
    assert "that you may see" in body and "deploy" not in body
    _, body, _ = await env.slack.command(f"status {run_id}", user="UREADER")  # a channel member may read
    assert "waiting at deploy" in body
    await env.slack.command(f"cancel {run_id}", user="UOUT")
    await settle(env)
    # one who may not see the run is not told it exists (not even refused to cancel it)
    assert env.slack.ephemeral[-1]["user"] == "UOUT" and "that you may see" in env.slack.ephemeral[-1]["text"]
    await env.slack.command(f"cancel {run_id}", user="UREADER")  # reading is not cancelling
    await settle(env)
    assert "may cancel this run" in env.slack.ephemeral[-1]["text"]
    assert (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED  # nothing changed
    await env.slack.click(ui.CONFIRM, user="UREADER")  # nor answering
    await settle(env)
    assert "Only <@UAPP> may answer this." in env.slack.ephemeral[-1]["text"]
    assert (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
    await env.slack.click(ui.CONFIRM, user="UAPP")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    # the card's full output: readers see it, outsiders get a private refusal
    await env.slack.click(ui.VIEW_FULL, user="UOUT")
    await settle(env)
    refused = env.slack.last_view()
    assert (
        refused["user"] == "UOUT"
        and "that you may see" in json.dumps(refused)
        and "result line" not in json.dumps(refused)
    )
    await env.slack.click(ui.VIEW_FULL, user="UREADER")
    await settle(env)
    assert "result line" in json.dumps(env.slack.last_view())


async def test_the_starter_and_approvers_may_cancel(env: Env) -> None:
    entry = env.bot.registry.get("guarded")
    assert entry is not None
    for who in ("U1", "UAPP"):
        run_id = await paused_run(env)
        await env.slack.command(f"cancel {run_id}", user=who)
        await env.slack.until(lambda: "Cancelled by" in json.dumps(env.card().blocks))
        assert (await entry.workflow.aget_run(run_id)).status == RunStatus.CANCELLED
        await asyncio.sleep(0)


async def test_who_may_start(env: Env) -> None:
    _, body, _ = await env.slack.command("run restricted", user="UOUT")
    assert "may start `restricted`" in body
    await settle(env)
    assert not [m for m in env.slack.messages.values() if "restricted" in m.text]  # no run, no card
    for user in ("U1", "UOPS"):  # listed, or in a listed group
        _, body, _ = await env.slack.command("run restricted", user=user)
        assert "Starting" in body
    await settle(env)
    await env.slack.until(lambda: len([m for m in env.slack.messages.values() if m.thread_ts is None]) == 2)


async def test_the_short_id_on_the_card_and_its_buttons(env: Env) -> None:
    run_id = await paused_run(env)
    short = run_id[:12]
    assert f"run `{short}`" in json.dumps(env.card().blocks)  # what people see is what they can type
    _, body, _ = await env.slack.command(f"status {short}", user="U1")
    assert f"run `{short}`: paused, waiting at deploy" in body  # the id as the card shows it
    _, body, _ = await env.slack.command(f"status {run_id[:5]}", user="U1")
    assert "at least 6 characters" in body
    # the card's Status button answers privately, by the same rules as /kern status
    await env.slack.click(ui.RUN_STATUS, user="UOUT")
    await settle(env)
    assert env.slack.ephemeral[-1]["user"] == "UOUT" and "that you may see" in env.slack.ephemeral[-1]["text"]
    await env.slack.click(ui.RUN_STATUS, user="UREADER")
    await settle(env)
    assert "waiting at deploy" in env.slack.ephemeral[-1]["text"]
    # ...and its Cancel button, by the rules of /kern cancel
    await env.slack.click(ui.RUN_CANCEL, user="UREADER")
    await settle(env)
    assert "may cancel this run" in env.slack.ephemeral[-1]["text"]
    entry = env.bot.registry.get("guarded")
    assert entry is not None and (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
    await env.slack.click(ui.RUN_CANCEL, user="U1")
    await env.slack.until(lambda: "Cancelled by" in json.dumps(env.card().blocks))
    assert ui.RUN_CANCEL not in json.dumps(env.card().blocks)  # a finished card has no run buttons


async def test_a_prefix_shared_by_several_runs_lists_them(env: Env) -> None:
    stem = uuid.uuid4().hex[:10]
    for tail in ("aa", "bb"):  # two cards whose ids share their first 10 characters
        await env.bot.store.save_card(
            Card(run_id=stem + tail + "0" * 20, workflow="guarded", channel="C1", ts=tail, started_by="U1")
        )
    _, body, _ = await env.slack.command(f"status {stem}", user="U1")
    assert "matches several runs" in body and f"`{stem}aa`" in body and f"`{stem}bb`" in body
    _, body, _ = await env.slack.command(f"cancel {stem[:8]}", user="U1")
    await settle(env)
    assert "matches several runs" in env.slack.ephemeral[-1]["text"]


# ----- issue 24: reads (7), the shortcut (6), private runs (8), members past Slack's first page (9) ------------
def said(body: str) -> str:
    """A command's private answer (its ack's text)."""
    return str(json.loads(body)["text"])


async def paused(env: Env, workflow: str, user: str = "U1", channel: str = "C1") -> str:
    before = len([m for m in env.slack.messages.values() if m.thread_ts is None])
    await env.slack.command(f"run {workflow}", user=user, channel=channel)
    await settle(env)
    await env.slack.until(lambda: len([m for m in env.slack.messages.values() if m.thread_ts is None]) > before)
    await env.slack.until(lambda: "Waiting:" in json.dumps(env.card().blocks))
    return await run_id_of_card(env)


async def test_open_approvers_do_not_make_a_run_readable_by_anyone(env: Env) -> None:
    """Anyone may answer `open`'s pauses, yet its readers stay the run's channel's members, its starter and
    its approvers: an outsider with six characters of its id, in another channel, learns nothing of it."""
    run_id = await paused(env, "open")
    prefix = run_id[:6]
    _, body, _ = await env.slack.command(f"status {prefix}", user="UOUT", channel="C9")
    assert said(body) == unseen(prefix) == f"No run `{prefix}` that you may see."
    _, nothing, _ = await env.slack.command("status 0f0f0f0f", user="UOUT", channel="C9")
    assert said(nothing) == unseen("0f0f0f0f")  # the same line as for a run that does not exist
    _, body, _ = await env.slack.command(f"status {prefix}", user="UREADER")  # a member of the run's channel
    assert "waiting at deploy" in body
    # (cancelling stays with the starter and those who may answer: here anyone, as answering from the Home)
    entry = env.bot.registry.get("open")
    assert entry is not None and (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
    await env.slack.click(ui.CONFIRM, user="UREADER")  # anyone may answer it
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    await env.slack.click(ui.VIEW_FULL, user="UOUT")
    await settle(env)
    refused = json.dumps(env.slack.last_view())
    assert "that you may see" in refused and "result line" not in refused
    await env.slack.click(ui.VIEW_FULL, user="UREADER")
    await settle(env)
    assert "result line" in json.dumps(env.slack.last_view())
    # a prefix two runs share: only those the person may see are considered (here none)
    stem = uuid.uuid4().hex[:10]
    for tail, channel in (("aa", "C1"), ("bb", "C2")):
        await env.bot.store.save_card(
            Card(run_id=stem + tail + "0" * 20, workflow="open", channel=channel, ts=tail, started_by="U1")
        )
    _, body, _ = await env.slack.command(f"status {stem}", user="UOUT", channel="C9")
    assert said(body) == unseen(stem)


async def test_kern_list_shows_only_what_the_person_may_start(env: Env) -> None:
    _, body, _ = await env.slack.command("list", user="UOUT")
    assert "`guarded`" in body and "`restricted`" not in body
    _, body, _ = await env.slack.command("list", user="U1")
    assert "`restricted`" in body


async def test_the_shortcut_posts_only_where_its_person_is_a_member(env: Env) -> None:
    """The picker's channel is any channel Slack lists; the run card goes there only if Slack says the person
    is a member of it, checked when they pick it and again when they submit the form."""
    env.slack.members["C7"] = ["UOTHER"]
    posted = len([c for c in env.slack.calls if c[0] == "chat.postMessage"])
    await env.slack.shortcut(ui.RUN_SHORTCUT, user="U1")
    await settle(env)
    picker = env.slack.last_view()
    pick = {
        ui.WORKFLOW_BLOCK: {"v": {"type": "static_select", "selected_option": {"value": "restricted"}}},
        ui.CHANNEL_BLOCK: {"v": {"type": "conversations_select", "selected_conversation": "C7"}},
    }
    _, body, _ = await env.slack.submit(picker["id"], pick, user="U1")
    assert json.loads(body)["errors"] == {
        ui.CHANNEL_BLOCK: "You are not a member of that channel: pick a channel you are in."
    }
    # a channel they are in: the form; then they leave it before submitting: refused, nothing started
    pick[ui.CHANNEL_BLOCK]["v"]["selected_conversation"] = "C1"
    await env.slack.submit(picker["id"], pick, user="U1")
    form = env.slack.views[picker["id"]]
    assert form["callback_id"] == ui.V_START
    env.slack.members["C1"].remove("U1")
    first = next(b["block_id"] for b in form["blocks"] if b["type"] == "input")
    _, body, _ = await env.slack.submit(form["id"], {}, user="U1")
    assert json.loads(body)["errors"] == {first: "You are not a member of that channel: pick a channel you are in."}
    await settle(env)
    assert len([c for c in env.slack.calls if c[0] == "chat.postMessage"]) == posted  # no card anywhere
    env.slack.members["C1"].append("U1")
    _, body, _ = await env.slack.submit(form["id"], {}, user="U1")
    assert body == ""
    await env.slack.until(
        lambda: any(c[0] == "chat.postMessage" and c[1].get("channel") == "C1" for c in env.slack.calls[posted:])
    )


async def test_members_past_slacks_first_page_may_answer(env: Env) -> None:
    """Slack pages conversations.members (100 by default; the bot asks 200 at a time): the rule follows
    `next_cursor` to the end, so member #121 of a 150-member channel, and #421 of a 450-member one, may
    answer."""
    for size, member in ((150, 121), (450, 421)):
        people = [f"UM{i:03d}" for i in range(1, size + 1)]
        env.slack.members[f"C{size}"] = people
        await paused(env, "crowd", user=people[0], channel=f"C{size}")
        await env.slack.click(ui.CONFIRM, user="UNOTIN")
        await settle(env)
        assert "members of this channel may answer" in env.slack.ephemeral[-1]["text"]
        await env.slack.click(ui.CONFIRM, user=people[member - 1])
        await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    pages = [a for m, a, _ in env.slack.calls if m == "conversations.members" and a.get("channel") == "C450"]
    assert any(a.get("cursor") for a in pages)  # it asked past the first page


async def test_the_stand_in_pages_members_as_slack_does() -> None:
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    async with DevSlack(SECRET) as slack:
        slack.members["C1"] = [f"U{i:03d}" for i in range(150)]
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        first = await client.conversations_members(channel="C1")
        assert len(first["members"]) == 100 and first["response_metadata"]["next_cursor"]
        rest = await client.conversations_members(channel="C1", cursor=first["response_metadata"]["next_cursor"])
        assert first["members"] + rest["members"] == slack.members["C1"]
        assert rest["response_metadata"]["next_cursor"] == ""
        assert len((await client.conversations_members(channel="C1", limit=200))["members"]) == 150
        for bad in ({"cursor": "not-a-cursor"}, {"limit": 0}):
            with pytest.raises(SlackApiError) as refused:
                await client.conversations_members(channel="C1", **bad)
            assert refused.value.response["error"] in ("invalid_cursor", "invalid_limit")


async def test_a_run_started_in_a_dm_is_private_to_it(env: Env) -> None:
    """Anyone may answer `review` and `open`; started in U1's DM with the bot, their runs are U1's alone:
    not in anyone else's App Home, and nobody else answers, cancels or reads them, by any path (button,
    form, Home, command). Only people a rule names reach such a run (`guarded`: UAPP)."""
    dm = env.slack.dms.setdefault("U1", dm_id("U1"))
    run_id = await paused(env, "review", channel=dm)
    entry = env.bot.registry.get("review")
    assert entry is not None
    for outsider in ("UREADER", "UOUT"):
        await env.slack.click(ui.CONFIRM, user=outsider)  # the button
        await settle(env)
        assert "may answer" in env.slack.ephemeral[-1]["text"]
        await env.slack.click(ui.OPEN_EDIT, user=outsider)  # the form
        await settle(env)
        assert "Not allowed" in json.dumps(env.slack.last_view()) and "a draft" not in json.dumps(env.slack.last_view())
        _, body, _ = await env.slack.command(f"status {run_id[:8]}", user=outsider)  # the command
        assert said(body) == unseen(run_id[:8])
        await env.slack.command(f"cancel {run_id[:8]}", user=outsider)
        await settle(env)
        assert env.slack.ephemeral[-1]["text"] == unseen(run_id[:8])
        await env.slack.click(ui.RUN_CANCEL, user=outsider)  # the card's Cancel
        await settle(env)
        assert (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
        await env.slack.open_home(outsider)  # the Home
        await settle(env)
        await env.slack.until(lambda o=outsider: o in env.slack.homes)
        assert "Nothing waits on you" in json.dumps(env.slack.homes[outsider]["blocks"])
        payload = env.slack.click_payload(ui.CONFIRM, user=outsider)  # a click as if from their Home
        payload["container"] = {"type": "view", "view_id": env.slack.homes[outsider]["id"]}
        await env.slack._interaction(payload)
        await settle(env)
        assert (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
    await env.slack.open_home("U1")
    await settle(env)
    await env.slack.until(lambda: "1 pause wait" in json.dumps(env.slack.homes.get("U1", {}).get("blocks", [])))
    _, body, _ = await env.slack.command(f"status {run_id[:8]}", user="U1")
    assert "waiting at draft" in body
    await env.slack.click(ui.CONFIRM, user="U1")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
    # a rule that names someone reaches a private run: UAPP answers `guarded` started in the DM
    guarded_run = await paused(env, "guarded", channel=dm)
    await env.slack.open_home("UAPP")
    await settle(env)
    await env.slack.until(lambda: guarded_run[:12] in json.dumps(env.slack.homes.get("UAPP", {}).get("blocks", [])))
    await env.slack.click(ui.CONFIRM, user="UAPP")
    await env.slack.until(lambda: "Completed" in json.dumps(env.card().blocks))
