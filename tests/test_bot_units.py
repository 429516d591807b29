"""kern-bot settings, registry, rate limits and approver rules."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.config import Settings, SettingsError
from bot.devslack import DevSlack
from bot.examples import example_workflows
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry, load_registry
from bot.slack.app import make_client
from bot.slack.gateway import SlackCallFailed, SlackGateway
from kern.db.sqlite import SqliteDb
from kern.workflow import Step, Workflow
from tests.conftest import unique
from tests.test_bot_e2e import SECRET, start_bot

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LIST = [Workflow(name="one", steps=[Step(name="s", executor=lambda s: 1)])]


def test_registry_loading(tmp_path: Path) -> None:
    db = SqliteDb(db_file=tmp_path / "k.db")
    assert sorted(load_registry(None, db).entries) == sorted(e.name for e in example_workflows())
    assert list(load_registry("tests.test_bot_units:EXAMPLE_LIST", db).entries) == ["one"]
    with pytest.raises(SettingsError, match="has no attribute 'missing'"):
        load_registry("tests.test_bot_units:missing", db)
    with pytest.raises(SettingsError, match="must name a list or dict of Workflow objects"):
        load_registry("tests.test_bot_units:ROOT", db)
    twice = [BotWorkflow(Workflow(name="a", steps=[])), BotWorkflow(Workflow(name="a", steps=[]))]
    with pytest.raises(SettingsError, match="Two workflows are named 'a'"):
        Registry(twice, db)
    # every run of a registered workflow lands in the bot's database, agents' included
    entry = load_registry("tests.test_bot_units:EXAMPLE_LIST", db).get("one")
    assert entry is not None and entry.workflow.db is db


async def test_rate_limited_calls_are_retried_by_whoever_owes_them(tmp_path: Path) -> None:
    """The client does not sleep on a 429 (that held back every call behind it): the gateway says so at once,
    and a call someone waits on (`send_retrying`) is tried again after Slack's Retry-After."""
    async with DevSlack(SECRET) as slack:
        slack.rate_limit_next["chat.postMessage"] = 2
        gateway = SlackGateway(make_client(slack.token, slack.api_url))
        with pytest.raises(SlackCallFailed) as refused:
            await gateway.send("chat_postMessage", channel="C1", text="hi")
        assert (refused.value.kind, refused.value.retry_after, refused.value.sent) == ("transient", 0.0, True)
        response = await gateway.send_retrying(
            "chat_postMessage", within=10, channel="C1", text="hi", blocks=[ui.section("hi")]
        )
        assert response["ok"]
        assert [c[2].get("error") for c in slack.calls if c[0] == "chat.postMessage"] == [
            "ratelimited",
            "ratelimited",
            None,
        ]


async def test_channel_members_rule(tmp_path: Path) -> None:
    db = SqliteDb(db_file=tmp_path / "k.db")
    wf = Workflow(name=unique("members"), steps=[Step(name="g", executor=lambda s: "ok", requires_confirmation=True)])
    registry = Registry([BotWorkflow(wf, name="members", approvers=Approvers(channel_members=True))], db)
    async with DevSlack(SECRET) as slack:
        bot, server, url = await start_bot(slack, registry)
        slack.bot_endpoint = url
        slack.members["C1"] = ["UIN"]
        try:
            await slack.command("run members")
            await slack.until(lambda: any("Approval needed" in json.dumps(m.blocks) for m in slack.messages.values()))
            await slack.click(ui.CONFIRM, user="UOUT")
            await bot.background.idle()
            assert slack.ephemeral[-1] == {
                "channel": "C1",
                "user": "UOUT",
                "text": "Only members of this channel may answer this.",
                "thread_ts": slack.ephemeral[-1]["thread_ts"],
            }
            await slack.click(ui.CONFIRM, user="UIN")
            await bot.background.idle()
            card = next(m for m in slack.messages.values() if m.thread_ts is None)
            assert "Completed" in json.dumps(card.blocks)
        finally:
            await server.cleanup()


async def test_socket_mode(tmp_path: Path) -> None:
    from bot.cli import _socket_mode
    from bot.slack.app import build_bot

    db = SqliteDb(db_file=tmp_path / "k.db")
    async with DevSlack(SECRET) as slack:
        bot = build_bot(load_registry(None, db), make_client(slack.token, slack.api_url), None)
        settings = Settings(bot_token=slack.token, app_token="xapp-test", db=str(tmp_path / "k.db"))
        task = asyncio.create_task(_socket_mode(bot, settings, 0.2))
        try:
            ack = await slack.socket_command("run deploy web")
            assert ack["payload"]["text"] == "Starting `deploy`…"
            await slack.until(lambda: any("Approval needed" in json.dumps(m.blocks) for m in slack.messages.values()))
            # Slack redelivers an envelope it thinks was not acked: acked again, nothing starts again
            again = await slack.socket_send({**slack.socket_sent[-1], "retry_attempt": 1, "retry_reason": "timeout"})
            assert again["payload"]["text"] == "Starting `deploy`…"
            await asyncio.sleep(0.3)
            await bot.background.idle()
            assert sum(1 for m in slack.messages.values() if m.thread_ts is None) == 1
            assert (
                "apps.connections.open",
                {},
                {"ok": True, "url": slack.api_url.replace("http", "ws") + "socket"},
            ) in slack.calls
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await bot.background.idle()


def test_user_text_is_shown_as_written() -> None:
    from bot.blocks.text import quote

    assert quote("plain <b> & text", 100) == "plain &lt;b&gt; &amp; text"  # nothing to neutralize: stays plain
    assert quote("ship *it* _now_", 100) == "`ship *it* _now_`"  # a code span: Slack formats nothing inside
    assert (
        quote("a `tick`", 100) == "```a `tick` ```"
    )  # backticks kept as written (no look-alikes), apart from the fence
    assert quote("line 1\n*line 2*", 100) == "```line 1\n*line 2*```"
    assert len(quote("*" * 5000, 300)) <= 300
