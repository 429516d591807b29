"""Slack misbehaving, made to happen with the stand-in (bot/devslack/faults.py), on SQLite and PostgreSQL:
errors Slack will repeat are not retried and are told (issue 24 item 18), a call that never answers is given
up and retried (19), a 429 holds back only its own method or channel (20), posts are paced per channel and a
passing error does not cancel a start (21), and a pause whose post was done but whose answer was lost is
found again by its metadata instead of being posted twice (22)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import blocks as ui
from bot.delivery.presenter import PAUSE_EVENT
from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from bot.slack.errors import classify
from bot.slack.pacing import Budget, RateLimits
from bot.store.tables import outbox
from kern.db.base import BaseDb
from kern.db.postgres import PostgresDb
from kern.run.base import RunStatus
from kern.workflow import OnTimeout, Step, Workflow
from tests.conftest import fresh_database, make_db, unique
from tests.test_bot_e2e import SECRET, Env, start_bot

APPROVALS = "CAPPROVE"  # the approvals channel of the `elsewhere` workflow


def flows() -> list[BotWorkflow]:
    ask = [
        Step(name="build", executor=lambda s: "built"),
        Step(name="check", executor=lambda s: "checked", requires_confirmation=True, confirmation_message="Ship?"),
    ]
    return [
        BotWorkflow(Workflow(name=unique("ask"), steps=ask), name="ask"),
        BotWorkflow(Workflow(name=unique("elsewhere"), steps=[*ask]), name="elsewhere", approvals_channel=APPROVALS),
        BotWorkflow(
            Workflow(
                name=unique("timed"),
                steps=[
                    Step(
                        name="rollout",
                        executor=lambda s: "Rolled out",
                        requires_confirmation=True,
                        hitl_timeout=60,
                        on_timeout=OnTimeout.approve,
                    )
                ],
            ),
            name="timed",
        ),
        BotWorkflow(Workflow(name=unique("quick"), steps=[Step(name="only", executor=lambda s: "done")]), name="quick"),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    # Sweeps deliver every pending row of the database: on PostgreSQL, a database of the test's own, so
    # that rows other tests left in the shared one are not delivered to this test's stand-in.
    async with contextlib.AsyncExitStack() as stack:
        if db_kind == "sqlite":
            db: BaseDb = make_db(db_kind, tmp_path)
        else:
            db = PostgresDb(db_url=await stack.enter_async_context(fresh_database()))
            stack.push_async_callback(db.close)
        async with running_env(db) as env:
            yield env


@contextlib.asynccontextmanager
async def running_env(db: BaseDb) -> AsyncIterator[Env]:
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry(flows(), db))
        bot.outbox.first_retry = 0.01
        bot.gateway.timeout = 0.5  # a call with no answer is given up after this
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


async def start(env: Env, workflow: str, channel: str = "C1", user: str = "U1") -> str:
    """Start `workflow` from a slash command; the run id once its card is up and the run has stopped."""
    cards = {m.ts for m in env.slack.messages.values() if m.thread_ts is None}
    status, _, _ = await env.slack.command(f"run {workflow}", user=user, channel=channel)
    assert status == 200
    new = lambda: [m for m in env.slack.messages.values() if m.thread_ts is None and m.ts not in cards]  # noqa: E731
    await env.slack.until(lambda: any(m.channel == channel for m in new()))
    await env.bot.background.idle(10)
    card = next(m for m in new() if m.channel == channel)
    found = await env.bot.store.card_at(card.channel, card.ts, team="")
    assert found is not None
    return found.run_id


def pauses_in(env: Env, channel: str, thread: str | None = None) -> list[Any]:
    """The pause messages (by their metadata) in `channel` (in the thread of `thread`, if given)."""
    return [
        m
        for m in env.slack.messages.values()
        if m.channel == channel
        and (thread is None or m.thread_ts == thread)
        and (m.metadata or {}).get("event_type") == PAUSE_EVENT  # (run cards carry metadata of their own)
    ]


def posts_to(env: Env, channel: str) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [c for c in env.slack.calls if c[0] == "chat.postMessage" and c[1].get("channel") == channel]


async def rows(env: Env, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [r for r in await env.bot.store.owed(run_id) if kind is None or r["kind"] == kind]


async def sweeps(env: Env, n: int = 3) -> None:
    for _ in range(n):
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.05)


async def all_due_now(env: Env) -> None:
    """Time passes: every pending outbox row is due, and Slack's Retry-After is over."""
    env.bot.gateway.limits = RateLimits()
    await env.db.run_transaction(
        lambda conn: conn.execute(outbox.update().where(outbox.c.status == "pending").values(next_at=0))
    )


