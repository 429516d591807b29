"""An `@approval` tool inside a kern-bot workflow (issue 26, item 5), end to end: the agent on the real
`openai` client against the scripted local server, the bot behind the stand-in, on both databases. The
person who answers the tool-call card resolves the approval record (who decided recorded there and in the
audit log), and the run continues; an approval resolved from Python first decides it the same way."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.slack.app import KernBot
from kern.agent import Agent
from kern.approval import approval
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.tools import tool
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results
from tests.test_bot_e2e import SECRET, start_bot

refunded: list[str] = []


@approval
@tool(requires_confirmation=True)
def refund(order: str) -> str:
    """Refund an order."""
    refunded.append(order)
    return f"refunded {order}"


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    server: FakeOpenAI
    db: BaseDb
    name: str


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI) -> AsyncIterator[Env]:
    refunded.clear()
    db = make_db(db_kind, tmp_path)
    name = unique("refunds")
    agent = Agent(name="Refunder", model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"), tools=[refund])
    entry = BotWorkflow(
        Workflow(name=unique(name), steps=[Step(name="refund", agent=agent)]),
        name=name,
        approvers=Approvers(users=("UADMIN", "UOPS")),
    )
    async with DevSlack(SECRET) as slack:
        bot, server, endpoint = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, model, db, name)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


def tool_card(env: Env) -> str:
    found = [json.dumps(m.blocks) for m in env.slack.messages.values() if "wants to call `" in json.dumps(m.blocks)]
    return found[-1] if found else ""


def card_text(env: Env) -> str:
    return json.dumps([m.blocks for m in env.slack.messages.values() if m.thread_ts is None][-1])


async def paused(env: Env) -> dict:
    env.server.script(call("refund", order="A-17"), echo_tool_results)
    await env.slack.command(f"run {env.name} refund A-17", user="U1")
    await env.slack.until(lambda: "Approve" in tool_card(env))
    mine = [
        a for a in await env.db.list_approvals(status="pending", limit=10_000) if a["tool_args"] == {"order": "A-17"}
    ]
    return max(mine, key=lambda a: a["requested_at"])  # the shared PostgreSQL database keeps earlier tests' records


async def test_approving_the_card_resolves_the_approval_and_the_run_goes_on(env: Env) -> None:
    record = await paused(env)
    await env.slack.click(ui.TOOL_OK, user="UOPS")
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert refunded == ["A-17"]
    [after] = [a for a in await env.db.list_approvals(run_id=record["run_id"]) if a["id"] == record["id"]]
    assert after["status"] == "approved" and after["resolved_by"] == "UOPS"
    audit = await env.db.audit_log(run_id=record["run_id"])
    assert ("UOPS", "approved") in [(a["actor"], a["decision"]) for a in audit if a["kind"] == "approval"]
    assert not [e for e in env.slack.ephemeral if "still pending" in e["text"] or "Already answered" in e["text"]]


async def test_rejecting_the_card_rejects_the_approval(env: Env) -> None:
    record = await paused(env)
    await env.slack.click(ui.TOOL_NO, user="UADMIN")  # "Reject with note": a form
    await asyncio.sleep(0.05)
    await env.bot.background.idle(10)
    note = {"text": {"v": {"type": "plain_text_input", "value": "no"}}}
    await env.slack.submit(env.slack.last_view()["id"], note, user="UADMIN")
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert refunded == []
    [after] = [a for a in await env.db.list_approvals(run_id=record["run_id"]) if a["id"] == record["id"]]
    assert after["status"] == "rejected" and after["resolved_by"] == "UADMIN"
    assert after["resolution_data"]["note"] == "no"


async def test_someone_the_rules_do_not_name_resolves_nothing(env: Env) -> None:
    record = await paused(env)
    await env.slack.click(ui.TOOL_OK, user="U1")  # the starter, not an approver
    await asyncio.sleep(0.1)
    await env.bot.background.idle(10)
    [after] = [a for a in await env.db.list_approvals(run_id=record["run_id"]) if a["id"] == record["id"]]
    assert after["status"] == "pending" and refunded == []
    await env.slack.click(ui.TOOL_OK, user="UADMIN")  # the card still answers
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert refunded == ["A-17"]


async def test_an_approval_resolved_from_python_first_decides(env: Env) -> None:
    record = await paused(env)
    await env.db.resolve_approval(record["id"], approved=False, resolved_by="admin-console", note="fraud")
    await env.slack.click(ui.TOOL_OK, user="UOPS")  # too late: the record was rejected
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert refunded == []
    assert any("admin-console" in e["text"] for e in env.slack.ephemeral if e["user"] == "UOPS")
