"""kern-bot end to end: signed HTTP requests to the real endpoint, a local Slack stand-in that validates
Block Kit, every pause kind from slash command to final message, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.examples import example_workflows
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.background import MAX_DEFER, QUIET
from bot.runs.sweeper import sweep_once
from bot.slack.app import KernBot, build_bot, make_client
from bot.slack.ops import OPS_URL
from bot.slack.server import create_web_app
from kern.db.base import BaseDb
from kern.workflow import Router, Step, UserInputField, Workflow
from tests.conftest import make_db, unique

SECRET = "test-signing-secret"


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    db: BaseDb

    def card(self) -> Any:
        cards = [m for m in self.slack.messages.values() if m.thread_ts is None]
        return cards[-1]

    def card_text(self) -> str:
        return json.dumps(self.card().blocks)

    def errors(self) -> list[Any]:
        return [(m, b) for m, _a, b in self.slack.calls if not b.get("ok")]


def registry_for(db: BaseDb, extra: list[BotWorkflow] | None = None) -> Registry:
    entries = example_workflows() + (extra or [])
    for entry in entries:  # unique workflow names keep test runs apart in the shared PostgreSQL tables
        entry.workflow.name = unique(entry.name)
    return Registry(entries, db)


OPS_URLS: dict[str, str] = {}  # a test bot's /slack/events -> its operations server (/health, /metrics)


async def start_bot(slack: DevSlack, registry: Registry) -> tuple[KernBot, web.AppRunner, str]:
    bot = build_bot(registry, make_client(slack.token, slack.api_url), SECRET)
    runner = web.AppRunner(create_web_app(bot, sweep_interval=0, ops=("127.0.0.1", 0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    endpoint = f"http://127.0.0.1:{port}/slack/events"
    OPS_URLS[endpoint] = runner.app[OPS_URL]
    return bot, runner, endpoint


@contextlib.asynccontextmanager
async def bot_env(registry: Registry, db: BaseDb) -> AsyncIterator[Env]:
    """A bot serving `registry` on a real endpoint behind the stand-in; its background work waited for and
    its server stopped after."""
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, registry)
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    extra = getattr(request, "param", None)
    async with bot_env(registry_for(db, extra), db) as env:
        yield env


async def run_id_of_card(env: Env) -> str:
    """The run id behind the newest run card (the card shows only its first 12 characters)."""
    message = env.card()
    card = await env.bot.store.card_at(message.channel, message.ts, team="")  # token mode: team '' (as before)
    assert card is not None
    return card.run_id


async def settle(env: Env) -> None:
    await asyncio.sleep(0.05)
    await env.bot.background.idle(15)


async def run(env: Env, text: str, user: str = "U1") -> Any:
    status, body, took = await env.slack.command(f"run {text}", user=user)
    assert status == 200 and took < 1.0, (status, body)
    await settle(env)
    return env.card()


async def open_reject(env: Env, user: str = "U1", thread_ts: str | None = None) -> dict[str, Any]:
    """Click a confirmation's "Reject…" (the newest, or the newest in `thread_ts`): the form it opens."""
    await env.slack.click(ui.OPEN_FEEDBACK, user=user, thread_ts=thread_ts)
    await settle(env)
    view = env.slack.last_view()
    assert view["callback_id"] == ui.V_FEEDBACK and view.get("user", user) == user, view
    return view


async def reject(env: Env, user: str = "U1", reason: str | None = None, thread_ts: str | None = None) -> None:
    """Reject a confirmation as a person does: "Reject…", then the form with its optional reason."""
    view = await open_reject(env, user, thread_ts)
    status, body, _took = await env.slack.submit(
        view["id"], {"text": {"v": {"type": "plain_text_input", "value": reason}}}, user=user
    )
    assert status == 200 and body == "", body
    await settle(env)


# ----- requests and commands ------------------------------------------------------------------------
async def test_signatures_are_checked(env: Env) -> None:
    status, _, _ = await env.slack.send(
        b"command=/kern&text=help", "application/x-www-form-urlencoded", signature="v0=forged"
    )
    assert status == 401
    status, _, _ = await env.slack.send(
        b"command=/kern&text=help", "application/x-www-form-urlencoded", timestamp=int(time.time()) - 400
    )
    assert status == 401


