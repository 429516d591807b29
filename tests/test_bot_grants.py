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
import sqlalchemy as sa

from bot import blocks as ui
from bot.config import SettingsError
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.slack.app import KernBot
from bot.store.tables import grants, tool_decisions
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.run.base import RunStatus
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


def guarded_workflows(model: FakeOpenAI, names: dict[str, str]) -> list[BotWorkflow]:
    """Workflows whose rules differ per step, or forbid self-approval (issue 24, item 4)."""

    def agent(stage: str) -> Agent:
        return Agent(
            name=f"Deployer {stage}", model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"), tools=[deploy]
        )

    def staged(name: str) -> Workflow:  # the same tool at two steps: "plan", then "prod"
        return Workflow(name=unique(name), steps=[Step(name=stage, agent=agent(stage)) for stage in ("plan", "prod")])

    return [
        BotWorkflow(  # anyone may answer "plan"; only USRE may answer "prod"
            staged("stages"),
            name=names["stages"],
            step_approvers={"prod": Approvers(users=("USRE",))},
            standing_approval=timedelta(hours=8),
        ),
        BotWorkflow(
            Workflow(name=unique("selfie"), steps=[Step(name="ship", agent=agent("ship"))]),
            name=names["selfie"],
            approvers=Approvers(users=("UA", "UB"), forbid_self_approval=True),
            standing_approval=timedelta(hours=8),
        ),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI) -> AsyncIterator[Env]:
    deployed.clear()
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        names = {name: unique(name) for name in ("ship", "fleet", "stages", "selfie")}
        entries = workflows(model, names) + guarded_workflows(model, names)
        bot, server, endpoint = await start_bot(slack, Registry(entries, db))
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
        if "wants to call `" in json.dumps(m.blocks)  # open or decided
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
    assert "Approved automatically: `deploy` is always allowed in this run, until the run ends (by <@U2>" in cards[1]
    assert "Tool call needs approval" not in cards[1] and "Decided at" not in cards[1]  # decided: the grant says it
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
    assert "Standing approvals" in home
    live = (await _grants(env).active(env.names["fleet"]))[0]
    expiry = ui.slack_time(live["expires_at"])  # its scope and expiry, read clearly
    assert (
        f"`deploy` always allowed in this workflow, *{env.names['fleet']}* (every run) at *ship*, until {expiry}"
        in home
    )
    grant_id = (await _grants(env).active(env.names["fleet"]))[0]["id"]
    await env.slack.home_click("U2", ui.GRANT_REVOKE, value=grant_id)
    await settle(env)
    assert await _grants(env).active(env.names["fleet"]) == []
    assert "Standing approvals" not in json.dumps(env.slack.homes["U2"]["blocks"])  # shown again, without it


# ----- a grant never gives more than its giver had (issue 24, items 4 and 5) ------------------------------
async def grant_rows(env: Env, workflow: str) -> list[tuple[str, str, str, str | None]]:
    """(scope, tool, granted by, step) of every grant of `workflow`, revoked or not."""
    g = grants.c
    query = sa.select(g.scope, g.tool_name, g.granted_by, g.step_name).where(g.workflow == workflow)
    db = env.bot.registry.db
    return await db.run_transaction(lambda c: [tuple(r) for r in c.execute(query.order_by(g.granted_at))])


async def run_status(env: Env, name: str) -> RunStatus:
    entry = env.bot.registry.get(name)
    assert entry is not None
    message = [m for m in env.slack.messages.values() if m.thread_ts is None][-1]
    card = await env.bot.store.card_at(message.channel, message.ts, team="")
    assert card is not None
    return (await entry.workflow.aget_run(card.run_id)).status


def told(env: Env, user: str) -> str:
    return next(e["text"] for e in reversed(env.slack.ephemeral) if e["user"] == user)


async def test_a_run_wide_grant_stays_at_the_step_it_was_given_at(env: Env) -> None:
    name = env.names["stages"]
    env.server.script(
        call("deploy", service="plan-1"), echo_tool_results, call("deploy", service="prod-1"), echo_tool_results
    )
    await env.slack.command(f"run {name} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="U2")  # at "plan", where anyone may answer
    await env.slack.until(lambda: len(tool_cards(env)) == 2)  # the same tool at "prod": it waits for USRE
    await settle(env)
    assert "Approve once" in tool_cards(env)[-1] and "prod-1" not in deployed
    assert await grant_rows(env, name) == [("run", "deploy", "U2", "plan")]
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="U2")  # nor may U2 allow it at "prod"
    await settle(env)
    assert "Only <@USRE> may answer this." in told(env, "U2")
    assert await grant_rows(env, name) == [("run", "deploy", "U2", "plan")]
    assert await run_status(env, name) == RunStatus.PAUSED and deployed == ["plan-1"]
    await env.slack.click(ui.TOOL_OK, user="USRE")
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert deployed == ["plan-1", "prod-1"]


