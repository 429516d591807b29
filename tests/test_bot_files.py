"""Files in a conversation with kern-bot (issue 28, item 4), end to end through the stand-in: a person shares
files with a mention or a DM (a `file_share` message, its files downloaded from `url_private_download` with
the bot token) and they reach the model as content parts (asserted on the requests the real `openai` client
sent the scripted model); what is skipped is said in the thread, once; files the agent's tool makes are
uploaded in the thread (files.getUploadURLExternal, the upload URL, files.completeUploadExternal) exactly
once, through a 429, a transient error and a lost answer; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.runs.sweeper import sweep_once
from bot.scripted_model import user_text
from bot.store.tables import outbox
from kern.media import File, Image
from kern.tools import tool
from kern.tools.function import ToolResult
from tests.conversation_env import Env, settle, talking_bot
from tests.openai_stub import FakeOpenAI, Reply, call, text, tool_results

BOT = "<@UBOT>"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\xff"
CHART = b"month,sales\njan,3\n"


@tool
def draw_chart(title: str) -> ToolResult:
    """Draw a chart of the sales."""
    return ToolResult(
        content=f"Drew {title}",
        images=[Image(content=PNG, mime_type="image/png", alt_text=f"{title} chart")],
        files=[File(content=CHART, mime_type="text/csv", filename=f"{title}.csv")],
    )


def script(body: dict[str, Any]) -> Reply:
    results = tool_results(body)
    if results:
        return text(f"Here it is: {results[-1]}")
    said = user_text(body)
    if said.startswith("chart "):
        return call("draw_chart", title=said.removeprefix("chart "))
    return text(f"You said: {said}")


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(fallback=script) as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    async with talking_bot(db_kind, tmp_path, model, tools=[draw_chart], rules=getattr(request, "param", None)) as e:
        e.bot.gateway.timeout = 0.5  # a call whose answer is lost is given up after this
        yield e


def in_thread(env: Env, ts: str) -> list[Any]:
    """What the app posted in the thread of `ts`, oldest first."""
    return sorted((m for m in env.slack.thread(ts) if not m.user and m.ts != ts), key=lambda m: float(m.ts))


def answers(env: Env, ts: str) -> list[str]:
    return [m.text for m in in_thread(env, ts) if (m.metadata or {}).get("event_type") == "kern_answer"]


def notices(env: Env, ts: str) -> list[str]:
    return [m.text for m in in_thread(env, ts) if m.text.startswith(":paperclip:")]


def last_user_content(env: Env) -> Any:
    chats = [r for r in env.model.requests if r["path"] == "chat"]
    return next(m for m in reversed(chats[-1]["messages"]) if m["role"] == "user")["content"]


async def sweep_until(env: Env, done: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)


async def test_an_image_shared_with_a_mention_reaches_the_model_as_an_image_part(env: Env) -> None:
    ts = await env.slack.share_in("U1", "C1", f"{BOT} what is this?", [("cat.png", "image/png", PNG)])
    await settle(env)
    assert last_user_content(env) == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}},
    ]
    assert answers(env, ts) == ["You said: what is this?"] and notices(env, ts) == []
    # fetched once, with the bot token (as Slack requires); the message event and app_mention started one turn
    assert [with_token for _file, with_token in env.slack.downloads] == [True]
    assert len([r for r in env.model.requests if r["path"] == "chat"]) == 1


async def test_a_text_file_in_a_dm_reaches_the_model_as_text(env: Env) -> None:
    ts = await env.slack.share_in("U1", "DU1", "", [("notes.txt", "text/plain", b"buy milk\nand bread")])
    await settle(env)  # no words with it: the file is the message
    assert last_user_content(env) == [{"type": "text", "text": "File notes.txt:\nbuy milk\nand bread"}]
    assert answers(env, ts) == ["You said: File notes.txt:\nbuy milk\nand bread"]


@pytest.mark.parametrize("env", [{"max_file_size": 1000}], indirect=True)
async def test_files_too_large_or_unreadable_are_left_out_and_said_once(env: Env) -> None:
    shared = [
        ("huge.png", "image/png", PNG * 200),  # 3,600 bytes: over the 1,000-byte limit
        ("<b>archive</b>.zip", "application/zip", b"PK\x03\x04"),
        ("ok.csv", "text/csv", b"a,b\n"),
    ]
    ts = await env.slack.share_in("U1", "C1", f"{BOT} read these", shared)
    await settle(env)
    assert last_user_content(env) == [
        {"type": "text", "text": "read these"},
        {"type": "text", "text": "File ok.csv:\na,b\n"},
    ]
    [notice] = notices(env, ts)  # one message for both, before the answer
    assert "I left out 2 files you shared" in notice
    assert "`huge.png`: it is 3.5 KB, over the 1000 bytes limit" in notice
    assert "`&lt;b&gt;archive&lt;/b&gt;.zip`: its type (application/zip) is not one I can read" in notice
    said = [m.text for m in in_thread(env, ts)]
    assert len(said) == 2 and notice in said  # told once, and answered (streamed: the answer starts first)
    assert next(t for t in said if t != notice).startswith("You said: read these")
    assert [name for f, _ in env.slack.downloads for name in [env.slack.files[f].info["name"]]] == ["ok.csv"]
    await sweep_once(env.bot.runner, env.bot.registry)
    assert len(notices(env, ts)) == 1


async def test_a_failed_download_is_said_and_the_turn_goes_on(env: Env) -> None:
    ts, envelopes = env.slack.person_shares("U1", "C1", f"{BOT} look", [("photo.jpg", "image/jpeg", PNG)])
    env.slack.broken_files.update(env.slack.files)
    for envelope in envelopes:
        assert (await env.slack.send(json.dumps(envelope).encode(), "application/json"))[0] == 200
    await settle(env)
    [notice] = notices(env, ts)
    assert "`photo.jpg`: I could not download it: Slack answered HTTP 500" in notice
    assert last_user_content(env) == "look" and answers(env, ts) == ["You said: look"]


async def test_without_the_token_slack_sends_its_sign_in_page(env: Env) -> None:
    _ts, _envelopes = env.slack.person_shares("U1", "C1", "x", [("a.txt", "text/plain", b"secret")])
    [file] = env.slack.files.values()
    assert env.slack.session is not None
    async with env.slack.session.get(file.info["url_private_download"]) as response:
        assert response.content_type == "text/html" and b"secret" not in await response.read()
    headers = {"Authorization": f"Bearer {env.slack.token}"}
    async with env.slack.session.get(file.info["url_private_download"], headers=headers) as response:
        assert await response.read() == b"secret"


async def test_files_the_agent_makes_are_uploaded_in_the_thread(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} chart sales")
    await settle(env)
    assert answers(env, ts) == ["Here it is: Drew sales"]
    assert env.slack.uploaded(ts) == [("sales chart", PNG), ("sales.csv", CHART)]
    posted = in_thread(env, ts)
    assert posted[0].metadata and posted[-1].files  # the answer first, then the files
    complete = [a for m, a, b in env.slack.calls if m == "files.completeUploadExternal"]
    assert all(a["channel_id"] == "C1" and a["thread_ts"] == ts for a in complete) and len(complete) == 2
    await sweep_once(env.bot.runner, env.bot.registry)
    assert len(env.slack.uploaded(ts)) == 2  # delivered: nothing more


async def test_a_lost_completion_answer_does_not_upload_twice(env: Env) -> None:
    env.slack.fault("files.completeUploadExternal", "lose")  # Slack shares the file; its answer never comes
    ts = await env.slack.say_in("U1", "C1", f"{BOT} chart costs")
    await settle(env)
    assert answers(env, ts) == ["Here it is: Drew costs"]
    assert env.slack.uploaded(ts) == [("costs chart", PNG)]  # shared, but the bot does not know it yet
    await sweep_until(env, lambda: len(env.slack.uploaded(ts)) == 2)
    await sweep_once(env.bot.runner, env.bot.registry)
    assert env.slack.uploaded(ts) == [("costs chart", PNG), ("costs.csv", CHART)]  # each once
    looked = [a["file"] for m, a, b in env.slack.calls if m == "files.info"]
    assert len(looked) == 1  # the retry asked Slack about the file it had started, and adopted it


async def test_a_429_and_an_error_on_the_upload_path_upload_once(env: Env) -> None:
    env.slack.rate_limit_next["files.getUploadURLExternal"] = 1
    env.slack.fault("files.completeUploadExternal", "error", error="internal_error", status=500)
    ts = await env.slack.say_in("U1", "DU1", "chart margins")
    await settle(env)
    assert answers(env, ts) == ["Here it is: Drew margins"]  # the answer is not held back by the files
    await sweep_until(env, lambda: len(env.slack.uploaded(ts)) == 2)
    await sweep_once(env.bot.runner, env.bot.registry)
    assert env.slack.uploaded(ts) == [("margins chart", PNG), ("margins.csv", CHART)]
    refused = [b.get("error") for m, a, b in env.slack.calls if m.startswith("files.") and not b.get("ok")]
    assert refused == ["ratelimited", "internal_error"]


async def test_the_upload_is_owed_through_a_dead_process(env: Env) -> None:
    """The answer is posted, and the process dies before the files go: its "files" row stays pending, held by
    it; once the hold expires a sweep of another process takes it and uploads each file once."""
    env.slack.fault("files.getUploadURLExternal", "hang")  # its upload never got going
    ts = await env.slack.say_in("U1", "C1", f"{BOT} chart risks")
    await settle(env)
    assert answers(env, ts) == ["Here it is: Drew risks"] and env.slack.uploaded(ts) == []
    held = outbox.update().where(outbox.c.kind == "files", outbox.c.status == "pending")
    dead = held.values(claimed_by="a-dead-process", claimed_until=time.time() - 1, next_at=0, attempts=0)
    await env.bot.store.db.run_transaction(lambda conn: conn.execute(dead), tables=env.bot.store._tables)
    await sweep_until(env, lambda: len(env.slack.uploaded(ts)) == 2)
    await sweep_once(env.bot.runner, env.bot.registry)
    assert env.slack.uploaded(ts) == [("risks chart", PNG), ("risks.csv", CHART)]


async def test_a_message_with_only_unreadable_files_starts_no_turn(env: Env) -> None:
    ts = await env.slack.share_in("U1", "DU1", "", [("movie.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42")])
    await settle(env)
    assert [r for r in env.model.requests if r["path"] == "chat"] == [] and in_thread(env, ts) == []
    [told] = [e for e in env.slack.ephemeral if e.get("user") == "U1"]
    assert told.get("thread_ts") == ts and "`movie.mp4`: its type (video/mp4) is not one I can read" in told["text"]
