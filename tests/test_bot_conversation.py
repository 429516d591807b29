"""Conversations with kern-bot (issue 28, its first piece): a person mentions the bot in a channel or DMs it,
and the registry's conversational agent (`BotAgent`) answers in the thread; a follow-up in the thread is a
turn of the same kern session and the model is given the turns before it. End to end through the stand-in:
signed events to the real endpoint, the agent on the real `openai` client against the scripted model, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.policy import Audience
from bot.runs.sweeper import sweep_once
from bot.scripted_model import user_text
from kern.tools import tool
from tests.conversation_env import Env, settle, talking_bot
from tests.openai_stub import FakeOpenAI, Reply, call, text, tool_results

BOT = "<@UBOT>"
paged: list[str] = []


@tool(requires_confirmation=True)
def page_oncall(service: str) -> str:
    """Page the on-call engineer of a service."""
    paged.append(service)
    return f"paged the on-call of {service}"


def script(body: dict[str, Any]) -> Reply:
    """Echo what the person said; "page X" calls the tool first."""
    results = tool_results(body)
    if results:
        return text(f"Done: {results[-1]}")
    said = user_text(body)
    if said.startswith("page "):
        return call("page_oncall", service=said.removeprefix("page "))
    return text(f"You said: {said}")


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(fallback=script) as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    paged.clear()
    async with talking_bot(db_kind, tmp_path, model, tools=[page_oncall], rules=getattr(request, "param", None)) as e:
        yield e


def replies(env: Env, ts: str) -> list[Any]:
    """What the app posted in the thread of `ts`."""
    return [m for m in env.slack.thread(ts) if not m.user and m.ts != ts]


def answers(env: Env, ts: str) -> list[str]:
    return [m.text for m in replies(env, ts) if (m.metadata or {}).get("event_type") == "kern_answer"]


def chats(env: Env) -> list[dict[str, Any]]:
    return [r for r in env.model.requests if r["path"] == "chat"]


async def test_a_mention_is_answered_in_its_thread(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} what is <b>kern</b> & co?")
    await settle(env)
    # the bot's own mention is not part of what the model is asked; the person's text is escaped once when shown
    assert user_text(chats(env)[-1]) == "what is <b>kern</b> & co?"
    assert answers(env, ts) == ["You said: what is &lt;b&gt;kern&lt;/b&gt; &amp; co?"]
    assert not [m for m in env.slack.messages.values() if m.thread_ts is None and not m.user]  # no run card


async def test_a_dm_is_answered(env: Env) -> None:
    ts = await env.slack.say_in("U1", "DU1", "hello in private")
    await settle(env)
    assert answers(env, ts) == ["You said: hello in private"]
    assert all(m.channel == "DU1" for m in replies(env, ts))


async def test_a_follow_up_sees_the_earlier_turns(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} my name is Ada")
    await settle(env)
    await env.slack.say_in("U1", "C1", f"{BOT} what is my name?", thread_ts=ts)
    await settle(env)
    assert answers(env, ts) == ["You said: my name is Ada", "You said: what is my name?"]
    sent = [(m.get("role"), m.get("content")) for m in chats(env)[-1]["messages"]]
    assert ("user", "my name is Ada") in sent and ("assistant", "You said: my name is Ada") in sent
    assert sent[-1] == ("user", "what is my name?")
    # a DM thread's follow-up needs no mention; a new thread is a new conversation
    dm = await env.slack.say_in("U1", "DU1", "first in the DM")
    await settle(env)
    await env.slack.say_in("U1", "DU1", "second in the DM", thread_ts=dm)
    await settle(env)
    sent = [m.get("content") for m in chats(env)[-1]["messages"]]
    assert "first in the DM" in sent and "my name is Ada" not in sent
    assert answers(env, dm) == ["You said: first in the DM", "You said: second in the DM"]


async def test_messages_from_bots_are_ignored(env: Env) -> None:
    first = await env.slack.say_in("U2", "C1", f"{BOT} from another app", bot_id="B9")
    second = await env.slack.say_in("UBOT", "DU1", "the bot's own DM message")
    await settle(env)
    assert chats(env) == [] and replies(env, first) == [] and replies(env, second) == []


async def test_a_replayed_event_is_answered_once(env: Env) -> None:
    ts, envelopes = env.slack.person_posts("U1", "C1", f"{BOT} once please")
    bodies = [json.dumps(e).encode() for e in envelopes]
    for body in bodies:
        status, _, _ = await env.slack.send(body, "application/json")
        assert status == 200
    for body in bodies:  # Slack's redelivery (X-Slack-Retry-Num), then a replay of the same signed body
        assert (await env.slack.send(body, "application/json", retry=1))[0] == 200
        assert (await env.slack.send(body, "application/json"))[0] == 200
    await settle(env)
    assert answers(env, ts) == ["You said: once please"]
    assert len(chats(env)) == 1


@pytest.mark.parametrize("env", [{"streaming": False}], indirect=True)  # posted whole (streamed: test_bot_streaming)
async def test_a_slack_error_on_the_answer_is_retried(env: Env) -> None:
    env.slack.fail_next["chat.postMessage"] = ["internal_error", "service_unavailable"]
    ts = await env.slack.say_in("U1", "C1", f"{BOT} keep this answer")
    await settle(env)
    assert answers(env, ts) == []  # Slack refused it for now: the answer is owed, not lost
    deadline = time.monotonic() + 10
    while not answers(env, ts):
        assert time.monotonic() < deadline, "the answer was not delivered"
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)
    await sweep_once(env.bot.runner, env.bot.registry)
    assert answers(env, ts) == ["You said: keep this answer"]  # once


@pytest.mark.parametrize("env", [{"starters": Audience(users=("U1",))}], indirect=True)
async def test_someone_not_allowed_is_refused_privately(env: Env) -> None:
    ts = await env.slack.say_in("U2", "C1", f"{BOT} let me in")
    await settle(env)
    assert chats(env) == [] and replies(env, ts) == []
    told = [e for e in env.slack.ephemeral if e.get("user") == "U2"]
    assert len(told) == 1 and told[0].get("thread_ts") == ts and "Only <@U1> may start" in told[0]["text"]
    ts = await env.slack.say_in("U1", "C1", f"{BOT} me then")
    await settle(env)
    assert answers(env, ts) == ["You said: me then"]


async def test_a_tool_call_pauses_in_the_thread(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} page payments")
    await settle(env)
    cards = [m for m in replies(env, ts) if (m.metadata or {}).get("event_type") == "kern_pause"]
    assert len(cards) == 1 and "page_oncall" in json.dumps(cards[0].blocks) and paged == []
    await env.slack.click(ui.TOOL_OK, user="U1", thread_ts=ts)
    await settle(env)
    assert paged == ["payments"]
    assert answers(env, ts) == ["Done: paged the on-call of payments"]