async def test_an_outsiders_workflow_wide_grant_does_not_reach_a_stricter_step(env: Env) -> None:
    name = env.names["stages"]
    env.server.script(call("deploy", service="plan-1"), echo_tool_results)
    await env.slack.command(f"run {name} one", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="UOUT")  # anyone may answer "plan": UOUT too
    await env.slack.until(lambda: len(tool_cards(env)) == 1 and deployed == ["plan-1"])
    env.server.script(call("deploy", service="prod-1"), echo_tool_results)
    await env.slack.until(lambda: len(tool_cards(env)) == 2)  # "prod" of the same run: waits for USRE
    await settle(env)
    assert "Approve once" in tool_cards(env)[-1] and deployed == ["plan-1"]
    await env.slack.click(ui.TOOL_OK, user="USRE")
    await env.slack.until(lambda: "Completed" in card_text(env))

    # a later run: the grant approves "plan" (where UOUT may answer), never "prod"
    env.server.script(
        call("deploy", service="plan-2"), echo_tool_results, call("deploy", service="prod-2"), echo_tool_results
    )
    await env.slack.command(f"run {name} two", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 4)
    await settle(env)
    cards = tool_cards(env)
    assert "Approved automatically" in cards[2] and "Approve once" in cards[3]
    assert deployed == ["plan-1", "prod-1", "plan-2"] and await run_status(env, name) == RunStatus.PAUSED
    assert await grant_rows(env, name) == [("workflow", "deploy", "UOUT", "plan")]


async def test_no_grant_lets_a_starter_approve_their_own_run(env: Env) -> None:
    name = env.names["selfie"]  # UA and UB answer; not the run's starter
    env.server.script(call("deploy", service="r1"), echo_tool_results)
    await env.slack.command(f"run {name} one", user="UB")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.HANDOVER, user="UA")
    await settle(env)
    handing = {"to": {"v": {"type": "users_select", "selected_user": "UX"}}, "note": {"v": {"value": ""}}}
    await env.slack.submit(env.slack.last_view()["id"], handing, user="UA")
    await settle(env)
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="UX")  # handed one pause: no standing approval
    await settle(env)
    assert "Only they may allow a tool always, at this step." in told(env, "UX")
    assert await grant_rows(env, name) == [] and await run_status(env, name) == RunStatus.PAUSED and deployed == []
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="UA")  # UA may
    await env.slack.until(lambda: "Completed" in card_text(env) and deployed == ["r1"])

    env.server.script(call("deploy", service="r2"), echo_tool_results)
    await env.slack.command(f"run {name} two", user="UA")  # UA's own run: their grant does not answer it
    await env.slack.until(lambda: len(tool_cards(env)) == 2)
    await settle(env)
    assert "Approve once" in tool_cards(env)[-1] and deployed == ["r1"]
    assert await run_status(env, name) == RunStatus.PAUSED
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="UA")  # nor may they grant one in it
    await settle(env)
    assert "You started this run" in told(env, "UA")
    assert await grant_rows(env, name) == [("workflow", "deploy", "UA", "ship")]
    assert await run_status(env, name) == RunStatus.PAUSED and deployed == ["r1"]
    await env.slack.click(ui.TOOL_OK, user="UB")  # someone else approves it
    await env.slack.until(lambda: "Completed" in card_text(env) and deployed == ["r1", "r2"])

    env.server.script(call("deploy", service="r3"), echo_tool_results)
    await env.slack.command(f"run {name} three", user="UB")  # someone else's run: the grant holds
    await env.slack.until(lambda: "r3" in deployed)


async def test_a_grant_stored_without_its_step_allows_nothing(env: Env) -> None:
    name = env.names["fleet"]
    row = {"id": "legacy" + name[-8:], "scope": "workflow", "workflow": name, "tool_name": "deploy"}
    row.update(granted_by="U2", granted_at=1.0, expires_at=4e9)  # made before grants named their step
    await env.bot.registry.db.run_transaction(lambda c: c.execute(grants.insert().values(**row)))
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {name} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await settle(env)
    assert "Approve once" in tool_cards(env)[0] and deployed == [] and await run_status(env, name) == RunStatus.PAUSED
    await env.slack.open_home("U2")  # listed, to revoke, saying it allows nothing
    await settle(env)
    assert "given before grants named their step: it allows nothing" in json.dumps(env.slack.homes["U2"]["blocks"])


