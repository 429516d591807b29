"""The right people are told: pause messages mention who may answer (in the text that drives Slack's
notifications, and in the blocks), `notify="broadcast"` shows the thread reply in the channel,
`notify="dm"` sends each approver a copy with the same controls, kept in step with the thread copy
(answered anywhere, closed everywhere), and `approvals_channel` posts pauses elsewhere with a link back
to the run card. End to end through the Slack stand-in; the DM copies on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.config import SettingsError
from bot.devslack import DevSlack, Message
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools import tool
from kern.workflow import Step, Workflow
from kern.workflow.types import OnTimeout
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, calls, text, tool_results
from tests.test_bot_e2e import SECRET, Env, reject, run_id_of_card, settle, start_bot


def confirm(name: str, **options: Any) -> Workflow:
    step = Step(name="deploy", executor=lambda s: "shipped", requires_confirmation=True, **options)
    return Workflow(name=unique(name), steps=[step])


def _boom(step_input: Any) -> str:
    raise RuntimeError("the disk <is> full")


def flows() -> list[BotWorkflow]:
    return [
        BotWorkflow(
            confirm("named"),
            name="named",
            approvers=Approvers(users=("UAPP", "UBOSS"), groups=("SOPS",)),
            notify="dm",
        ),
        BotWorkflow(confirm("open"), name="open", notify="broadcast"),
        BotWorkflow(confirm("quiet"), name="quiet", approvers=Approvers(groups=("SOPS",))),
        BotWorkflow(
            confirm("elsewhere"),
            name="elsewhere",
            approvers=Approvers(groups=("SOPS",)),
            approvals_channel="CAPPROVALS",
        ),
        BotWorkflow(
            confirm("rejectable", on_reject="cancel"),
            name="rejectable",
            approvers=Approvers(users=("UAPP",)),
            notify="dm",
        ),
        BotWorkflow(
            Workflow(
                name=unique("breaks"),
                steps=[Step(name="deploy", executor=_boom, requires_confirmation=True)],
            ),
            name="breaks",
            approvers=Approvers(users=("UAPP",)),
        ),
        BotWorkflow(
            confirm("timed", hitl_timeout=60, on_timeout=OnTimeout.approve),
            name="timed",
            approvers=Approvers(users=("UAPP",)),
            notify="dm",
        ),
    ]


class ChannelEnv(Env):
    """Run cards are the top-level messages of the channel runs start in (DMs and the approvals channel
    have top-level messages too)."""

    def card(self) -> Any:
        return [m for m in self.slack.messages.values() if m.thread_ts is None and m.channel == "C1"][-1]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    async with DevSlack(SECRET) as slack:
        slack.groups["SOPS"] = ["UOPS"]
        bot, server, endpoint = await start_bot(slack, Registry(flows(), db))
        bot.outbox.first_retry = 0.01
        slack.bot_endpoint = endpoint
        try:
            yield ChannelEnv(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await server.cleanup()


sqlite_only = pytest.mark.parametrize("db_kind", ["sqlite"])


async def start(env: Env, name: str, user: str = "U1") -> Message:
    """Start workflow `name`; returns its run card once its pause message is out."""
    status, _, _ = await env.slack.command(f"run {name}", user=user)
    assert status == 200
    await settle(env)
    await env.slack.until(lambda: "Waiting: deploy" in json.dumps(env.card().blocks))
    return env.card()


def element(message: Message, action_id: str) -> tuple[Message, dict[str, Any], str]:
    """A control of `message`, as `DevSlack.click(stale=...)` takes it (to click that copy)."""
    for block in message.blocks:
        for el in block.get("elements", []) if block["type"] == "actions" else []:
            if el["action_id"] == action_id:
                return message, el, block.get("block_id", "")
    raise LookupError(action_id)


def decided(message: Message) -> bool:
    return not any(b["type"] == "actions" for b in message.blocks)


async def sweep_until(env: Env, done: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not done():
        assert time.monotonic() < deadline, "not delivered in time"
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.02)


# ----- mentions and broadcast --------------------------------------------------------------------------
@sqlite_only
async def test_pause_mentions_users_and_groups_in_text_and_blocks(env: Env) -> None:
    card = await start(env, "named")
    pause = env.slack.thread(card.ts)[-1]
    assert pause.text.startswith("<@UAPP> <@UBOSS> <!subteam^SOPS> Approval needed")  # notifications read text
    shown = json.dumps(pause.blocks)
    assert "<@UAPP>" in shown and "<@UBOSS>" in shown and "<!subteam^SOPS>" in shown
    assert not pause.broadcast  # notify="dm" keeps the thread copy a plain reply
    await env.slack.until(lambda: len(env.slack.dm_of("UBOSS")) == 1)
    dms = len([m for m in env.slack.messages.values() if m.channel.startswith("D")])

    card = await start(env, "quiet")
    pause = env.slack.thread(card.ts)[-1]
    assert pause.text.startswith("<!subteam^SOPS> Approval needed") and "<!subteam^SOPS>" in json.dumps(pause.blocks)
    assert not pause.broadcast  # notify="thread" (the default): a plain reply, and no DM
    assert len([m for m in env.slack.messages.values() if m.channel.startswith("D")]) == dms


@sqlite_only
async def test_anyone_may_answer_mentions_the_starter_and_broadcast_shows_it_in_the_channel(env: Env) -> None:
    card = await start(env, "open", user="U7")
    pause = env.slack.thread(card.ts)[-1]
    assert pause.text.startswith("<@U7> Approval needed")
    assert "<@U7> started this run" in json.dumps(pause.blocks)
    assert pause.broadcast  # posted with reply_broadcast: also shown in the channel
    posted = [args for method, args, _ in env.slack.calls if method == "chat.postMessage" and args.get("thread_ts")]
    assert posted[-1]["reply_broadcast"] in (True, "true", "1")
    await env.slack.click(ui.CONFIRM, user="U8")
    await settle(env)
    assert decided(env.slack.messages[pause.ts]) and "Completed" in json.dumps(env.card().blocks)
    assert env.errors() == []


# ----- DM copies -----------------------------------------------------------------------------------------
async def test_dm_copies_are_closed_everywhere_when_answered_from_a_dm(env: Env) -> None:
    card = await start(env, "named")
    await env.slack.until(lambda: len(env.slack.dm_of("UAPP")) == 1 and len(env.slack.dm_of("UBOSS")) == 1)
    thread_copy = env.slack.thread(card.ts)[-1]
    boss_copy = env.slack.dm_of("UBOSS")[0]
    for copy in (env.slack.dm_of("UAPP")[0], boss_copy):
        assert copy.thread_ts is None and copy.text == thread_copy.text  # same text, same mentions
        assert element(copy, ui.CONFIRM)[1]["value"] == element(thread_copy, ui.CONFIRM)[1]["value"]
        assert "/archives/C1/p" in json.dumps(copy.blocks)  # a link back to the run card
    run_id = await run_id_of_card(env)
    app_confirm = element(env.slack.dm_of("UAPP")[0], ui.CONFIRM)  # as UAPP's client still shows it

    # an outsider's click in a DM (forwarded, say) is refused and changes nothing
    await env.slack.click(ui.CONFIRM, user="UOUT", stale=element(boss_copy, ui.CONFIRM))
    await settle(env)
    assert "may answer this" in env.slack.ephemeral[-1]["text"]
    assert not decided(env.slack.messages[boss_copy.ts])

    status, _, took = await env.slack.click(ui.CONFIRM, user="UBOSS", stale=element(boss_copy, ui.CONFIRM))
    assert status == 200 and took < 1.0
    await settle(env)
    copies = [env.slack.messages[thread_copy.ts], env.slack.dm_of("UAPP")[0], env.slack.dm_of("UBOSS")[0]]
    for copy in copies:
        assert decided(copy) and "Approved by <@UBOSS>" in json.dumps(copy.blocks), copy
    assert "Completed" in json.dumps(env.card().blocks)
    assert len(env.slack.dm_of("UAPP")) == 1  # updated in place, never posted again
    owed = await env.bot.store.owed(run_id)
    assert sorted(r["kind"] for r in owed if r["kind"] in ("dm", "close_dm")) == ["close_dm"] * 2 + ["dm"] * 2
    assert all(r["status"] == "done" for r in owed)
    # a late click on another copy is told it is over
    await env.slack.click(ui.CONFIRM, user="UAPP", stale=app_confirm)
    await settle(env)
    told = env.slack.ephemeral[-1]
    assert (told["channel"], told["user"], told["text"]) == ("DAPP", "UAPP", "Already approved by <@UBOSS>.")
    assert env.errors() == []


@sqlite_only
async def test_dm_copies_are_closed_when_answered_in_the_thread(env: Env) -> None:
    card = await start(env, "named")
    await env.slack.until(lambda: len(env.slack.dm_of("UBOSS")) == 1)
    await reject(env, "UOPS", thread_ts=card.ts)  # a member of the group, in the thread
    for copy in (
        [m for m in env.slack.thread(card.ts) if m.blocks][-1],
        env.slack.dm_of("UAPP")[0],
        env.slack.dm_of("UBOSS")[0],
    ):
        assert decided(copy) and "Rejected by <@UOPS>" in json.dumps(copy.blocks)


@sqlite_only
async def test_a_slack_error_on_one_dm_is_retried_without_losing_the_other(env: Env) -> None:
    env.slack.fail_next["conversations.open"] = "internal_error"  # the first DM (to UAPP) only
    card = await start(env, "named")
    await env.bot.background.idle(10)
    assert len(env.slack.dm_of("UBOSS")) == 1 and env.slack.dm_of("UAPP") == []  # UAPP's open failed; UBOSS's went
    run_id = await run_id_of_card(env)
    rows = [r for r in await env.bot.store.owed(run_id) if r["kind"] == "dm"]
    failed = [r for r in rows if r["status"] == "pending"]
    assert len(failed) == 1 and failed[0]["detail"] == {"to": "UAPP"} and "internal_error" in failed[0]["error"]
    assert len(env.slack.thread(card.ts)) == 1 and "Waiting: deploy" in json.dumps(env.card().blocks)
    await sweep_until(env, lambda: len(env.slack.dm_of("UAPP")) == 1)
    assert len(env.slack.dm_of("UBOSS")) == 1  # the other copy is not sent twice
    # answered before... and after: every copy closes, the retried one included
    await env.slack.click(ui.CONFIRM, user="UAPP", stale=element(env.slack.dm_of("UAPP")[0], ui.CONFIRM))
    await settle(env)
    await sweep_until(env, lambda: all(decided(m) for m in env.slack.dm_of("UAPP") + env.slack.dm_of("UBOSS")))
    assert decided([m for m in env.slack.thread(card.ts) if m.blocks][-1])


@sqlite_only
async def test_a_dm_still_owed_when_the_pause_is_answered_is_never_sent(env: Env) -> None:
    env.slack.fail_next["conversations.open"] = "internal_error"  # UAPP's copy fails, UBOSS's goes
    card = await start(env, "named")
    await env.bot.background.idle(10)
    await env.slack.click(ui.CONFIRM, user="UBOSS", stale=element(env.slack.dm_of("UBOSS")[0], ui.CONFIRM))
    await settle(env)
    run_id = await run_id_of_card(env)
    owed: list[dict[str, Any]] = []

    async def all_done() -> bool:
        owed[:] = await env.bot.store.owed(run_id)
        return all(r["status"] == "done" for r in owed)

    deadline = time.monotonic() + 10
    while not await all_done():  # the sweeps deliver what is left (the close of UAPP's copy waits 1 s)
        assert time.monotonic() < deadline, owed
        await sweep_once(env.bot.runner, env.bot.registry)
        await asyncio.sleep(0.05)
    assert env.slack.dm_of("UAPP") == []  # an answered pause is not sent to anyone any more
    assert decided(env.slack.dm_of("UBOSS")[0]) and decided([m for m in env.slack.thread(card.ts) if m.blocks][-1])


@sqlite_only
async def test_cancelling_the_run_closes_the_dm_copies(env: Env) -> None:
    await start(env, "named")
    await env.slack.until(lambda: len(env.slack.dm_of("UAPP")) == 1)
    run_id = await run_id_of_card(env)
    await env.slack.command(f"cancel {run_id}", user="U1")
    await settle(env)
    await env.slack.until(lambda: all(decided(m) for m in env.slack.dm_of("UAPP") + env.slack.dm_of("UBOSS")))
    assert "Cancelled by <@U1>" in json.dumps(env.slack.dm_of("UAPP")[0].blocks)


@sqlite_only
async def test_timeout_closes_the_dm_copy(env: Env) -> None:
    await start(env, "timed")
    await env.slack.until(lambda: len(env.slack.dm_of("UAPP")) == 1)
    assert await sweep_once(env.bot.runner, env.bot.registry, now=time.time() + 120) == 1
    await settle(env)
    dm = env.slack.dm_of("UAPP")[0]
    assert decided(dm) and "Timed out: approved automatically" in json.dumps(dm.blocks)


# ----- the approvals channel -------------------------------------------------------------------------
@sqlite_only
async def test_approvals_channel_gets_the_pause_with_a_link_back_to_the_card(env: Env) -> None:
    card = await start(env, "elsewhere")
    assert env.slack.thread(card.ts) == []  # not in the card's thread
    pause = next(m for m in env.slack.messages.values() if m.channel == "CAPPROVALS")
    assert pause.thread_ts is None and pause.text.startswith("<!subteam^SOPS> Approval needed")
    link = f"/archives/C1/p{card.ts.replace('.', '')}|open the run card>"
    assert link in json.dumps(pause.blocks)
    await env.slack.click(ui.CONFIRM, user="UOPS", stale=element(pause, ui.CONFIRM))
    await settle(env)
    shown = json.dumps(env.slack.messages[pause.ts].blocks)
    assert decided(env.slack.messages[pause.ts]) and "Approved by <@UOPS>" in shown and link in shown
    assert "Completed" in json.dumps(env.card().blocks)
    assert env.errors() == []


# ----- configuration ----------------------------------------------------------------------------------
def test_notify_and_approvals_channel_are_checked_when_the_workflow_is_made() -> None:
    wf = confirm("bad")
    with pytest.raises(SettingsError, match=r"notify='email' is not one of 'thread', 'broadcast', 'dm'"):
        BotWorkflow(wf, notify="email")
    with pytest.raises(SettingsError, match=r"notify='dm' .* list them in Approvers\(users="):
        BotWorkflow(wf, notify="dm", approvers=Approvers(groups=("SOPS",)))
    with pytest.raises(SettingsError, match=r"notify='dm' with anyone answering .*\(forbid_self_approval\)"):
        BotWorkflow(wf, notify="dm", approvers=Approvers(forbid_self_approval=True))
    with pytest.raises(SettingsError, match=r"approvals_channel='#approvals' is not a channel id"):
        BotWorkflow(wf, approvals_channel="#approvals")
    assert BotWorkflow(wf, notify="dm").notify == "dm"  # anyone may answer: the starter gets the DM
    assert BotWorkflow(wf, approvals_channel="C0APPROVALS").approvals_channel == "C0APPROVALS"


# ----- tool calls: per-call progress on every copy ---------------------------------------------------------
@tool(requires_confirmation=True)
def page_oncall(team: str) -> str:
    """Page a team's on-call person.

    Args:
        team: The team to page.
    """
    return f"paged {team}"


@sqlite_only
async def test_tool_call_progress_shows_on_every_copy(db_kind: str, tmp_path: Path) -> None:
    with FakeOpenAI() as model:
        model.script(
            calls(("page_oncall", {"team": "db"}), ("page_oncall", {"team": "web"}), ("page_oncall", {"team": "ops"})),
            lambda body: text("Done: " + " | ".join(tool_results(body))),
        )
        db = make_db(db_kind, tmp_path)
        agent = Agent(name="Pager", model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"), tools=[page_oncall])
        wf = Workflow(name=unique("pager"), steps=[Step(name="page", agent=agent)])
        entry = BotWorkflow(wf, name="pager", approvers=Approvers(users=("UBOSS",)), notify="dm")
        async with DevSlack(SECRET) as slack:
            bot, server, url = await start_bot(slack, Registry([entry], db))
            slack.bot_endpoint = url
            try:
                await slack.command("run pager page the teams", user="U1")
                await slack.until(lambda: len(slack.dm_of("UBOSS")) == 1)
                dm = slack.dm_of("UBOSS")[0]
                thread_copy = next(m for m in slack.messages.values() if m.thread_ts and m.channel == "C1")
                first = element(thread_copy, ui.TOOL_OK + ":0")
                await slack.click(ui.TOOL_OK, user="UBOSS", stale=first)  # call 0, in the thread
                await bot.background.idle(10)
                for copy in (slack.messages[dm.ts], slack.messages[thread_copy.ts]):
                    shown = json.dumps(copy.blocks)
                    assert "Approved by <@UBOSS>" in shown, copy  # call 0 decided on both copies...
                    element(copy, ui.TOOL_OK + ":1")  # ...call 1 still waits on both
                    with pytest.raises(LookupError):
                        element(copy, ui.TOOL_OK + ":0")
                assert "/archives/C1/p" in json.dumps(slack.messages[dm.ts].blocks)  # the DM keeps its link
                await slack.click(ui.TOOL_OK, user="UBOSS", stale=element(slack.messages[dm.ts], ui.TOOL_OK + ":1"))
                await bot.background.idle(10)
                element(slack.messages[thread_copy.ts], ui.TOOL_OK + ":2")  # call 1 decided from the DM...
                with pytest.raises(LookupError):
                    element(slack.messages[thread_copy.ts], ui.TOOL_OK + ":1")  # ...shows in the thread
                # the last call from the App Home: its buttons carry their place on the page too
                await slack.open_home("UBOSS")
                await slack.until(lambda: "UBOSS" in slack.homes)
                button = slack.home_click_payload("UBOSS", ui.TOOL_OK)["actions"][0]
                assert button["action_id"] == ui.TOOL_OK + ":2:0" and button["value"].endswith(":2")
                await slack.home_click("UBOSS", ui.TOOL_OK)
                await bot.background.idle(10)
                await slack.until(lambda: decided(slack.messages[dm.ts]) and decided(slack.messages[thread_copy.ts]))
                card = next(m for m in slack.messages.values() if m.thread_ts is None and m.channel == "C1")
                await slack.until(lambda: "paged db | paged web | paged ops" in json.dumps(card.blocks))
                await slack.until(lambda: "Nothing waits on you" in json.dumps(slack.homes["UBOSS"]["blocks"]))
                assert [e for e in slack.rejected if e["method"] != "chat.postEphemeral"] == []
            finally:
                await bot.background.idle(10)
                await server.cleanup()


# ----- the person who started the run is told how it ended ----------------------------------------------
async def test_the_starter_is_told_of_a_rejection_in_the_thread_and_by_dm(env: Env) -> None:
    card = await start(env, "rejectable")
    run_id = await run_id_of_card(env)
    await reject(env, "UAPP", thread_ts=card.ts)
    await env.slack.until(lambda: "Cancelled" in json.dumps(env.card().blocks))
    await env.slack.until(lambda: len(env.slack.dm_of("U1")) == 1)
    [line] = [m for m in env.slack.thread(card.ts) if "your run" in m.text]
    expected = f"<@U1>, your run `{run_id[:12]}` of `rejectable` was rejected by <@UAPP>, so it was cancelled."
    assert line.text == f":no_entry: {expected}"  # a mention of the starter in the card's thread
    [dm] = env.slack.dm_of("U1")  # and by DM, as the workflow notifies by DM, with a link to the card
    assert dm.text.startswith(f":no_entry: {expected} <") and "/archives/C1/p" in dm.text
    assert env.errors() == []


async def test_the_starter_is_told_of_a_failure_but_not_of_their_own_cancel(env: Env) -> None:
    card = await start(env, "breaks")
    run_id = await run_id_of_card(env)
    await env.slack.click(ui.CONFIRM, user="UAPP", thread_ts=card.ts)
    await settle(env)
    await env.slack.until(lambda: any("your run" in m.text for m in env.slack.thread(card.ts)))
    [line] = [m for m in env.slack.thread(card.ts) if "your run" in m.text]
    assert line.text.startswith(f":x: <@U1>, your run `{run_id[:12]}` of `breaks` failed: ")
    assert "the disk &lt;is&gt; full" in line.text  # the error, escaped
    assert env.slack.dm_of("U1") == []  # this workflow does not notify by DM

    mine = await start(env, "breaks")  # cancelled by its own starter: they know
    mine_id = await run_id_of_card(env)
    await env.slack.command(f"cancel {mine_id}", user="U1")
    await settle(env)
    await env.slack.until(lambda: "Cancelled" in json.dumps(env.card().blocks))
    await env.bot.background.idle(10)
    assert not [m for m in env.slack.thread(mine.ts) if "your run" in m.text]
