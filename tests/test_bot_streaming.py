"""A conversation's answer streams into its thread (issue 28, item 2): chat.startStream / appendStream /
stopStream through the gateway, a task card for each tool call, a long answer continued in a new message,
`streaming=False` posting one message at the end; and durable like the rest (item 6): a 429 on an append is
waited out without holding the agent back, a lost stopStream answer is retried without a second message, a
replayed event starts one stream. End to end through the stand-in, which validates the streaming methods as
Slack documents them, on SQLite and PostgreSQL. (A process killed mid-answer: tests/test_bot_stream_recovery.py.)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runs.sweeper import sweep_once
from bot.scripted_model import user_text
from kern.tools import tool
from tests.conversation_env import Env, settle, talking_bot
from tests.openai_stub import FakeOpenAI, Reply, call, text, tool_results
from tests.test_bot_conversation import BOT, answers, page_oncall, replies

LONG = " ".join(f"word{i}" for i in range(5000))  # about 39,000 characters: four messages


@tool
def look_up(city: str) -> str:
    """Look a city's weather up."""
    return f"sunny in {city}"


def script(body: dict[str, Any]) -> Reply:
    """ "weather X" looks it up first, "page X" pages (once confirmed); "long" answers LONG; anything else is
    echoed."""
    results = tool_results(body)
    if results:
        return text(f"Done: {results[-1]}")
    said = user_text(body)
    if said.startswith("weather "):
        return call("look_up", city=said.removeprefix("weather "))
    if said.startswith("page "):
        return call("page_oncall", service=said.removeprefix("page "))
    if said == "long":
        return text(LONG)
    return text(f"You said: {said}, and that is all I will say about it.")


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(fallback=script) as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    rules = getattr(request, "param", None)
    async with talking_bot(db_kind, tmp_path, model, tools=[look_up, page_oncall], rules=rules, name="Streamer") as e:
        yield e


def calls(env: Env, method: str) -> list[dict[str, Any]]:
    """The arguments of each call of `method` Slack answered (ok or not)."""
    return [args for name, args, _body in env.slack.calls if name == method]


def streamed(env: Env, ts: str) -> list[Any]:
    """The messages streamed into the thread of `ts`, oldest first."""
    return [m for m in replies(env, ts) if m.streaming]


async def delivered(env: Env, ts: str, count: int = 1) -> None:
    """Sweep until the thread of `ts` shows `count` answers (what the outbox still owes is delivered)."""
    deadline = time.monotonic() + 15
    while len(answers(env, ts)) < count:
        assert time.monotonic() < deadline, "the answer was not delivered"
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)
    await settle(env)


async def test_an_answer_streams_into_its_thread(env: Env) -> None:
    env.model.piece_delay = 0.02  # the answer comes over about 0.4 s: several appends
    ts = await env.slack.say_in("U1", "C1", f"{BOT} hello there")
    await settle(env)
    want = "You said: hello there, and that is all I will say about it."
    assert answers(env, ts) == [want]
    (message,) = streamed(env, ts)
    assert message.streaming == "completed" and message.thread_ts == ts
    assert message.metadata["event_type"] == "kern_answer" and set(message.metadata["event_payload"]) == {"run_id"}
    pieces = [text for at, text in env.slack.appends if at == message.ts]
    assert len(pieces) >= 3 and "".join(pieces) == want  # it grew, nothing lost or out of order
    (start,) = calls(env, "chat.startStream")
    assert (start["channel"], start["thread_ts"], start["recipient_user_id"]) == ("C1", ts, "U1")
    assert start["recipient_team_id"] == "T1" and start["task_display_mode"] == "plan"
    assert not calls(env, "chat.postMessage") and env.slack.rejected == []


async def test_a_tool_call_shows_as_a_task_card(env: Env) -> None:
    ts = await env.slack.say_in("U1", "DU1", "weather Osaka")
    await settle(env)
    assert answers(env, ts) == ["Done: sunny in Osaka"]
    (message,) = streamed(env, ts)
    (card,) = message.tasks.values()
    assert card["title"] == "look_up" and card["status"] == "complete" and card["output"] == "sunny in Osaka"
    sent = [c for args in calls(env, "chat.startStream") + calls(env, "chat.appendStream") for c in args["chunks"]]
    statuses = [c["status"] for c in sent if c["type"] == "task_update"]
    assert statuses[-1] == "complete" and set(statuses) <= {"in_progress", "complete"}
    assert env.slack.rejected == []


@pytest.mark.parametrize("env", [{"streaming": False}], indirect=True)
async def test_streaming_off_posts_one_message_at_the_end(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} no stream please")
    await settle(env)
    assert answers(env, ts) == ["You said: no stream please, and that is all I will say about it."]
    assert not [name for name, _args, _body in env.slack.calls if name.endswith("Stream")]
    assert len(calls(env, "chat.postMessage")) == 1