# ----- 18: errors Slack will repeat ------------------------------------------------------------------
def test_slack_errors_are_classified() -> None:
    for permanent in ("channel_not_found", "is_archived", "not_in_channel", "message_not_found", "invalid_blocks"):
        assert classify(permanent) == "permanent"
    for auth in ("invalid_auth", "account_inactive", "token_revoked"):
        assert classify(auth) == "auth"
    for transient in ("ratelimited", "internal_error", "service_unavailable", "timeout", "network_error"):
        assert classify(transient) == "transient"
    assert classify("http_502", 502) == "transient" and classify("whatever", 429) == "transient"


@pytest.mark.parametrize("ops_channel", [None, "COPS"])
async def test_a_permanent_error_stops_retrying_is_recorded_and_told(env: Env, ops_channel: str | None) -> None:
    env.bot.outbox.ops_channel = ops_channel
    archived = env.slack.fault("chat.postMessage", "error", error="is_archived", channel=APPROVALS, times=0)
    run_id = await start(env, "elsewhere")
    await sweeps(env, 4)
    assert archived.hits == 1  # tried once, then never again, however many sweeps
    [pause] = await rows(env, run_id, "pause")
    assert (pause["status"], pause["error"], pause["attempts"]) == ("failed", "is_archived", 1)
    [notice] = await rows(env, run_id, "notice")
    assert notice["status"] == "done"
    told = [c for c in env.slack.calls if c[0] == "chat.postMessage" and "is_archived" in (c[1].get("text") or "")]
    assert len(told) == 1 and told[0][2]["ok"]
    assert told[0][1]["channel"] == (ops_channel or env.slack.dms["U1"])  # the operators, or else the starter
    assert run_id[:12] in told[0][1]["text"] and "/kern status" in told[0][1]["text"]
    assert await env.bot.store.failed_owed(run_id) == [
        {"kind": "pause", "requirement_id": pause["requirement_id"], "error": "is_archived"}
    ]
    scraped = (await env.bot.metrics.render(env.db)).decode()
    failed = next(line for line in scraped.splitlines() if line.startswith("kern_bot_outbox_failed "))
    assert float(failed.split()[1]) >= 1
    run = await env.bot.registry.get("elsewhere").workflow.aget_run(run_id)  # type: ignore[union-attr]
    assert run.status == RunStatus.PAUSED  # the run still waits; its card says so
    assert "Waiting: check" in json.dumps(env.slack.messages[first_card(env, run_id)].blocks)


async def test_a_refused_token_waits_and_shows_in_health(env: Env) -> None:
    env.slack.fault("chat.postMessage", "error", error="account_inactive", channel=APPROVALS, times=0)
    run_id = await start(env, "elsewhere")
    [pause] = await rows(env, run_id, "pause")
    assert pause["status"] == "pending" and pause["error"].endswith("account_inactive")  # kept, not dropped
    env.slack.fault("auth.test", "error", error="account_inactive", times=0)  # the token is refused everywhere
    ok, body = await health_of(env)
    assert not ok and body["workspaces"] == "default: account_inactive" and "workspaces" in body["down"]
    env.slack.faults.clear()  # the workspace is back
    await all_due_now(env)
    await sweeps(env, 2)
    assert [r["status"] for r in await rows(env, run_id, "pause")] == ["done"] and len(pauses_in(env, APPROVALS)) == 1
    ok, body = await health_of(env)
    assert ok and body["workspaces"] == "ok"


async def health_of(env: Env) -> tuple[bool, dict[str, Any]]:
    from bot.slack.health import Health

    return await Health(env.db, env.bot.gateway, cache_seconds=0).check()


# ----- 19: a call that never answers ---------------------------------------------------------------
async def test_a_call_that_never_answers_is_given_up_and_retried(env: Env) -> None:
    card_hang = env.slack.fault("chat.postMessage", "hang", channel="C1")  # the card's post
    pause_hang = env.slack.fault("chat.postMessage", "hang", channel="C1", after=1)  # the pause message's
    began = time.monotonic()
    run_id = await start(env, "ask")  # the card: given up after 0.5 s, posted again
    assert card_hang.hits == 1 and pause_hang.hits == 1
    [pause] = await rows(env, run_id, "pause")
    assert (pause["status"], pause["attempts"], pause["error"]) == (
        "pending",
        1,
        "Slack chat_postMessage failed: timeout",
    )
    await sweeps(env, 2)
    card = env.card()
    assert [r["status"] for r in await rows(env, run_id, "pause")] == ["done"]
    assert len(pauses_in(env, "C1", card.ts)) == 1  # the hung post did nothing, the retry posted it once
    assert time.monotonic() - began < 8  # two calls with no answer cost about a second, not Slack's mercy


