"""Standing approvals of tool calls (issue 12, item 7), end to end: the agent runs on the real `openai`
client against the scripted local server, the bot behind the stand-in, on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from bot import blocks as ui
from bot.app import KernBot
from bot.config import SettingsError
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools import tool
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results
from tests.test_bot_e2e import SECRET, start_bot

deployed: list[str] = []


@tool(requires_confirmation=True)
def deploy(service: str) -> str:
    """Deploy a service."""
    deployed.append(service)
    return f"deployed {service}"


@tool(requires_confirmation=True)
def drop_table(table: str) -> str:
    """Drop a table."""
    deployed.append(f"drop {table}")
    return f"dropped {table}"


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    server: FakeOpenAI
    names: dict[str, str]  # unique command names: grants outlive a test in the shared PostgreSQL database


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def workflows(model: FakeOpenAI, names: dict[str, str]) -> list[BotWorkflow]:
    def agentic(name: str) -> Workflow:
        agent = Agent(
            name="Deployer",
            model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"),
            tools=[deploy, drop_table],
        )
        return Workflow(name=unique(name), steps=[Step(name="ship", agent=agent)])

    return [
        BotWorkflow(agentic("ship"), name=names["ship"]),
        BotWorkflow(agentic("fleet"), name=names["fleet"], standing_approval=timedelta(hours=8)),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI) -> AsyncIterator[Env]:
    deployed.clear()
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        names = {"ship": unique("ship"), "fleet": unique("fleet")}
        bot, server, endpoint = await start_bot(slack, Registry(workflows(model, names), db))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, model, names)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


async def settle(env: Env) -> None:
    await asyncio.sleep(0.05)
    await env.bot.background.idle(15)


# The audit log is read oldest first, and the shared PostgreSQL database keeps every test run's rows: read
# all of this actor's, not the first 1,000.
LOG_ALL = 1_000_000


def tool_cards(env: Env) -> list[str]:
    return [
        json.dumps(m.blocks, ensure_ascii=False)
        for m in env.slack.messages.values()
        if "Tool call needs approval" in json.dumps(m.blocks)
    ]


def card_text(env: Env) -> str:
    return json.dumps([m.blocks for m in env.slack.messages.values() if m.thread_ts is None][-1])


async def test_always_allow_in_this_run_covers_the_agents_later_calls(env: Env) -> None:
    env.server.script(
        call("deploy", service="api"),
        call("deploy", service="web"),
        call("drop_table", table="users"),
        call("deploy", service="db"),
        echo_tool_results,
    )
    await env.slack.command(f"run {env.names['ship']} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    first = tool_cards(env)[0]
    assert "Approve once" in first and "Always allow deploy in this run" in first
    assert "in this workflow" not in first  # the workflow does not allow workflow-wide approvals
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="U2")
    # the next deploy is approved without a click; drop_table is another tool: it waits for a person
    await env.slack.until(lambda: len(tool_cards(env)) == 3)
    await settle(env)
    # Each decided card is updated by its own outbox row: wait for it rather than race it. The first call
    # reads "Approved, and always allowed…", or, when the click lands while the bot is still looking for
    # grants covering that very pause, "Approved automatically… (by U2)": approved once either way.
    await env.slack.until(lambda: "always allowed in this run" in tool_cards(env)[0])
    await env.slack.until(lambda: "Approved automatically" in tool_cards(env)[1])
    cards = tool_cards(env)
    assert "<@U2>" in cards[0]
    assert "Approved automatically: `deploy` is always allowed in this run (by <@U2>" in cards[1]
    assert [a for a in await env.bot.registry.db.audit_log(actor="U2", limit=LOG_ALL) if a["decision"] == "grant"]
    assert "drop_table" in cards[2] and "Approve once" in cards[2] and deployed == ["api", "web"]
    await env.slack.click(ui.TOOL_OK, user="U2")
    await env.slack.until(lambda: len(tool_cards(env)) == 4)
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert deployed == ["api", "web", "drop users", "db"]
    audit = await env.bot.registry.db.audit_log(actor="U2", limit=LOG_ALL)
    assert [
        a["data"]["tool_name"] for a in audit if a["decision"] == "grant" and a["workflow_name"] == env.names["ship"]
    ] == ["deploy"]

    # another run of the same workflow is not covered by a run-wide grant
    env.server.script(call("deploy", service="cache"), echo_tool_results)
    await env.slack.command(f"run {env.names['ship']} again", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 5)
    await settle(env)
    assert "Approve once" in tool_cards(env)[-1] and "cache" not in deployed


async def test_workflow_wide_grants_expire_and_can_be_revoked(env: Env) -> None:
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} one", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    assert "… in this workflow (8 h)" in tool_cards(env)[0]
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="U2")
    await env.slack.until(lambda: "Completed" in card_text(env))

    env.server.script(call("deploy", service="web"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} two", user="U1")  # a new run: covered by the workflow-wide grant
    await env.slack.until(lambda: "Completed" in card_text(env) and deployed == ["api", "web"])
    assert "always allowed in this workflow" in tool_cards(env)[-1]

    live = await _grants(env).active(env.names["fleet"])
    assert [(g["scope"], g["tool_name"], g["granted_by"]) for g in live] == [("workflow", "deploy", "U2")]
    assert live[0]["expires_at"] - live[0]["granted_at"] == pytest.approx(8 * 3600)
    assert await _grants(env).revoke(live[0]["id"], "U3") and not await _grants(env).revoke(live[0]["id"], "U3")
    assert await _grants(env).active(env.names["fleet"]) == []

    env.server.script(call("deploy", service="db"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} three", user="U1")  # revoked: a person approves again
    await env.slack.until(lambda: len(tool_cards(env)) == 3)
    await settle(env)
    assert "Approve once" in tool_cards(env)[-1] and deployed == ["api", "web"]
    revoked = [
        a
        for a in await env.bot.registry.db.audit_log(actor="U3", limit=LOG_ALL)
        if a["decision"] == "revoke_grant" and a["workflow_name"] == env.names["fleet"]
    ]
    assert len(revoked) == 1 and revoked[0]["data"]["tool"] == "deploy"


async def test_someone_who_may_not_answer_cannot_grant(env: Env) -> None:
    env.bot.registry.entries[env.names["ship"]].approvers = Approvers(users=("UBOSS",))
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {env.names['ship']} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="U2")
    await settle(env)
    assert "may answer this" in env.slack.ephemeral[-1]["text"]
    assert await _grants(env).active(env.names["ship"]) == [] and deployed == []


def test_standing_approval_must_be_a_duration() -> None:
    wf = Workflow(name=unique("w"), steps=[Step(name="s", executor=lambda s: "x")])
    with pytest.raises(SettingsError, match="standing_approval=-1 must be a positive number of seconds"):
        BotWorkflow(wf, standing_approval=-1)
    assert BotWorkflow(wf, standing_approval=timedelta(minutes=30)).standing_approval == 1800


def _grants(env: Env):
    return env.bot.tool_calls.grants


async def test_grants_are_listed_and_revoked_on_the_app_home(env: Env) -> None:
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} one", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="U2")
    await env.slack.until(lambda: "Completed" in card_text(env))
    await env.slack.open_home("U2")
    await settle(env)
    home = json.dumps(env.slack.homes["U2"]["blocks"])
    assert "Standing approvals" in home and f"`deploy` always allowed in every run of *{env.names['fleet']}*" in home
    grant_id = (await _grants(env).active(env.names["fleet"]))[0]["id"]
    await env.slack.home_click("U2", ui.GRANT_REVOKE, value=grant_id)
    await settle(env)
    assert await _grants(env).active(env.names["fleet"]) == []
    assert "Standing approvals" not in json.dumps(env.slack.homes["U2"]["blocks"])  # shown again, without it
