"""kern-bot's endpoint against hostile and repeated requests: each malformed request of issue 9 (signed with
the stand-in's own helper) is answered 400 or 401 and changes nothing, a forged click is refused on the
fast path, and a replayed or retried request acts once, also across two bots sharing one database."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.examples import example_workflows
from bot.registry import BotWorkflow, Registry
from bot.slack.connections import ConnectionGuard, GuardedSite
from bot.slack.dedupe import KEEP, SeenRequests
from bot.store.tables import metadata, seen_requests
from kern.db import schema
from kern.db.base import BaseDb
from kern.workflow import Step, Workflow
from tests import test_bot_e2e
from tests.conftest import make_db, unique
from tests.test_bot_e2e import SECRET, Env, run, settle, start_bot
from tests.test_bot_ops import _tables, bot_process

env = test_bot_e2e.env  # the fixture: a bot on the real endpoint and the stand-in, on SQLite or PostgreSQL

FREE_INPUT = BotWorkflow(
    Workflow(name="free", steps=[Step(name="ask", executor=lambda s: "asked", requires_user_input=True)]),
    name="free",
)


async def post(slack: DevSlack, body: bytes, headers: dict[str, str], endpoint: str | None = None) -> tuple[int, str]:
    async with slack.session.post(endpoint or slack.bot_endpoint, data=body, headers=headers) as resp:  # type: ignore[union-attr]
        return resp.status, await resp.text()


def command_body(text: str, user: str = "U1", channel: str = "C1") -> bytes:
    """A slash command as Slack sends it: every delivery of one invocation has this same body."""
    form = {
        "token": "t",
        "team_id": "T1",
        "channel_id": channel,
        "user_id": user,
        "user_name": user,
        "command": "/kern",
        "text": text,
        "trigger_id": f"trig-{uuid.uuid4().hex}",
    }
    return urllib.parse.urlencode(form).encode()


def payload_body(payload: str) -> bytes:
    return urllib.parse.urlencode({"payload": payload}).encode()


async def assert_serving(env: Env) -> None:
    status, body, _ = await env.slack.command("help")
    assert status == 200 and "/kern run <workflow>" in body, (status, body)


async def run_rows(db: BaseDb, workflow: str) -> int:
    runs = schema.runs
    return await db.run_transaction(
        lambda c: c.execute(sa.select(sa.func.count()).where(runs.c.workflow_name == workflow)).scalar(),
        write=False,
    )


def cards(slack: DevSlack) -> list[Any]:
    return [m for m in slack.messages.values() if m.thread_ts is None]


# ----- malformed requests: 400 or 401, never 500, and the bot keeps serving --------------------------------
def _click() -> bytes:
    """A well-formed click on nothing in particular (its pause id is unknown to the bot)."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U1"},
        "trigger_id": "t1",
        "actions": [{"type": "button", "action_id": ui.CONFIRM, "value": "0" * 32}],
    }
    return payload_body(json.dumps(payload))


def _headers(env: Env, body: bytes, **override: str | None) -> dict[str, str]:
    headers = env.slack.signed(body)
    for name, value in override.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return headers


HEADER_CASES: dict[str, tuple[str, Any]] = {  # name -> (body kind, header override)
    "click without timestamp": ("click", {"X_Slack_Request_Timestamp": None}),
    "click with non-numeric timestamp": ("click", {"X_Slack_Request_Timestamp": "soon"}),
    "command with non-numeric timestamp": ("command", {"X_Slack_Request_Timestamp": "1e9"}),
    "click with a non-ASCII signature": ("click", {"X_Slack_Signature": "v0=\u00e9"}),
}


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("case", sorted(HEADER_CASES))
async def test_bad_timestamp_or_signature_header_is_401(env: Env, case: str) -> None:
    kind, override = HEADER_CASES[case]
    body = _click() if kind == "click" else command_body("list")
    status, text = await post(env.slack, body, _headers(env, body, **override))
    assert status == 401, (status, text)
    await assert_serving(env)


BODY_CASES: dict[str, bytes] = {
    "command that is not UTF-8": b"command=/kern&text=run+deploy+\xff\xfe&user_id=U1&channel_id=C1&trigger_id=t",
    "click that is not UTF-8": b'payload={"type":"block_actions","user":{"id":"U1"},"note":"\xc3\x28"}',
    "payload that is not JSON": b"payload=not-json",
    "payload that is a JSON list": payload_body("[1, 2]"),
    "JSON nested 100,000 levels": payload_body('{"type":"view_submission","x":' + "[" * 100_000 + "]" * 100_000 + "}"),
    "JSON nested 200 levels": payload_body('{"type":"view_submission","x":' + "[" * 200 + "]" * 200 + "}"),
}


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("case", sorted(BODY_CASES))
async def test_unreadable_body_is_400(env: Env, case: str) -> None:
    body = BODY_CASES[case]
    status, text = await post(env.slack, body, env.slack.signed(body))
    assert status == 400, (status, text)
    await settle(env)
    assert cards(env.slack) == []  # nothing started
    await assert_serving(env)