async def test_a_sweep_does_not_wait_on_a_call_that_never_answers(env: Env) -> None:
    first = await start(env, "ask")
    timed = await start(env, "timed")
    env.slack.fault("chat.update", "error", error="internal_error")  # the decided message: left owed
    await env.slack.click(ui.CONFIRM, thread_ts=first_card(env, first))
    await env.bot.background.idle(10)
    assert {r["status"] for r in await rows(env, first, "close")} == {"pending"}
    env.bot.gateway.timeout = 5.0
    env.slack.faults.clear()
    hang = env.slack.fault("chat.update", "hang", times=0)  # from now on Slack never answers a chat.update
    began = time.monotonic()
    assert await sweep_once(env.bot.runner, env.bot.registry, now=time.time() + 120, outbox_wait=0.3) == 1
    assert time.monotonic() - began < 2  # the deadline fired; the delivery waits on Slack in the background
    pause_ts = pauses_in(env, "C1", first_card(env, first))[0].ts
    hung_on_it = lambda: [a for m, a in env.slack.swallowed if a.get("ts") == pause_ts]  # noqa: E731
    deadline = time.monotonic() + 10
    while not hung_on_it():  # the decided form of the first run's pause: sent by that sweep's delivery, or
        assert time.monotonic() < deadline, "never sent"  # a later one's (its retry may not have been due)
        began = time.monotonic()
        await sweep_once(env.bot.runner, env.bot.registry, outbox_wait=0.3)
        assert time.monotonic() - began < 2  # no sweep waits on the hung call
        await asyncio.sleep(0.05)
    assert len(hung_on_it()) == 1
    await sweep_once(env.bot.runner, env.bot.registry, outbox_wait=0.3)  # the next sweep leaves that run be
    await asyncio.sleep(0.3)
    assert len(hung_on_it()) == 1 and hang.hits >= 1
    run = await env.bot.registry.get("timed").workflow.aget_run(timed)  # type: ignore[union-attr]
    assert run.status == RunStatus.COMPLETED
    env.slack.faults.clear()
    await env.bot.background.idle(10)  # the hung call is given up after 5 s, and retried
    [close] = await rows(env, first, "close")
    assert close["status"] == "pending" and close["error"].endswith("timeout")
    await all_due_now(env)
    await sweeps(env, 2)
    assert {r["status"] for r in await rows(env, first)} == {"done"}


# ----- 20: a 429 holds back only its own method (or channel) ----------------------------------------
async def test_a_rate_limited_update_holds_back_no_other_run(env: Env) -> None:
    first = await start(env, "ask")
    timed = await start(env, "timed")
    env.slack.fault("chat.update", "ratelimited", retry_after=20)
    before = len(env.slack.calls)
    updates_since = lambda: [c for c in env.slack.calls[before:] if c[0] == "chat.update"]  # noqa: E731
    await env.slack.click(ui.CONFIRM, thread_ts=env.slack.messages[first_card(env, first)].ts)  # decided: owes updates
    await env.bot.background.idle(10)
    updates = updates_since()
    assert len(updates) == 1 and updates[0][2]["error"] == "ratelimited"
    [close] = await rows(env, first, "close")
    assert close["status"] == "pending" and close["next_at"] > time.time() + 15  # waits out the Retry-After

    began = time.monotonic()
    other = await start(env, "ask")  # another run's new pause message goes out at once
    other_card = env.slack.messages[first_card(env, other)]
    assert len(pauses_in(env, "C1", other_card.ts)) == 1 and time.monotonic() - began < 5
    [card_row] = await rows(env, other, "card")
    assert card_row["status"] == "pending" and card_row["attempts"] == 0  # its card update waits, unsent
    # the sweep fires another run's deadline at once, and does not wait for Slack
    began = time.monotonic()
    assert await sweep_once(env.bot.runner, env.bot.registry, now=time.time() + 120, outbox_wait=0.5) == 1
    assert time.monotonic() - began < 3
    await env.bot.background.idle(10)
    run = await env.bot.registry.get("timed").workflow.aget_run(timed)  # type: ignore[union-attr]
    assert run.status == RunStatus.COMPLETED
    assert len(updates_since()) == 1  # no chat.update before its Retry-After

    await all_due_now(env)  # 20 s later
    await sweeps(env, 3)
    for run_id in (first, other, timed):
        assert {r["status"] for r in await rows(env, run_id)} == {"done"}
    assert "*Approved*" in json.dumps(pauses_in(env, "C1", env.slack.messages[first_card(env, first)].ts)[0].blocks)