async def test_help_list_and_unknown(env: Env) -> None:
    status, body, _ = await env.slack.command("list")
    assert status == 200 and "`deploy`" in body and "`triage`" in body
    _, body, _ = await env.slack.command("frobnicate")
    assert "I don't know `frobnicate`" in body and "Usage" in body
    _, body, _ = await env.slack.command("run nope")
    assert "Unknown workflow `nope`" in body
    _, body, _ = await env.slack.command("status 123")
    assert "at least 6 characters" in body
    _, body, _ = await env.slack.command("status 1234567")
    assert "No run `1234567`" in body


# ----- every pause kind ----------------------------------------------------------------------------
async def test_confirmation_approve(env: Env) -> None:
    card = await run(env, "deploy api")
    pause = env.slack.thread(card.ts)[-1]
    assert "Deploy to production?" in json.dumps(pause.blocks)
    assert "*Service*\\napi" in json.dumps(pause.blocks)  # the example's context renderer (`make run` shows it)
    message, _, block_id = env.slack.find(ui.CONFIRM)
    actions = next(b for b in message.blocks if b.get("block_id") == block_id)
    assert [e["text"]["text"] for e in actions["elements"]] == ["Approve", "Approve with comment…", "Reject…"]
    form = await open_reject(env, "U2")  # on_reject=cancel: the form says so before anything happens
    assert ":warning: *Rejecting cancels the run.*" in json.dumps(form["blocks"])
    assert form["submit"]["text"] == "Reject and cancel" and form["blocks"][-1]["optional"] is True
    status, _, took = await env.slack.click(ui.CONFIRM, user="U2")
    assert status == 200 and took < 1.0
    await settle(env)
    decided = env.slack.messages[pause.ts]
    text = json.dumps(decided.blocks)
    assert decided.blocks[0]["text"]["text"].startswith(":white_check_mark: *Approved* ·")  # the outcome heads it
    assert "Deploy to production?" in text and "Approved by <@U2> at <!date^" in text  # the question, who, when
    assert not any(b["type"] == "actions" for b in decided.blocks)  # controls gone
    assert "Completed" in env.card_text() and "Deployed api" in env.card_text()
    assert env.errors() == []


async def test_reject_cancels_and_double_click_loses(env: Env) -> None:
    await run(env, "deploy web")
    old_card = env.slack.find(ui.CONFIRM)
    form = await open_reject(env, "U2")
    no_reason = {"text": {"v": {"type": "plain_text_input", "value": None}}}
    clicks = await asyncio.gather(
        env.slack.submit(form["id"], no_reason, user="U2"), env.slack.click(ui.CONFIRM, user="U3")
    )
    assert all(c[0] == 200 for c in clicks)
    await settle(env)
    text = env.card_text()
    winner_rejected = "Cancelled" in text
    assert winner_rejected or "Completed" in text
    told = [e for e in env.slack.ephemeral if e["text"].startswith("Already")]
    assert len(told) == 1 and told[0]["user"] == ("U3" if winner_rejected else "U2")
    assert told[0]["text"] == ("Already rejected by <@U2>." if winner_rejected else "Already approved by <@U3>.")
    # a click on the finished card changes nothing and says so
    await env.slack.click(ui.CONFIRM, user="U4", stale=old_card)
    await settle(env)
    assert env.slack.ephemeral[-1]["user"] == "U4" and env.slack.ephemeral[-1]["text"].startswith("Already")


async def test_user_input_modal_with_inline_errors(env: Env) -> None:
    await run(env, "report")
    status, _, _ = await env.slack.click(ui.OPEN_INPUT)
    assert status == 200
    await settle(env)
    view = env.slack.last_view()
    labels = [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"]
    assert labels == ["Title", "Format", "Pages", "Include charts"]  # field names, humanized
    assert view["title"]["text"] == "Report" and view["close"]["text"] == "Cancel"  # titled by its step
    kinds = [b["element"]["type"] for b in view["blocks"] if b["type"] == "input"]
    assert kinds == ["plain_text_input", "static_select", "number_input", "checkboxes"]
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": None}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "1"}}},
        "f2": {"v": {"type": "number_input", "value": "2.5"}},
        "f3": {"v": {"type": "checkboxes", "selected_options": [{"value": "true"}]}},
    }
    status, body, _ = await env.slack.submit(view["id"], values)
    errors = json.loads(body)
    assert errors["response_action"] == "errors"
    assert errors["errors"] == {"f0": "Title is required.", "f2": "Pages: expected int, got '2.5'"}
    values["f0"]["v"]["value"] = "Q4 <numbers> & *stars*"
    values["f2"]["v"]["value"] = "3"
    status, body, _ = await env.slack.submit(view["id"], values)
    assert status == 200 and body == ""
    await settle(env)
    assert "```Report 'Q4 &lt;numbers&gt; &amp; *stars*' as csv, 3 page(s), with charts.```" in env.card_text()
    assert env.errors() == []


