"""The bot with one unreadable run among others (issue 24, item 23), through the real endpoint and the Slack
stand-in, on SQLite and PostgreSQL: everyone's App Home still publishes (without that run's pause, and with
a line saying it cannot be read under "Your runs"), `/kern status` of it answers a line of text, its
deadline is skipped while the other run's fires, a takeover sweep skips it too, and a click on its pause
is told why. The run's row is left as it was."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.runs.sweeper import sweep_once
from bot.store.tables import home_viewers
from kern._sync import run_sync
from tests import corrupt
from tests.conftest import make_db
from tests.test_bot_e2e import SECRET, Env, registry_for, run, run_id_of_card, settle, start_bot
from tests.test_bot_home import open_home, text_of
from tests.test_poison_rows import raw

USERS = ("U1", "U2")


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    """The example bot, as tests/test_bot_e2e.py runs it, leaving no one registered as looking at their
    Home: on the shared PostgreSQL, a viewer left behind would have their Home republished (with this
    test's runs, whose messages are gone) by other tests' pauses."""
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        bot, runner, endpoint = await start_bot(slack, registry_for(db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await runner.cleanup()
            c = home_viewers.c
            await db.run_transaction(lambda conn: conn.execute(home_viewers.delete().where(c.user_id.in_(USERS))))


async def two_timed_runs(env: Env) -> tuple[str, str]:
    await run(env, "timed first")
    bad = await run_id_of_card(env)
    await run(env, "timed second")
    good = await run_id_of_card(env)
    assert bad != good
    return bad, good


def pause_buttons(env: Env) -> dict[str, tuple[Any, dict[str, Any], str]]:
    """The Approve button of each pause message (message, button, block id), by the requirement id it carries."""
    found = {}
    for message in env.slack.messages.values():
        for block in message.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id", "").startswith(ui.CONFIRM):
                    found[element["value"]] = (message, element, block.get("block_id", ""))
    return found


@pytest.mark.parametrize("damage", list(corrupt.DAMAGES))
async def test_one_unreadable_run_does_not_stop_the_bot(
    env: Env, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad, good = await two_timed_runs(env)
    bad_pause, good_pause = (pause_of(env, r) for r in (bad, good))
    damage_it, _ = corrupt.DAMAGES[damage]
    damage_it(env.db, bad)
    before = raw(env.db, bad)

    # everyone's Home still publishes: the good run's pause is there, the bad one's is not (on the shared
    # PostgreSQL, other tests' open pauses may be there too)
    view = await open_home(env, "U2")
    shown = [
        el["value"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for el in b["elements"]
        if el["action_id"].startswith(ui.CONFIRM)
    ]
    assert good_pause in shown and bad_pause not in shown, text_of(view)
    starter = await open_home(env, "U1")
    assert bad[:12] in text_of(starter) and "Cannot be read" in text_of(starter)
    assert good[:12] in text_of(starter)

    # /kern status of it: a line of text, with what is wrong
    status, body, _ = await env.slack.command(f"status {bad}")
    assert status == 200 and "cannot be read" in json.loads(body)["text"], body
    status, body, _ = await env.slack.command(f"status {good}")
    assert status == 200 and "waiting at rollout" in json.loads(body)["text"]

    # a click on its pause message is told why, and changes nothing
    await env.slack.click(ui.CONFIRM, stale=pause_buttons(env)[bad_pause], user="U2")
    await settle(env)
    assert "cannot be read" in env.slack.ephemeral[-1]["text"]

    # the deadlines: the bad one is skipped (logged once), the good one fires
    later = time.time() + 120
    good_message = pause_buttons(env)[good_pause][0].ts
    with caplog.at_level(logging.ERROR):
        moved = await sweep_once(env.bot.runner, env.bot.registry, now=later)
        await settle(env)
        assert moved == 1
        decided = env.slack.messages[good_message].blocks
        assert decided[0]["text"]["text"].startswith(":alarm_clock: *Timed out: approved automatically*")
        assert await sweep_once(env.bot.runner, env.bot.registry, now=later) == 0
    assert len([r for r in caplog.records if bad in r.getMessage() and "quarantined" in r.getMessage()]) == 1
    good_run = env.bot.registry.by_workflow_name(run_workflow(env, good))
    assert good_run is not None and (await good_run.workflow.aget_run(good)).status.value == "COMPLETED"
    assert raw(env.db, bad) == before
    # (on the shared PostgreSQL, "Your runs" of U1 lists other tests' runs too, whose messages are not here)
    assert [e for e in env.errors() if e[0] != "chat.getPermalink"] == []


def pause_of(env: Env, run_id: str) -> str:
    return str(run_sync(env.db.load_run(run_id)).output["step_requirements"][-1]["requirement_id"])


def run_workflow(env: Env, run_id: str) -> str:
    return str(run_sync(env.db.load_run(run_id)).workflow_name)


async def test_a_takeover_sweep_skips_an_unreadable_orphan(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    bad, good = await two_timed_runs(env)
    for run_id in (bad, good):  # their process died mid-drive: RUNNING, lease expired
        corrupt.set_columns(env.db, run_id, status="RUNNING", lease_until=0.0, deadline=None)
        corrupt.edit_output(env.db, run_id, lambda o: o.update(status="RUNNING"))
    corrupt.set_columns(env.db, bad, journal=[1, 2])
    before = raw(env.db, bad)
    with caplog.at_level(logging.ERROR):
        assert await sweep_once(env.bot.runner, env.bot.registry) == 2  # both looked at: takeovers go on behind
        await settle(env)
        assert await sweep_once(env.bot.runner, env.bot.registry) == 0  # the bad one is quarantined
        await settle(env)
    assert [r for r in caplog.records if "background work failed" in r.getMessage()] == []
    assert raw(env.db, bad) == before and bad in env.db.quarantine.held()
    entry = env.bot.registry.by_workflow_name(run_workflow(env, good))
    assert entry is not None and (await entry.workflow.aget_run(good)).is_paused  # taken over: it waits again
