"""`@approval` records resolved outside Slack (issue 28, item 3): through kern's approvals API, from another
process (AgentOS's `/approvals/{id}/resolve`, on a store of its own) or from Python (`update_approval`). With
nobody clicking, the bots' sweeps notice it: the pause message shows the call decided on its record, and the
run goes on, once, even with two bot processes sweeping at once. End to end through the stand-in, the agent
on the real `openai` client against the scripted model, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotAgent, BotWorkflow, Registry
from bot.slack.app import KernBot, build_bot, make_client
from bot.slack.server import create_web_app
from bot.store import approval_rows
from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.os import AgentOS
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results
from tests.test_bot_approval_tools import refund, refunded
from tests.test_bot_e2e import SECRET

SWEEP = 0.2  # seconds between sweeps of each bot here
@dataclass
class Env:
    slack: DevSlack
    bots: list[KernBot]
    model: FakeOpenAI
    db: BaseDb
    name: str
    talks: bool


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def entry(name: str, model: FakeOpenAI, talks: bool) -> BotWorkflow:
    agent = Agent(name="Refunder", model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"), tools=[refund])
    rules = Approvers(users=("UADMIN", "UOPS"))
    if talks:
        return BotAgent(agent, name=name, approvers=rules)
    return BotWorkflow(
        Workflow(name=unique(name), steps=[Step(name="refund", agent=agent)]), name=name, approvers=rules
    )


async def serve(slack: DevSlack, registry: Registry) -> tuple[KernBot, web.AppRunner, str]:
    """A bot whose own sweeper runs every SWEEP seconds (as `kern-bot serve` runs it)."""
    bot = build_bot(registry, make_client(slack.token, slack.api_url), SECRET)
    runner = web.AppRunner(create_web_app(bot, sweep_interval=SWEEP, ops=("127.0.0.1", 0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return bot, runner, f"http://127.0.0.1:{port}/slack/events"


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    """Two bot processes (each its own store, sweeping) on one database; `request.param`: the entry converses."""
    refunded.clear()
    talks = bool(getattr(request, "param", False))
    name = unique("refunds")
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        servers = [await serve(slack, Registry([entry(name, model, talks)], make_db(db_kind, tmp_path))) for _ in "ab"]
        slack.bot_endpoint = servers[0][2]
        try:
            yield Env(slack, [s[0] for s in servers], model, db, name, talks)
        finally:
            for bot, server, _url in servers:
                await bot.background.idle(10)
                await server.cleanup()


@asynccontextmanager
async def agent_os(db: BaseDb) -> AsyncIterator[str]:
    """AgentOS on its own store (another process's, as far as the bots can tell), served on loopback."""
    runner = web.AppRunner(AgentOS(db=db).get_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


def pause_message(env: Env) -> str:
    found = [json.dumps(m.blocks) for m in env.slack.messages.values() if "wants to call `" in json.dumps(m.blocks)]
    return found[-1] if found else ""


def finished(env: Env) -> bool:
    """The run is over as Slack shows it: the card completed, or (a conversation) the answer posted."""
    if env.talks:
        return any((m.metadata or {}).get("event_type") == "kern_answer" for m in env.slack.messages.values())
    cards = [m for m in env.slack.messages.values() if m.thread_ts is None and not m.user]
    return bool(cards) and "Completed" in json.dumps(cards[-1].blocks)


async def paused(env: Env) -> dict[str, Any]:
    env.model.script(call("refund", order="A-17"), echo_tool_results)
    if env.talks:
        await env.slack.say_in("U1", "C1", "<@UBOT> refund A-17")
    else:
        await env.slack.command(f"run {env.name} refund A-17", user="U1")
    await env.slack.until(lambda: ui.TOOL_OK in pause_message(env))
    mine = [
        a for a in await env.db.list_approvals(status="pending", limit=10_000) if a["tool_args"] == {"order": "A-17"}
    ]
    return max(mine, key=lambda a: a["requested_at"])  # the shared PostgreSQL database keeps earlier tests' records


@pytest.mark.parametrize("env", [False, True], indirect=True, ids=["workflow", "conversation"])
async def test_a_record_resolved_through_agent_os_moves_the_run(env: Env, db_kind: str, tmp_path: Path) -> None:
    record = await paused(env)
    await asyncio.sleep(3 * SWEEP)  # sweeps with nothing resolved change nothing
    assert ui.TOOL_OK in pause_message(env) and refunded == []
    async with agent_os(make_db(db_kind, tmp_path)) as url, aiohttp.ClientSession() as http:
        body = {"status": "approved", "resolved_by": "admin-console"}
        async with http.post(f"{url}/approvals/{record['id']}/resolve", json=body) as answer:
            assert answer.status == 200, await answer.text()
    resolved_at = time.monotonic()
    await env.slack.until(lambda: "admin-console" in pause_message(env), within=5)
    assert time.monotonic() - resolved_at < 2 * SWEEP + 1.0  # within a sweep or two, with nobody clicking
    await env.slack.until(lambda: finished(env), within=5)
    assert refunded == ["A-17"]  # the tool ran once, though both bots sweep
    shown = pause_message(env)
    assert "Approved by *admin-console*" in shown and "on its approval record" in shown and ui.TOOL_OK not in shown
    assert not [e for e in env.slack.ephemeral if e["user"] == "kern"]
    await asyncio.sleep(3 * SWEEP)
    assert refunded == ["A-17"] and await approval_rows.resolved(env.db) == []  # nothing left for later sweeps


async def test_a_record_rejected_from_python_rejects_the_call(env: Env) -> None:
    record = await paused(env)
    updated = await env.db.aupdate_approval(
        record["id"], "pending", status="rejected", resolved_by="UADMIN", resolution_data={"note": "fraud <b>"}
    )
    assert updated is not None and updated["status"] == "rejected"
    await env.slack.until(lambda: finished(env), within=5)
    assert refunded == []
    shown = pause_message(env)
    assert "Rejected by <@UADMIN>" in shown and "fraud &lt;b&gt;" in shown and ui.TOOL_OK not in shown


async def test_two_bots_sweeping_at_once_continue_the_run_once(env: Env) -> None:
    from bot.runs.sweeper import sweep_once

    for bot in env.bots:  # their own sweepers stand still: the sweeps below race each other
        bot.runner.on_sweep, hooks = [], bot.runner.on_sweep
        bot.hooks = hooks  # type: ignore[attr-defined]
    record = await paused(env)
    await env.db.resolve_approval(record["id"], approved=True, resolved_by="UOPS")
    await asyncio.gather(*(hook() for bot in env.bots for hook in bot.hooks))  # type: ignore[attr-defined]
    for bot in env.bots:
        await bot.background.idle(10)
    await sweep_once(env.bots[0].runner, env.bots[0].registry)
    await env.slack.until(lambda: finished(env), within=5)
    assert refunded == ["A-17"]
    audit = await env.db.audit_log(run_id=record["run_id"])
    assert [a["decision"] for a in audit if a["kind"] == "approval"] == ["approved"]
    closes = [c for c in env.slack.calls if c[0] == "chat.update" and "on its approval record" in json.dumps(c[1])]
    assert closes  # shown decided on its record