async def test_output_review_feedback_edit(env: Env) -> None:
    await run(env, "newsletter the new engine")
    await env.slack.click(ui.OPEN_FEEDBACK)
    await settle(env)
    await env.slack.submit(
        env.slack.last_view()["id"], {"text": {"v": {"type": "plain_text_input", "value": "mention the bot"}}}
    )
    await settle(env)
    revised = json.dumps(list(env.slack.messages.values())[-1].blocks)
    assert "Revised after feedback: mention the bot" in revised
    await env.slack.click(ui.OPEN_EDIT)
    await settle(env)
    edit_view = env.slack.last_view()
    assert "mention the bot" in edit_view["blocks"][-1]["element"]["initial_value"]
    await env.slack.submit(edit_view["id"], {"text": {"v": {"type": "plain_text_input", "value": "Final text"}}})
    await settle(env)
    assert "Completed" in env.card_text() and "Final text" in env.card_text()


async def test_route_selection(env: Env) -> None:
    card = await run(env, "triage login broken")
    await env.slack.click(ui.ROUTE_GO)  # nothing chosen yet
    await settle(env)
    assert "Choose a route first" in env.slack.ephemeral[-1]["text"]
    state = {ui.ROUTE_BLOCK: {ui.ROUTE_PICK: {"type": "static_select", "selected_option": {"value": "0"}}}}
    await env.slack.click(ui.ROUTE_GO, state=state, thread_ts=card.ts)
    await settle(env)
    assert "Handled 'login broken' as bug" in env.card_text()


async def test_iteration_review_condition_error_and_groups(env: Env) -> None:
    await run(env, "refine idea")
    assert "Approving ends the loop" in json.dumps(env.slack.find(ui.CONFIRM)[0].blocks)
    await env.slack.click(ui.OPEN_FEEDBACK)  # a rejected iteration: another one runs
    await settle(env)
    await env.slack.submit(env.slack.last_view()["id"], {"text": {"v": {"type": "plain_text_input", "value": "more"}}})
    await settle(env)
    await env.slack.click(ui.CONFIRM)  # an approved iteration ends the loop with its output
    await settle(env)
    assert "idea +refined +refined" in env.card_text() and "+refined +refined +refined" not in env.card_text()

    await run(env, "analysis")
    message, _, block_id = env.slack.find(ui.CONFIRM)
    actions = next(b for b in message.blocks if b.get("block_id") == block_id)
    buttons = [e["text"]["text"] for e in actions["elements"]]
    assert buttons == ["Yes: run detailed", "No: run quick"]
    await env.slack.click(ui.REJECT)
    await settle(env)
    assert "Quick summary done" in env.card_text()

    await run(env, "flaky")
    assert "upstream timed out" in json.dumps(env.slack.find(ui.RETRY)[0].blocks)
    await env.slack.click(ui.RETRY)
    await settle(env)
    assert "Used: Fetched after a retry" in env.card_text()

    await run(env, "batch")
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    assert "shard 2 done" in env.card_text()
    assert env.errors() == []


async def test_deadline_fires_without_a_click(env: Env) -> None:
    card = await run(env, "timed")
    pause = env.slack.thread(card.ts)[-1]
    assert "it is approved automatically" in json.dumps(pause.blocks)
    assert await sweep_once(env.bot.runner, env.bot.registry) == 0  # not due yet
    assert await sweep_once(env.bot.runner, env.bot.registry, now=time.time() + 120) == 1
    await settle(env)
    decided = env.slack.messages[pause.ts].blocks
    assert decided[0]["text"]["text"].startswith(":alarm_clock: *Timed out: approved automatically* ·")
    assert "Roll out the canary?" in json.dumps(decided) and "Decided at <!date^" in json.dumps(decided)
    assert "Rolled out" in env.card_text()
    assert await sweep_once(env.bot.runner, env.bot.registry, now=time.time() + 120) == 0  # exactly once