async def test_a_rate_limited_post_holds_back_only_its_channel(env: Env) -> None:
    env.slack.fault("chat.postMessage", "ratelimited", retry_after=20, channel="C1", after=1)  # the pause, not the card
    held = await start(env, "ask", channel="C1")
    [pause] = await rows(env, held, "pause")
    assert pause["status"] == "pending" and pause["next_at"] > time.time() + 15
    other = await start(env, "ask", channel="C2")  # another channel posts on at once
    assert len(pauses_in(env, "C2", first_card(env, other))) == 1
    await sweeps(env, 2)
    assert len(posts_to(env, "C1")) == 2 and len(env.slack.limited) == 1  # the card, the limited pause: no more
    assert env.bot.gateway.limits.reserve("", "chat_postMessage", "C1") > 15  # C1 waits out its Retry-After


def first_card(env: Env, run_id: str) -> str:
    """The ts of the run card of `run_id` (its first 12 characters are on it)."""
    return next(
        m.ts for m in env.slack.messages.values() if m.thread_ts is None and run_id[:12] in json.dumps(m.blocks)
    )


# ----- 21: pacing posts, and passing errors on the card -------------------------------------------
async def test_a_passing_error_on_the_card_does_not_cancel_a_start(env: Env) -> None:
    env.slack.fault("chat.postMessage", "error", error="internal_error", channel="C1", status=500)
    run_id = await start(env, "ask")
    assert len(posts_to(env, "C1")) == 3  # refused, posted again, then the pause message
    assert [r["status"] for r in await rows(env, run_id, "pause")] == ["done"]
    assert not [c for c in env.slack.calls if "did not start" in json.dumps(c[1])]


async def test_thirty_runs_at_once_in_one_channel_all_start(env: Env) -> None:
    env.slack.post_limit = (4.0, 4)  # Slack's pace for posts, scaled up from 1 a second to keep the test short
    env.bot.gateway.limits = RateLimits(post_rate=3.5)  # a little under Slack's pace, as 1 a second is "about"
    answers = await asyncio.gather(*(env.slack.command("run quick", user=f"U{i}", channel="CBUSY") for i in range(30)))
    assert all(status == 200 for status, _, _ in answers)
    cards = lambda: [m for m in env.slack.messages.values() if m.channel == "CBUSY" and m.thread_ts is None]  # noqa: E731
    await env.slack.until(lambda: len(cards()) == 30, within=40)
    await env.bot.background.idle(20)
    said = json.dumps([c[1] for c in env.slack.calls]) + json.dumps(env.slack.ephemeral)
    assert "Invite me" not in said and "did not start" not in said
    # Slack limited the burst (26 of the first 30); the bot then kept to the channel's pace, not retrying
    # everything at each Retry-After (which costs about 100 refusals)
    assert 0 < len(env.slack.limited) < 40, len(env.slack.limited)
    assert all(json.dumps(c.blocks).count("Completed") for c in cards())


async def test_only_not_in_channel_asks_for_an_invite(env: Env) -> None:
    env.slack.fault("chat.postMessage", "error", error="channel_not_found", channel="CGONE")
    await env.slack.command("run ask", channel="CGONE")
    await env.bot.background.idle(10)
    env.slack.not_joined.add("CNOT")
    await env.slack.command("run ask", channel="CNOT")
    await env.bot.background.idle(10)
    said = [json.dumps(c[1]) for c in env.slack.calls if c[0] == "response_url"]
    assert any("channel_not_found" in s and "did not start" in s and "Invite" not in s for s in said)
    assert any("Invite me" in s for s in said)