@pytest.mark.parametrize("env", [{"task_display_mode": "timeline"}], indirect=True)
async def test_a_long_answer_continues_in_new_messages(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} long")
    await settle(env)
    shown = answers(env, ts)
    assert len(shown) == 4 and all(len(part) <= 12_000 for part in shown)
    assert "".join(shown) == LONG  # cut between words, nothing lost
    assert [m.streaming for m in streamed(env, ts)] == ["completed"] * 4
    assert [m.metadata["event_payload"].get("part", 0) for m in streamed(env, ts)] == [0, 1, 2, 3]
    assert env.slack.rejected == [] and calls(env, "chat.startStream")[0]["task_display_mode"] == "timeline"


@pytest.mark.parametrize("env", [{"streaming": False}], indirect=True)
async def test_a_long_answer_is_posted_in_several_messages_without_streaming(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} long")
    await settle(env)
    shown = answers(env, ts)
    assert len(shown) == 4 and "".join(shown) == LONG and env.slack.rejected == []


async def test_a_429_on_append_is_waited_out_and_does_not_hold_the_agent(env: Env) -> None:
    env.model.piece_delay = 0.01
    env.slack.fault("chat.appendStream", "ratelimited", retry_after=2)
    ts = await env.slack.say_in("U1", "C1", f"{BOT} slowly")
    await settle(env)
    want = "You said: slowly, and that is all I will say about it."
    assert answers(env, ts) == [want]
    (message,) = streamed(env, ts)
    assert "".join(text for at, text in env.slack.appends if at == message.ts) == want
    assert [(m, after) for m, _channel, after in env.slack.limited] == [("chat.appendStream", 2)]
    card = await env.bot.store.card_at("C1", ts, team="")
    assert card is not None
    entry = env.bot.registry.conversational
    assert entry is not None
    run = await entry.workflow.aget_run(card.run_id)
    assert run.status.value == "COMPLETED" and (run.updated_at or 0) - (run.created_at or 0) < 1.5  # not held back
    appended = [body for name, _args, body in env.slack.calls if name == "chat.appendStream" and body.get("ok")]
    assert appended  # the text the 429 refused went later, with what came meanwhile


async def test_a_lost_stop_answer_is_retried_without_a_second_message(env: Env) -> None:
    env.bot.gateway.timeout = 0.5
    env.slack.fault("chat.stopStream", "lose")  # the stop lands; its answer never comes back
    ts = await env.slack.say_in("U1", "C1", f"{BOT} stop once")
    await settle(env)
    assert env.slack.lost and env.slack.lost[0][0] == "chat.stopStream"
    await delivered(env, ts)
    want = "You said: stop once, and that is all I will say about it."
    assert answers(env, ts) == [want]
    assert len(streamed(env, ts)) == 1 and len(calls(env, "chat.startStream")) == 1
    assert not calls(env, "chat.postMessage")
    await sweep_once(env.bot.runner, env.bot.registry)
    assert answers(env, ts) == [want]


async def test_a_slack_error_on_the_stop_is_retried(env: Env) -> None:
    env.slack.fail_next["chat.stopStream"] = ["internal_error", "service_unavailable"]
    ts = await env.slack.say_in("U1", "C1", f"{BOT} keep this answer")
    await settle(env)
    await delivered(env, ts)
    assert answers(env, ts) == ["You said: keep this answer, and that is all I will say about it."]
    assert len(streamed(env, ts)) == 1 and streamed(env, ts)[0].streaming == "completed"


async def test_a_replayed_event_starts_one_stream(env: Env) -> None:
    ts, envelopes = env.slack.person_posts("U1", "C1", f"{BOT} once please")
    bodies = [json.dumps(e).encode() for e in envelopes]
    for body in bodies:
        assert (await env.slack.send(body, "application/json"))[0] == 200
    for body in bodies:  # Slack's redelivery (X-Slack-Retry-Num), then a replay of the same signed body
        assert (await env.slack.send(body, "application/json", retry=1))[0] == 200
        assert (await env.slack.send(body, "application/json"))[0] == 200
    await settle(env)
    assert len(calls(env, "chat.startStream")) == 1 and len(answers(env, ts)) == 1


async def test_a_tool_pause_parks_the_stream_and_the_answer_goes_on_below(env: Env) -> None:
    from bot import blocks as ui

    ts = await env.slack.say_in("U1", "C1", f"{BOT} page payments")
    await settle(env)
    assert [m.streaming for m in streamed(env, ts)] in ([], ["completed"])  # nothing left streaming while it waits
    await env.slack.click(ui.TOOL_OK, user="U1", thread_ts=ts)
    await settle(env)
    assert answers(env, ts)[-1] == "Done: paged the on-call of payments"
    assert all(m.streaming == "completed" for m in streamed(env, ts)) and env.slack.rejected == []