async def test_status_and_cancel(env: Env) -> None:
    await run(env, "deploy db")
    # the full id is on the pause message button; find it through the bot's store
    pause_value = env.slack.find(ui.CONFIRM)[1]["value"]
    pause = await env.bot.store.pause(pause_value)
    assert pause is not None
    _, body, _ = await env.slack.command(f"status {pause.run_id}")
    assert f"run `{pause.run_id[:12]}`: paused, waiting at deploy: needs an approval" in json.loads(body)["text"]
    old_card = env.slack.find(ui.CONFIRM)
    await env.slack.command(f"cancel {pause.run_id}", user="U9")
    await settle(env)
    assert "Cancelled by <@U9>" in env.card_text()
    await env.slack.click(ui.CONFIRM, stale=old_card)
    await settle(env)
    assert env.slack.ephemeral[-1]["text"] == "This pause is over; the run is cancelled."


ROUTES = [Step(name=f"route_{i:03d}_" + "x" * 80, executor=lambda s: "ok") for i in range(150)]
BIG = [
    BotWorkflow(
        Workflow(
            name="big",
            steps=[
                Step(name="huge", executor=lambda s: "é<&>*_ " * 5000, requires_output_review=True),
                Router(name="many", choices=ROUTES, requires_user_input=True, allow_multiple_selections=True),
                Step(
                    name="form",
                    executor=lambda s: "done",
                    requires_user_input=True,
                    user_input_schema=[
                        UserInputField(
                            name=f"field_{i}_" + "ü" * 30,
                            description="d" * 3000,
                            allowed_values=list(range(120)) if i == 0 else None,
                        )
                        for i in range(30)
                    ],
                ),
            ],
        ),
        name="big",
    ),
    BotWorkflow(
        Workflow(name="guarded", steps=[Step(name="g", executor=lambda s: "ok", requires_confirmation=True)]),
        name="guarded",
        approvers=Approvers(users=("UBOSS",), groups=("SADMINS",), forbid_self_approval=True),
    ),
]


@pytest.mark.parametrize("env", [BIG], indirect=True)
async def test_slack_limits_hold_and_approvers(env: Env) -> None:
    await run(env, "big")
    await env.slack.click(ui.VIEW_FULL)
    await settle(env)
    assert len(env.slack.last_view()["blocks"]) > 10  # the whole output, in pages
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    select = env.slack.find(ui.ROUTE_GO)[0].blocks
    groups = next(b for b in select if b.get("block_id") == ui.ROUTE_BLOCK)["elements"][0]["option_groups"]
    assert [len(g["options"]) for g in groups] == [100, 50]
    state = {
        ui.ROUTE_BLOCK: {
            ui.ROUTE_PICK: {"type": "multi_static_select", "selected_options": [{"value": "149"}, {"value": "3"}]}
        }
    }
    await env.slack.click(ui.ROUTE_GO, state=state)
    await settle(env)
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    assert len([b for b in env.slack.last_view()["blocks"] if b["type"] == "input"]) == 30
    assert env.errors() == [], env.errors()[:3]

    cards = len([m for m in env.slack.messages.values() if m.thread_ts is None])
    _, body, _ = await env.slack.command("run guarded", user="UBOSS")  # SADMINS has nobody: only UBOSS
    await settle(env)
    assert "`guarded` was not started" in body and "<@UBOSS>, may not answer runs they start" in body
    assert len([m for m in env.slack.messages.values() if m.thread_ts is None]) == cards  # nothing started
    env.slack.groups["SADMINS"] = ["UADMIN"]
    await run(env, "guarded", user="UBOSS")
    await env.slack.click(ui.CONFIRM, user="UBOSS")
    await settle(env)
    assert "You started this run" in env.slack.ephemeral[-1]["text"]
    await env.slack.click(ui.CONFIRM, user="URANDOM")
    await settle(env)
    assert "Only <@UBOSS> or <!subteam^SADMINS>" in env.slack.ephemeral[-1]["text"]
    await env.slack.click(ui.CONFIRM, user="UADMIN")
    await settle(env)
    assert "Completed" in env.card_text()
    audit = await env.db.audit_log(run_id=await run_id_of_card(env), actor="UADMIN")
    assert audit and audit[-1]["decision"] == "confirm"


