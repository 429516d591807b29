"""Who may start, answer, cancel and read a run: checked on every command, button and form; a refusal is
private and changes nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow, Registry
from bot.store import Card
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
    assert f"run `{run_id}`: paused, waiting at deploy" in body
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