async def test_a_tampered_tool_call_index_is_refused_and_changes_nothing(env: Env) -> None:
    name = env.names["fleet"]
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {name} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    rid = env.slack.find(ui.TOOL_OK)[1]["value"].partition(":")[0]
    for action in (ui.TOOL_ALLOW_RUN, ui.TOOL_ALLOW_WORKFLOW, ui.TOOL_OK):
        for index in ("-1", "1", "7", "x", "", "1e3", "٣"):  # the card has one call: index 0
            await env.slack.click(action, user="U2", value=f"{rid}:{index}")
            await settle(env)
            assert "That tool call is not one of this pause's: nothing was decided." in told(env, "U2"), (action, index)
    await env.slack.click(ui.TOOL_NO, user="U2", value=f"{rid}:-1")  # a form about no call: says so
    await settle(env)
    assert "not one of this pause's" in json.dumps(env.slack.last_view())
    await env.slack.click(ui.TOOL_NO, user="U2")  # the right form, submitted with a tampered index
    await settle(env)
    form = env.slack.last_view()
    env.slack.views[form["id"]]["private_metadata"] = f"{rid}:-1"
    status, _, _ = await env.slack.submit(form["id"], {"text": {"v": {"type": "plain_text_input", "value": "no"}}})
    await settle(env)
    assert status == 200 and "not one of this pause's" in told(env, "U2")
    for callback in (ui.V_TOOL_INPUT, ui.V_TOOL_FEEDBACK):  # forms that check before they answer
        env.slack.views[form["id"]].update(callback_id=callback, private_metadata=f"{rid}:first", closed=False)
        status, body, _ = await env.slack.submit(form["id"], {})
        assert status == 200 and "not one of this pause" in body, (callback, body)
    await settle(env)
    assert await grant_rows(env, name) == [] and deployed == []
    t = tool_decisions.c
    query = sa.select(t.call_index).where(t.requirement_id == rid)
    assert await env.bot.registry.db.run_transaction(lambda c: c.execute(query).all()) == []
    assert await run_status(env, name) == RunStatus.PAUSED and "Approve once" in tool_cards(env)[0]
    await env.slack.click(ui.TOOL_OK, user="U2")  # the untampered button still works
    await env.slack.until(lambda: "Completed" in card_text(env) and deployed == ["api"])


# ----- standing approvals read clearly, and a run's ends with its run (issue 27, item 8) ---------------------
def home_of(env: Env, user: str) -> str:
    return json.dumps(env.slack.homes.get(user, {}).get("blocks", []))


async def test_grants_show_their_scope_and_expiry_on_the_card_and_the_home(env: Env) -> None:
    env.server.script(call("deploy", service="api"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} one", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_WORKFLOW, user="U2")
    await env.slack.until(lambda: "Completed" in card_text(env))
    grant = (await _grants(env).active(env.names["fleet"]))[0]
    until = f"until {ui.slack_time(grant['expires_at'])}"
    await env.slack.until(lambda: f"always allowed in this workflow, {until}" in tool_cards(env)[0])

    env.server.script(call("deploy", service="web"), echo_tool_results)
    await env.slack.command(f"run {env.names['fleet']} two", user="U1")
    await env.slack.until(lambda: "Completed" in card_text(env) and deployed == ["api", "web"])
    await env.slack.until(lambda: "Approved automatically" in tool_cards(env)[-1])
    assert f"`deploy` is always allowed in this workflow, {until} (by <@U2>" in tool_cards(env)[-1]

    await env.slack.open_home("U2")
    await settle(env)
    assert f"always allowed in this workflow, *{env.names['fleet']}* (every run) at *ship*, {until}" in home_of(
        env, "U2"
    )


async def test_a_run_wide_grant_reads_so_and_ends_with_its_run(env: Env) -> None:
    name = env.names["ship"]
    env.server.script(
        call("deploy", service="api"), call("deploy", service="web"), call("drop_table", table="t"), echo_tool_results
    )
    await env.slack.command(f"run {name} go", user="U1")
    await env.slack.until(lambda: len(tool_cards(env)) == 1)
    await env.slack.click(ui.TOOL_ALLOW_RUN, user="U2")
    await env.slack.until(lambda: len(tool_cards(env)) == 3)  # deploy(web) approved by the grant; drop_table waits
    await settle(env)
    await env.slack.until(lambda: "until the run ends" in tool_cards(env)[0])  # the giver's card says how long
    await env.slack.until(lambda: "Approved automatically" in tool_cards(env)[1])
    assert "`deploy` is always allowed in this run, until the run ends (by <@U2>" in tool_cards(env)[1]
    entry = env.bot.registry.get(name)
    message = [m for m in env.slack.messages.values() if m.thread_ts is None][-1]
    card = await env.bot.store.card_at(message.channel, message.ts, team="")
    assert entry is not None and card is not None
    await env.slack.open_home("U2")
    await settle(env)
    line = f"always allowed in this run (`{card.run_id[:12]}`) of *{name}* at *ship*, until the run ends"
    assert line in home_of(env, "U2")
    assert await _grants(env).covering(entry, card, "ship", "deploy") is not None  # while the run goes on

    await env.slack.click(ui.TOOL_OK, user="U2")  # drop_table: the run completes
    await env.slack.until(lambda: "Completed" in card_text(env))
    assert await _grants(env).active(name) == []  # ended with its run: not listed...
    assert await _grants(env).covering(entry, card, "ship", "deploy") is None  # ...nor applied
    await env.slack.open_home("U2")
    await settle(env)
    await env.slack.until(lambda: "Standing approvals" not in home_of(env, "U2"))
    assert await grant_rows(env, name) == [("run", "deploy", "U2", "ship")]  # the row (and its audit line) stay