VIEW_CASES: dict[str, tuple[str, Any]] = {  # name -> (callback_id to submit under, how to break the view)
    "without private_metadata": (ui.V_INPUT, lambda v: v.pop("private_metadata")),
    "without state": (ui.V_INPUT, lambda v: v.pop("state")),
    "private_metadata not text": (ui.V_INPUT, lambda v: v.update(private_metadata={"id": 1})),
    "text form without its text": (ui.V_EDIT, lambda v: v.update(state={"values": {}})),
    "state values not objects": (ui.V_INPUT, lambda v: v.update(state={"values": {"f0": ["x"]}})),
}


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("case", sorted(VIEW_CASES))
async def test_malformed_form_submission_is_400_and_changes_nothing(env: Env, case: str) -> None:
    card = await run(env, "report")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    callback_id, breaks = VIEW_CASES[case]
    view = {**env.slack.last_view(), "callback_id": callback_id, "state": {"values": {}}}
    breaks(view)
    body = env.slack.interaction_body({"type": "view_submission", "user": {"id": "U1"}, "view": view})
    status, text = await post(env.slack, body, env.slack.signed(body))
    assert status == 400, (status, text)
    await settle(env)
    assert "Waiting: report" in env.card_text()
    assert env.slack.thread(card.ts)[-1].edits == 0  # the pause message still asks
    await assert_serving(env)


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_listener_failure_on_bad_input_is_not_a_500(env: Env) -> None:
    """Past the checks, a value only the listener can judge (a select option beyond the list) makes it
    raise: the last-resort guard answers 400, and the run stays paused."""
    await run(env, "report")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": "Q4"}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "99"}}},
    }
    status, text, _ = await env.slack.submit(env.slack.last_view()["id"], values)
    assert status == 400 and "ref" in json.loads(text), (status, text)
    await settle(env)
    assert "Waiting: report" in env.card_text()
    await assert_serving(env)


@pytest.mark.parametrize("db_kind", ["sqlite"])
@pytest.mark.parametrize("env", [[FREE_INPUT]], indirect=True)
async def test_free_form_input_that_is_not_an_object_is_an_inline_error(env: Env) -> None:
    await run(env, "free")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    view_id = env.slack.last_view()["id"]
    for raw in ("null", "[1, 2]", "3", '"text"', "[" * 3000 + "]" * 3000):
        status, text, _ = await env.slack.submit(view_id, {"free": {"v": {"type": "plain_text_input", "value": raw}}})
        assert status == 200, (raw[:20], status, text)
        assert json.loads(text) == {"response_action": "errors", "errors": {"free": "Enter a JSON object"}}
    await settle(env)
    assert "Waiting: ask" in env.card_text()
    status, text, _ = await env.slack.submit(view_id, {"free": {"v": {"type": "plain_text_input", "value": "{}"}}})
    assert status == 200 and text == ""
    await settle(env)
    assert "Completed" in env.card_text()


# ----- the click fast path checks its own signature -------------------------------------------------------
@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_forged_click_is_refused_on_the_fast_path(env: Env) -> None:
    card = await run(env, "deploy api")
    body = env.slack.interaction_body(env.slack.click_payload(ui.CONFIRM, user="U2"))
    forged = {**env.slack.signed(body), "X-Slack-Signature": "v0=" + "0" * 64}
    status, text = await post(env.slack, body, forged)
    assert status == 401, (status, text)
    stale = env.slack.signed(body, timestamp=int(time.time()) - 301)
    status, text = await post(env.slack, body, stale)
    assert status == 401, (status, text)
    await settle(env)
    assert "Waiting: deploy" in env.card_text()
    assert env.slack.thread(card.ts)[-1].edits == 0 and env.slack.ephemeral == []  # "Starting…" went, nothing came


# ----- replays and retries act once -------------------------------------------------------------------------
async def test_same_signed_command_twice_starts_one_run(env: Env) -> None:
    body = command_body("run deploy api")
    headers = env.slack.signed(body)
    first = await post(env.slack, body, headers)
    again = await post(env.slack, body, headers)
    assert first[0] == 200 and "Starting" in first[1]
    assert again == first  # acked like the first delivery (the ack never waits for the database)...
    await settle(env)  # ...but what it would start does not run
    assert len(cards(env.slack)) == 1
    assert await run_rows(env.db, env.bot.registry.get("deploy").workflow.name) == 1  # type: ignore[union-attr]