# ----- 22: a post done whose answer was lost --------------------------------------------------------
@pytest.mark.parametrize("workflow", ["ask", "elsewhere"])
async def test_a_pause_whose_answer_was_lost_is_not_posted_twice(env: Env, workflow: str) -> None:
    where = "C1" if workflow == "ask" else APPROVALS
    env.slack.fault("chat.postMessage", "lose", channel=where, after=1 if workflow == "ask" else 0)  # not the card
    run_id = await start(env, workflow)
    assert len(env.slack.lost) == 1  # Slack posted it; the bot never heard
    [pause] = await rows(env, run_id, "pause")
    assert pause["status"] == "pending" and pause["attempts"] == 1
    await sweeps(env, 2)
    posted = pauses_in(env, where)
    said = [(m, a.get("channel"), a.get("thread_ts") or a.get("ts"), b.get("error")) for m, a, b in env.slack.calls]
    assert len(posted) == 1, said  # looked up by its metadata and adopted, not posted again
    assert posted[0].metadata == {
        "event_type": "kern_pause",
        "event_payload": {"run_id": run_id, "requirement_id": pause["requirement_id"]},
    }
    looked = [c for c in env.slack.calls if c[0] in ("conversations.replies", "conversations.history")]
    assert looked and all(str(c[1].get("include_all_metadata")) in ("1", "True", "true") for c in looked)
    assert [r["status"] for r in await rows(env, run_id, "pause")] == ["done"]
    recorded = await env.bot.store.pause(pause["requirement_id"])
    assert recorded is not None and recorded.ts == posted[0].ts
    await env.slack.click(ui.CONFIRM, thread_ts=posted[0].thread_ts)  # the adopted message works
    await env.bot.background.idle(10)
    await sweeps(env, 1)
    assert "*Approved*" in json.dumps(env.slack.messages[posted[0].ts].blocks)


def test_budget_still_paces() -> None:
    now = [0.0]
    budget = Budget(1.0, clock=lambda: now[0])
    assert budget.reserve() == 0 and budget.reserve() == pytest.approx(1.0)


async def test_history_and_replies_page_and_show_metadata_only_when_asked() -> None:
    async with DevSlack(SECRET) as slack, aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bearer {slack.token}"}

        async def api(method: str, **args: Any) -> dict[str, Any]:
            async with session.post(slack.api_url + method, json=args, headers=headers) as resp:
                return dict(await resp.json())

        parent = (await api("chat.postMessage", channel="C1", text="card"))["ts"]
        mark = {"event_type": "kern_pause", "event_payload": {"requirement_id": "r1"}}
        for i in range(3):
            await api("chat.postMessage", channel="C1", text=f"r{i}", thread_ts=parent, metadata=mark)
        assert (await api("chat.postMessage", channel="C1", text="x", metadata={"event_payload": {}}))[
            "error"
        ] == "invalid_metadata_format"
        plain = await api("conversations.replies", channel="C1", ts=parent)
        assert len(plain["messages"]) == 4 and not any("metadata" in m for m in plain["messages"])
        page = await api("conversations.replies", channel="C1", ts=parent, include_all_metadata=True, limit=2)
        assert page["has_more"] and page["messages"][1]["metadata"] == mark
        rest = await api(
            "conversations.replies", channel="C1", ts=parent, limit=2, cursor=page["response_metadata"]["next_cursor"]
        )
        assert [m["text"] for m in rest["messages"]] == ["r1", "r2"] and not rest["has_more"]
        top = await api("conversations.history", channel="C1", include_all_metadata=True)
        assert [m["text"] for m in top["messages"]] == ["card"]


def test_rate_limits_hold_back_only_their_method_and_channel() -> None:
    now = [100.0]
    limits = RateLimits(post_rate=1.0, calm=10.0, clock=lambda: now[0])
    limits.limited("T", "chat_update", "C1", 20)
    assert limits.reserve("T", "chat_update", "C2") == pytest.approx(20)  # per method in the workspace
    assert limits.reserve("T", "chat_postMessage", "C1") == 0 and limits.reserve("T2", "chat_update", "C1") == 0
    limits.limited("T", "chat_postMessage", "C1", 2)
    assert limits.reserve("T", "chat_postMessage", "C1") == pytest.approx(2)  # the turn after the Retry-After...
    limits.refund("T", "chat_postMessage", "C1")  # ...given back: the caller does not wait that long
    assert limits.reserve("T", "chat_postMessage", "C2") == 0  # another channel posts on
    now[0] += 2
    assert limits.reserve("T", "chat_postMessage", "C1") == 0  # then paced: one a second
    assert limits.reserve("T", "chat_postMessage", "C1") == pytest.approx(1.0)
    now[0] += 20  # calm again: bursts are back
    assert limits.reserve("T", "chat_postMessage", "C1") == 0 and limits.reserve("T", "chat_postMessage", "C1") == 0
