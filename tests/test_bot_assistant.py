"""kern-bot in Slack's assistant pane, and who is talking (issue 28, items 1 and 5): an assistant thread is
greeted with suggested prompts; a message in it is a turn of the conversational entry (`BotAgent`) with the
thread's status and title set; the channel the person looks at, and with `resolve_user_identity` their
name, email and channel, reach the model; other apps' messages are answered only when configured. End to
end through the stand-in: signed events to the real endpoint, the agent on the real `openai` client
against the scripted model, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import SettingsError
from bot.devslack import DevSlack
from bot.devslack.web import DevSlackWeb
from bot.examples import example_workflows
from bot.policy import Audience
from bot.registry import DEFAULT_PROMPTS, BotAgent, Registry
from bot.scripted_model import alert_script, user_text
from bot.surfaces.conversation import session_for
from bot.surfaces.turn_context import OPEN
from kern.agent import Agent
from kern.db.sqlite import SqliteDb
from tests.conversation_env import Env, settle, talking_bot
from tests.openai_stub import FakeOpenAI, Reply, text
from tests.test_bot_e2e import SECRET, start_bot

BOT = "<@UBOT>"
PROMPTS = [{"title": "Status", "message": "How are the deploys?"}, {"title": "Help", "message": "What can you do?"}]


def words(body: dict[str, Any]) -> str:
    """What the person said in a model request, without the context block the bot adds."""
    return user_text(body).split(f"\n\n{OPEN}")[0]


def script(body: dict[str, Any]) -> Reply:
    return text(f"You said: {words(body)}")


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(fallback=script) as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with talking_bot(db_kind, tmp_path, model, rules=getattr(request, "param", None)) as e:
        yield e


def answers(env: Env, ts: str) -> list[str]:
    return [
        m.text for m in env.slack.thread(ts) if not m.user and (m.metadata or {}).get("event_type") == "kern_answer"
    ]


def chats(env: Env) -> list[dict[str, Any]]:
    return [r for r in env.model.requests if r["path"] == "chat"]


def calls(env: Env, method: str) -> list[dict[str, Any]]:
    return [args for name, args, body in env.slack.calls if name == method and body.get("ok")]


async def run_users(env: Env, channel: str, thread: str) -> list[str]:
    """The `user_id` of every run of the conversation in `thread`."""
    runs = await env.bot.registry.db.session_runs(session_for("", channel, thread))
    return [r.output.get("user_id") for r in runs]


# ----- the assistant pane -------------------------------------------------------------------------


@pytest.mark.parametrize("env", [{"suggested_prompts": PROMPTS}], indirect=True)
async def test_an_opened_assistant_thread_is_greeted_with_its_suggested_prompts(env: Env) -> None:
    ts = await env.slack.open_assistant("U1", viewing="C7")
    await settle(env)
    thread = env.slack.assistant_threads[ts]
    assert thread.prompts == PROMPTS
    greeting = [m for m in env.slack.thread(ts) if not m.user]
    assert len(greeting) == 1 and "<@U1>" in greeting[0].text
    assert chats(env) == []  # opening a thread asks the model nothing


async def test_without_prompts_the_defaults_are_offered(env: Env) -> None:
    ts = await env.slack.open_assistant("U1")
    await settle(env)
    assert env.slack.assistant_threads[ts].prompts == DEFAULT_PROMPTS


async def test_a_message_in_an_assistant_thread_is_answered_with_status_and_title(env: Env) -> None:
    ts = await env.slack.open_assistant("U1", viewing="C7")
    await settle(env)
    await env.slack.say_in_assistant(ts, "what is kern?\nand why?")
    await settle(env)
    thread = env.slack.assistant_threads[ts]
    assert answers(env, ts) == ["You said: what is kern?\nand why?"]
    assert len(chats(env)) == 1  # answered once: not also as a DM message (message.im)
    assert thread.title == "what is kern?"  # the first message's first line
    assert thread.statuses == ["Thinking..."]
    answer = next(m for m in env.slack.thread(ts) if (m.metadata or {}).get("event_type") == "kern_answer")
    assert answer.posted_at > thread.status_at  # the status was shown while the turn worked...
    assert env.slack.assistant_status(ts) == ""  # ...and the answer cleared it
    # the channel the person is looking at reached the model
    assert "Channel the person is viewing: C7" in user_text(chats(env)[-1])
    # a follow-up: the same session (it sees the first turn), the title is not set again
    await env.slack.say_in_assistant(ts, "tell me more")
    await settle(env)
    assert answers(env, ts)[-1] == "You said: tell me more"
    sent = [m.get("content") or "" for m in chats(env)[-1]["messages"]]
    assert any(s.startswith("what is kern?") for s in sent)
    assert len(calls(env, "assistant.threads.setTitle")) == 1 and thread.title == "what is kern?"
    assert thread.statuses == ["Thinking...", "Thinking..."]


@pytest.mark.parametrize("env", [{"loading_text": "Looking it up…"}], indirect=True)
async def test_the_context_change_reaches_the_next_turn(env: Env) -> None:
    ts = await env.slack.open_assistant("U1", viewing="C7")
    await env.slack.look_at(ts, "C9")
    await settle(env)
    await env.slack.say_in_assistant(ts, "summarize")
    await settle(env)
    said = user_text(chats(env)[-1])
    assert "Channel the person is viewing: C9" in said and "C7" not in said
    assert env.slack.assistant_threads[ts].statuses == ["Looking it up…"]


@pytest.mark.parametrize("env", [{"starters": Audience(users=("U1",))}], indirect=True)
async def test_someone_not_allowed_in_an_assistant_thread_is_refused_privately(env: Env) -> None:
    ts = await env.slack.open_assistant("U2")
    await settle(env)
    await env.slack.say_in_assistant(ts, "let me in")
    await settle(env)
    assert chats(env) == [] and answers(env, ts) == []
    told = [e for e in env.slack.ephemeral if e.get("user") == "U2"]
    assert len(told) == 1 and told[0].get("thread_ts") == ts and "Only <@U1> may start" in told[0]["text"]
    thread = env.slack.assistant_threads[ts]
    assert thread.statuses == [] and thread.title == ""  # nothing shows them working for them


async def test_a_replayed_assistant_message_is_answered_once(env: Env) -> None:
    pane = env.slack.start_pane_thread("U1")
    started = json.dumps(env.slack.event_envelope(env.slack.pane_event("assistant_thread_started", pane))).encode()
    for retry in (None, 1, None):  # first, Slack's redelivery, a replay of the same signed body
        assert (await env.slack.send(started, "application/json", retry=retry))[0] == 200
    await settle(env)
    _ts, envelopes = env.slack.person_posts("U1", pane.channel, "once please", thread_ts=pane.ts)
    body = json.dumps(envelopes[0]).encode()
    for retry in (None, 1, None):
        assert (await env.slack.send(body, "application/json", retry=retry))[0] == 200
    await settle(env)
    assert answers(env, pane.ts) == ["You said: once please"]
    assert len(chats(env)) == 1
    assert len([m for m in env.slack.thread(pane.ts) if not m.user]) == 2  # one greeting, one answer
    assert len(calls(env, "assistant.threads.setSuggestedPrompts")) == 1
    assert env.slack.assistant_threads[pane.ts].statuses == ["Thinking..."]


async def test_a_dm_thread_that_is_no_assistant_thread_gets_no_status(env: Env) -> None:
    dm = await env.slack.say_in("U1", "DU1", "first")
    await settle(env)
    await env.slack.say_in("U1", "DU1", "second", thread_ts=dm)
    await settle(env)
    assert answers(env, dm) == ["You said: first", "You said: second"]
    assert calls(env, "assistant.threads.setStatus") == [] and calls(env, "assistant.threads.setTitle") == []


# ----- identity and context ----------------------------------------------------------------------


@pytest.mark.parametrize("env", [{"resolve_user_identity": True}], indirect=True)
async def test_the_person_is_resolved_to_their_email_and_the_model_sees_their_name(env: Env) -> None:
    env.slack.profiles["U1"] = {"display_name": "Ada", "real_name": "Ada Lovelace", "email": "ada@example.com"}
    ts = await env.slack.say_in("U1", "C1", f"{BOT} who am I?")
    await settle(env)
    assert answers(env, ts) == ["You said: who am I?"]
    said = user_text(chats(env)[-1])
    assert "Person: Ada (ada@example.com)" in said and "Conversation channel: C1" in said
    assert await run_users(env, "C1", ts) == ["ada@example.com"]
    # kept per workspace and user: the next turn asks Slack nothing
    await env.slack.say_in("U1", "C1", f"{BOT} again", thread_ts=ts)
    await settle(env)
    assert await run_users(env, "C1", ts) == ["ada@example.com", "ada@example.com"]
    assert [a["user"] for a in calls(env, "users.info")] == ["U1"]
    # the card's starter stays the Slack user: the rules are checked against it
    card = await env.bot.store.card(next(iter(await _run_ids(env, "C1", ts))))
    assert card is not None and card.started_by == "U1"


@pytest.mark.parametrize("env", [{"resolve_user_identity": True}], indirect=True)
async def test_a_failed_lookup_falls_back_to_the_slack_id(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    env.slack.fail_next["users.info"] = "internal_error"
    ts = await env.slack.say_in("U1", "C1", f"{BOT} hello")
    await settle(env)
    assert answers(env, ts) == ["You said: hello"]
    assert await run_users(env, "C1", ts) == ["U1"]
    assert "Person: U1" in user_text(chats(env)[-1])
    assert "users.info for U1 failed" in caplog.text
    # a lookup that gets no answer holds the turn only as long as a Slack call may take
    env.bot.gateway.timeout = 0.3
    env.slack.swallow_next["users.info"] = 1
    ts = await env.slack.say_in("U1", "C1", f"{BOT} still there?")
    await settle(env)
    assert answers(env, ts) == ["You said: still there?"]
    assert await run_users(env, "C1", ts) == ["U1"]
    # and the failure was not kept: the next turn resolves the email
    env.bot.gateway.timeout = 10.0
    ts = await env.slack.say_in("U1", "C1", f"{BOT} now?")
    await settle(env)
    assert await run_users(env, "C1", ts) == ["u1@example.com"]


async def test_without_identity_the_model_gets_the_words_alone(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", "<@UBOT|kern> hi there")  # a mention written with the bot's name
    await settle(env)
    assert user_text(chats(env)[-1]) == "hi there"
    assert await run_users(env, "C1", ts) == ["U1"]
    assert calls(env, "users.info") == []


# ----- other apps, mentions only ------------------------------------------------------------------


async def test_another_apps_message_is_ignored_by_default(env: Env) -> None:
    ts = await env.slack.say_in("U2", "C1", f"{BOT} from another app", bot_id="B9")
    dm = await env.slack.say_in("U2", "DU2", "an app's DM", bot_id="B9")
    await settle(env)
    assert chats(env) == [] and answers(env, ts) == [] and answers(env, dm) == []


@pytest.mark.parametrize("env", [{"respond_to_other_apps": True}], indirect=True)
async def test_another_apps_message_is_answered_when_configured(env: Env) -> None:
    ts = await env.slack.say_in("U2", "C1", f"{BOT} from another app", bot_id="B9")
    dm = await env.slack.say_in("U2", "DU2", "an app's DM", bot_id="B9")
    own = await env.slack.say_in("UBOT", "C1", f"{BOT} my own", bot_id="BBOT")  # the bot's own: never
    await settle(env)
    assert answers(env, ts) == ["You said: from another app"]
    assert answers(env, dm) == ["You said: an app's DM"]
    assert answers(env, own) == [] and len(chats(env)) == 2


@pytest.mark.parametrize("env", [{"reply_to_mentions_only": False}], indirect=True)
async def test_every_channel_message_is_a_turn_when_not_only_mentions(env: Env) -> None:
    plain = await env.slack.say_in("U1", "C1", "no mention here")
    mention = await env.slack.say_in("U1", "C1", f"{BOT} with a mention")  # message and app_mention events
    await settle(env)
    assert answers(env, plain) == ["You said: no mention here"]
    assert answers(env, mention) == ["You said: with a mention"]  # once
    assert len(chats(env)) == 2


async def test_by_default_a_channel_message_without_mention_starts_nothing(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", "just talking")
    await settle(env)
    assert chats(env) == [] and answers(env, ts) == []


# ----- settings, the stand-in, the manifests ------------------------------------------------------


def test_suggested_prompts_are_checked_naming_the_field() -> None:
    agent = Agent(name="Checked")
    with pytest.raises(SettingsError, match=r"suggested_prompts\[1\] needs a non-empty 'message'"):
        BotAgent(agent, suggested_prompts=[{"title": "a", "message": "b"}, {"title": "c"}])
    with pytest.raises(SettingsError, match="has 5 prompts; Slack shows at most 4"):
        BotAgent(agent, suggested_prompts=[{"title": f"t{i}", "message": "m"} for i in range(5)])
    with pytest.raises(SettingsError, match=r"suggested_prompts\[0\] has unknown keys 'text'"):
        BotAgent(agent, suggested_prompts=[{"title": "a", "message": "b", "text": "c"}])
    with pytest.raises(SettingsError, match="loading_text must be a non-empty text"):
        BotAgent(agent, loading_text="  ")
    entry = BotAgent(agent)
    assert entry.suggested_prompts is None and entry.loading_text == "Thinking..."
    assert not entry.resolve_user_identity and not entry.respond_to_other_apps and entry.reply_to_mentions_only


async def test_the_stand_in_refuses_what_slack_refuses() -> None:
    async with DevSlack(SECRET) as slack:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        thread = slack.start_pane_thread("U1")
        where = {"channel_id": thread.channel, "thread_ts": thread.ts}

        async def error(method: str, **kwargs: Any) -> str:
            with pytest.raises(SlackApiError) as failed:
                await getattr(client, method)(**kwargs)
            return str(failed.value.response["error"])

        many = [{"title": f"t{i}", "message": "m"} for i in range(5)]
        assert await error("assistant_threads_setSuggestedPrompts", **where, prompts=many) == "invalid_arguments"
        assert await error("assistant_threads_setSuggestedPrompts", **where, prompts=[{"title": "t"}]) == (
            "invalid_arguments"
        )
        assert await error("assistant_threads_setStatus", **where, status="x", loading_messages=["m"] * 11) == (
            "invalid_arguments"
        )
        assert await error("assistant_threads_setStatus", channel_id="C1", thread_ts=thread.ts, status="x") == (
            "channel_not_found"
        )
        assert await error("assistant_threads_setTitle", channel_id=thread.channel, thread_ts="1.2", title="x") == (
            "invalid_thread_ts"
        )
        assert await error("assistant_threads_setTitle", **where, title="") == "invalid_arguments"
        assert await error("users_info", user="nobody") == "user_not_found"
        await client.assistant_threads_setStatus(**where, status="Working")
        assert slack.assistant_status(thread.ts) == "Working"
        await client.chat_postMessage(channel=thread.channel, thread_ts=thread.ts, text="done")
        assert slack.assistant_status(thread.ts) == ""  # the app's reply clears it, as in Slack
        info = await client.users_info(user="U1")
        assert info["user"]["profile"]["email"] == "u1@example.com"


def test_both_manifests_open_the_assistant_pane() -> None:
    root = Path(__file__).resolve().parent.parent / "manifests"
    http = json.loads((root / "http.json").read_text())
    assert "assistant_view" in http["features"]
    assert http["features"]["app_home"]["messages_tab_read_only_enabled"] is False  # people DM the agent
    scopes, events = (
        set(http["oauth_config"]["scopes"]["bot"]),
        set(http["settings"]["event_subscriptions"]["bot_events"]),
    )
    assert {"assistant:write", "users:read", "users:read.email", "im:history"} <= scopes
    assert {"assistant_thread_started", "assistant_thread_context_changed", "message.im"} <= events
    socket = (root / "socket-mode.yaml").read_text()  # no YAML parser installed: the same lines
    assert "\n  assistant_view:" in socket and "messages_tab_read_only_enabled: false" in socket
    for line in ("assistant:write", "users:read", "users:read.email", "assistant_thread_started",
                 "assistant_thread_context_changed"):  # fmt: skip
        assert f"      - {line}" in socket


async def _run_ids(env: Env, channel: str, thread: str) -> list[str]:
    return [r.run_id for r in await env.bot.registry.db.session_runs(session_for("", channel, thread))]


async def test_the_dev_page_opens_an_assistant_chat_and_its_prompt_asks_the_agent(tmp_path: Path) -> None:
    """kern-bot dev's page: a new assistant chat shows the bundled agent's prompts; clicking one asks it, and
    the chat shows its title, then the tool-call card that cleared the status."""
    with FakeOpenAI(fallback=alert_script) as fake:
        db = SqliteDb(db_file=tmp_path / "k.db")
        entries = [e for e in example_workflows(fake.base_url) if e.conversation]
        async with DevSlackWeb(SECRET) as slack:
            bot, server, url = await start_bot(slack, Registry(entries, db))
            slack.bot_endpoint = url
            async with aiohttp.ClientSession(base_url=slack.base_url) as http:
                async with http.post("/ui/assistant", json={"user": "U1"}) as resp:
                    ts = (await resp.json())["ts"]

                def chat() -> dict[str, Any]:
                    return next(m for m in slack.state_for("U1")["dm"] if m["ts"] == ts)

                await slack.until(lambda: bool(chat()["assistant"]["prompts"]))
                prompt = chat()["assistant"]["prompts"][0]
                assert prompt["title"] == "Send an alert"
                async with http.post("/ui/assistant_say", json={"user": "U2", "ts": ts, "text": "hi"}) as resp:
                    assert resp.status == 404  # someone else's chat
                async with http.post("/ui/assistant_say", json={"user": "U1", "ts": ts, "text": prompt["message"]}):
                    pass
                await slack.until(lambda: any("send_alert" in json.dumps(r["blocks"]) for r in chat()["replies"]))
                shown = chat()["assistant"]
                assert shown["title"] == "alert Osaka about heavy rain" and shown["status"] == ""
            await bot.background.idle(10)
            await server.cleanup()