async def test_expired_trigger_and_failed_calls_lose_nothing(env: Env) -> None:
    await run(env, "report")
    env.slack.trigger_ttl = 0.0  # every trigger has already expired
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    assert "would not open the form" in env.slack.ephemeral[-1]["text"]
    env.slack.trigger_ttl = 3.0
    env.slack.fail_next["chat.update"] = "ratelimited"  # the first update after the answer: an owed one
    env.bot.outbox.first_retry = 0.01
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    view = env.slack.last_view()
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": "T"}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
        "f2": {"v": {"type": "number_input", "value": None}},
        "f3": {"v": {"type": "checkboxes", "selected_options": []}},
    }
    await env.slack.submit(view["id"], values)
    await settle(env)
    assert "ratelimited" in [b.get("error") for m, _a, b in env.slack.calls if m == "chat.update"]
    deadline = time.monotonic() + 10
    while "Report 'T' as pdf" not in env.card_text():  # the outbox sends it again (every process sweeps)
        assert time.monotonic() < deadline, env.card_text()
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)


# ----- load and reach -----------------------------------------------------------------------------------
async def test_a_burst_of_clicks_with_double_clicks(env: Env) -> None:
    """Forty clicks at once, two on each of twenty cards: every ack is 200, every run resumes exactly once,
    and each loser is told who won."""
    for _ in range(20):
        await env.slack.command("run deploy web")
    await settle(env)
    cards = [m for m in env.slack.messages.values() if m.thread_ts is None]
    assert len(cards) == 20
    buttons = [env.slack.find(ui.CONFIRM, thread_ts=card.ts) for card in cards]
    clicks = await asyncio.gather(
        *(env.slack.click(ui.CONFIRM, user=user, stale=button) for button in buttons for user in ("U2", "U3"))
    )
    assert [status for status, _body, _took in clicks] == [200] * 40
    await settle(env)
    assert all("Completed" in json.dumps(env.slack.messages[card.ts].blocks) for card in cards)
    told = [e for e in env.slack.ephemeral if e["text"].startswith("Already approved by")]
    assert len(told) == 20
    decided = [m for m in env.slack.messages.values() if m.thread_ts and "*Approved*" in json.dumps(m.blocks)]
    assert len(decided) == 20  # each pause message closed once, by its one winner


async def test_replies_reach_a_channel_the_bot_is_not_in(env: Env) -> None:
    """Where the bot may not post, the command's reply is replaced through its response_url; where
    chat.postEphemeral fails, a click is answered through the click's response_url."""
    env.slack.not_joined.add("C9")
    status, body, _took = await env.slack.command("run deploy web", channel="C9")
    assert status == 200 and "Starting" in body
    await settle(env)
    assert not [m for m in env.slack.messages.values() if m.channel == "C9"]  # no card, no run
    replies = [e for e in env.slack.ephemeral if e["channel"] == "C9"]
    assert len(replies) == 1 and "did not start" in replies[0]["text"] and "/invite" in replies[0]["text"]
    assert [a.get("replace_original") for m, a, b in env.slack.calls if m == "response_url"] == [True]

    await run(env, "deploy web")
    stale = env.slack.find(ui.CONFIRM)
    await env.slack.click(ui.CONFIRM, user="U2")
    await settle(env)
    env.slack.fail_next["chat.postEphemeral"] = "internal_error"
    await env.slack.click(ui.CONFIRM, user="U3", stale=stale)
    await settle(env)
    assert env.slack.ephemeral[-1]["user"] == "U3"
    assert env.slack.ephemeral[-1]["text"] == "Already approved by <@U2>."
    assert env.slack.ephemeral[-1]["thread_ts"] == env.card().ts  # shown in the card's thread
    assert env.slack.calls[-1][0] == "response_url" and env.slack.calls[-1][2] == {"ok": True}


async def test_deferred_click_work_starts_under_constant_load(env: Env) -> None:
    """Click work waits for a pause between clicks, but never longer than MAX_DEFER."""
    runner = env.bot.background
    loop = asyncio.get_running_loop()
    started: list[float] = []

    async def work() -> None:
        started.append(loop.time())

    first_at, deferred = loop.time(), 0
    while loop.time() - first_at < 4 * MAX_DEFER:  # a click every QUIET / 2: never a quiet moment
        runner.defer(work)
        deferred += 1
        await asyncio.sleep(QUIET / 2)
    stream_ended = loop.time()
    await runner.idle(5)
    assert started and started[0] < stream_ended  # did not wait for the stream to end
    assert started[0] - first_at >= QUIET  # but did let the clicks right behind it be acked first
    assert len(started) == deferred  # and every piece of deferred work ran