async def test_a_retry_does_nothing_a_second_time(env: Env) -> None:
    body = command_body("run deploy api")
    assert (await post(env.slack, body, env.slack.signed(body)))[0] == 200
    # Slack signs a retry anew (a later timestamp), with the same body and X-Slack-Retry-Num
    retry = {**env.slack.signed(body, int(time.time()) + 1), "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "x"}
    status, _ = await post(env.slack, body, retry)
    assert status == 200
    await settle(env)
    assert len(cards(env.slack)) == 1
    assert await run_rows(env.db, env.bot.registry.get("deploy").workflow.name) == 1  # type: ignore[union-attr]


@pytest.mark.parametrize("db_kind", ["sqlite"])
async def test_a_replayed_click_acts_once(env: Env) -> None:
    card = await run(env, "deploy api")
    body = env.slack.interaction_body(env.slack.click_payload(ui.CONFIRM, user="U2"))
    headers = env.slack.signed(body)
    assert [(await post(env.slack, body, headers))[0] for _ in range(2)] == [200, 200]
    await settle(env)
    assert "Completed" in env.card_text()
    assert "Approved by <@U2>" in json.dumps([m for m in env.slack.thread(card.ts) if m.blocks][-1].blocks)
    assert not [e for e in env.slack.ephemeral if e["text"].startswith("Already")]  # the replay did nothing


def twin_registries(first: BaseDb, second: BaseDb) -> tuple[Registry, Registry]:
    """The same workflows (same names) for two bot processes on one database."""
    names = {entry.name: unique(entry.name) for entry in example_workflows()}

    def make(db: BaseDb) -> Registry:
        entries = example_workflows()
        for entry in entries:
            entry.workflow.name = names[entry.name]
        return Registry(entries, db)

    return make(first), make(second)


async def test_replay_across_two_bots_sharing_a_database(db_kind: str, tmp_path: Path) -> None:
    one, two = twin_registries(make_db(db_kind, tmp_path), make_db(db_kind, tmp_path))
    async with DevSlack("test-signing-secret") as slack:
        bot_one, server_one, endpoint_one = await start_bot(slack, one)
        bot_two, server_two, endpoint_two = await start_bot(slack, two)
        try:
            body = command_body("run deploy api")
            headers = slack.signed(body)
            answers = await asyncio.gather(
                post(slack, body, headers, endpoint_one), post(slack, body, headers, endpoint_two)
            )
            assert sorted(status for status, _ in answers) == [200, 200]
            await asyncio.sleep(0.05)
            await bot_one.background.idle(15)
            await bot_two.background.idle(15)
            assert len(cards(slack)) == 1
            assert await run_rows(one.db, one.get("deploy").workflow.name) == 1  # type: ignore[union-attr]
        finally:
            for bot, server in ((bot_one, server_one), (bot_two, server_two)):
                await bot.background.idle(10)
                await server.cleanup()


async def test_seen_requests_are_forgotten_after_the_window(db: BaseDb) -> None:
    """A key is refused while remembered; a process's first insert (then one a minute) prunes rows older
    than KEEP, and only those."""
    old, fresh = unique("old-key"), unique("fresh-key")
    seen = SeenRequests(db)
    assert await seen.first(fresh) and not await seen.first(fresh)
    await db.run_transaction(
        lambda c: c.execute(seen_requests.insert().values(key=old, seen_at=time.time() - KEEP - 1)),
        tables=metadata,
    )
    pruner = SeenRequests(db)
    assert not await pruner.first(old)  # still remembered: the prune runs after the insert attempt...
    assert await pruner.first(old)  # ...and forgot it
    assert not await seen.first(fresh)  # a recent key stays


# ----- slow connections (issue 24, item 27) ------------------------------------------------------------------
SLOW_KINDS = (
    b"",  # connects, sends nothing
    b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n",  # headers begun, never finished
    b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 1000\r\n\r\ncommand=/k",  # a body never finished
)


async def _slow_connection(port: int, start: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A connection that begins a request and never finishes it; None if the bot closed it at once."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 20)
        if start:
            writer.write(start)
            await writer.drain()
    except (ConnectionError, TimeoutError):
        return None
    return reader, writer


async def _closed_after(reader: asyncio.StreamReader, started: float, bound: float) -> float | None:
    """Seconds from `started` until the bot closes the connection; None if still open after `bound`."""
    try:
        while await asyncio.wait_for(reader.read(65536), max(0.01, started + bound - time.monotonic())):
            pass
    except TimeoutError:
        return None
    except ConnectionError:
        pass
    return time.monotonic() - started


def _as_deployed() -> None:
    """In the bot's process, before exec: the usual limit of 1,024 open files."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))


async def test_slow_connections_do_not_starve_the_bot(tmp_path: Path) -> None:
    """1,100 connections that never finish their request, against the real `kern-bot serve` (1,024 files):
    a signed command still gets its answer within Slack's 3 s and its run's card is posted (the bot can
    still reach its database and Slack); every slow connection is closed within the read bound."""
    read_seconds = 2.0
    db_file = tmp_path / "kern.db"
    await _tables(db_file)
    settings = {"KERN_REQUEST_READ_SECONDS": str(read_seconds), "KERN_MAX_CONNECTIONS": "512"}
    async with DevSlack(SECRET) as slack, bot_process(slack, db_file, settings, _as_deployed) as (proc, base, _ops):
        slack.bot_endpoint = base + "/slack/events"
        port = int(base.rsplit(":", 1)[1])
        started = time.monotonic()
        opened = await asyncio.gather(*(_slow_connection(port, SLOW_KINDS[i % 3]) for i in range(1100)))
        slow = [c for c in opened if c is not None]
        assert len(slow) > 900  # most got in (the others were closed at once, to keep the bot's files)
        files = len(os.listdir(f"/proc/{proc.pid}/fd"))
        asked = time.monotonic()
        status, body, _ = await asyncio.wait_for(slack.command("run deploy api"), 10)
        answered = time.monotonic() - asked
        assert status == 200 and "Starting" in body, body
        assert answered < 3.0, answered
        await slack.until(lambda: any("Deploy to production?" in json.dumps(m.blocks) for m in slack.messages.values()))
        assert files < 1024 - 64, files  # room kept for the database and Slack
        bound = read_seconds + 3.0  # the bound, plus the time the 1,100 connections took to open
        closed = await asyncio.gather(*(_closed_after(reader, started, bound + 5) for reader, _ in slow))
        assert max(c for c in closed if c is not None) < bound + (asked - started), closed
        # A connection that sent nothing may never have reached the bot: when 1,100 arrive at once the kernel's
        # accept queue overflows and it keeps a few half-open (the client believes it is connected). Its first
        # byte hands it to the bot, which then closes it within the bound as well.
        unseen = [(reader, writer) for (reader, writer), c in zip(slow, closed, strict=True) if c is None]
        assert len(unseen) < len(slow) // 20, len(unseen)
        for _, writer in unseen:
            writer.write(b"P")
        nudged = time.monotonic()
        late = await asyncio.gather(*(_closed_after(reader, nudged, read_seconds + 3) for reader, _ in unseen))
        assert None not in late, late
        for _, writer in slow:
            writer.close()
        # one slow connection alone (under the limit): closed at the read bound, not before
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        alone = await _closed_after(reader, time.monotonic(), read_seconds + 5)
        writer.close()
        assert alone is not None and read_seconds - 0.2 < alone < read_seconds + 1.5, alone
        status, body, _ = await asyncio.wait_for(slack.command("help"), 3)  # and it keeps serving
        assert status == 200


async def test_the_guard_never_cuts_an_answer_short_and_closes_the_oldest_waiting_connection() -> None:
    """The guard alone (bot/slack/connections.py): a request answered after longer than the read bound is not cut
    off; the next request on that connection gets the read bound from its first byte, not the idle bound;
    at the connection limit the oldest connection without a request in progress is closed, never a busy one."""
    guard = ConnectionGuard(max_connections=2, read_seconds=0.3, idle_seconds=5.0)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text=(await request.read()).decode())

    app = web.Application()
    app.router.add_post("/x", guard.bounded(slow))
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, guard)
    await site.start()
    request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\ndone"
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", site.port)
        writer.write(request)
        answer = await asyncio.wait_for(reader.readuntil(b"done"), 3)
        assert answer.startswith(b"HTTP/1.1 200")  # 0.6 s of work, twice the read bound: not cut off
        await asyncio.sleep(0.5)  # idle past the read bound: still open (the idle bound is 5 s)
        writer.write(b"POST /x HTTP/1.1\r\n")  # the next request, never finished
        began = time.monotonic()
        assert await _closed_after(reader, began, 3) is not None
        assert 0.2 < time.monotonic() - began < 1.0
        writer.close()

        busy_reader, busy_writer = await asyncio.open_connection("127.0.0.1", site.port)
        busy_writer.write(request)  # answered in 0.6 s
        await asyncio.sleep(0.1)
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", site.port)  # sends nothing
        await asyncio.sleep(0.05)
        _, third = await asyncio.open_connection("127.0.0.1", site.port)  # over the limit of 2
        assert await _closed_after(idle_reader, time.monotonic(), 0.2) is not None  # the waiting one, at once
        assert (await asyncio.wait_for(busy_reader.readuntil(b"done"), 3)).startswith(b"HTTP/1.1 200")
        for w in (busy_writer, idle_writer, third):
            w.close()
    finally:
        await runner.cleanup()
