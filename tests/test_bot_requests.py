"""kern-bot's endpoint against hostile and repeated requests: each malformed request of issue 9 (signed with
the stand-in's own helper) is answered 400 or 401 and changes nothing, a forged click is refused on the
fast path, and a replayed or retried request acts once, also across two bots sharing one database."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bot import blocks as ui
from bot.dedupe import KEEP, SeenRequests
from bot.devslack import DevSlack
from bot.examples import example_workflows
from bot.registry import BotWorkflow, Registry
from bot.tables import metadata, seen_requests
from kern.db import schema
from kern.db.base import BaseDb
from kern.workflow import Step, Workflow
from tests import test_bot_e2e
from tests.conftest import make_db, unique
from tests.test_bot_e2e import Env, run, settle, start_bot

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
    assert "Approved by <@U2>" in json.dumps(env.slack.thread(card.ts)[-1].blocks)
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
