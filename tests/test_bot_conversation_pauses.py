"""Pauses inline in a conversation (issue 28, item 3): every pause of an agent, team or workflow talking in a
thread shows there with the controls, forms and rules of a run's pause messages (who may answer, N of M,
hand-over), delivered through the outbox; once decided, the turn goes on and its answer is posted in the
same thread. End to end through the stand-in: signed events and clicks to the real endpoint, agents on the
real `openai` client against the scripted model, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotAgent, BotWorkflow, Registry
from bot.runs.sweeper import sweep_once
from bot.slack.app import KernBot
from kern.agent import Agent
from kern.db.base import BaseDb
from kern.models.openai import OpenAIChat
from kern.team import Team
from kern.tools import tool
from kern.workflow import Loop, Router, Step, Workflow
from kern.workflow.types import OnError, OnReject, OnTimeout, StepInput, UserInputField
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results, text
from tests.test_bot_access import forget_home_viewers
from tests.test_bot_e2e import SECRET, start_bot

BOT = "<@UBOT>"
OPS = Approvers(users=("UOPS",))
paged: list[str] = []
attempts: list[int] = []


@tool(requires_confirmation=True)
def page_oncall(service: str) -> str:
    """Page the on-call engineer of a service."""
    paged.append(service)
    return f"paged the on-call of {service}"


def _ship(step_input: StepInput) -> str:
    given = (step_input.additional_data or {}).get("user_input") or {}
    return f"Shipped {step_input.input} as {given.get('title')!r} to {given.get('env')}"


def _flaky(step_input: StepInput) -> str:
    attempts.append(1)
    if len(attempts) == 1:
        raise RuntimeError("upstream timed out")
    return f"fetched ({step_input.previous_step_content})"


def _polish(step_input: StepInput) -> str:
    return f"{step_input.previous_step_content or step_input.input} +polished"


def shipping() -> Workflow:
    """A confirmation, then a form."""
    return Workflow(
        name=unique("ship"),
        steps=[
            Step(
                name="check",
                executor=lambda s: f"checked {s.input}",
                requires_confirmation=True,
                confirmation_message="Ship it?",
            ),
            Step(
                name="details",
                executor=_ship,
                requires_user_input=True,
                user_input_message="Name the release",
                user_input_schema=[
                    UserInputField(name="title"),
                    UserInputField(name="env", allowed_values=["staging", "prod"], value="staging"),
                ],
            ),
        ],
    )


def every_kind() -> Workflow:
    """A route choice, a loop's iteration review, an error decision and an output review, in one turn."""
    return Workflow(
        name=unique("kinds"),
        steps=[
            Router(
                name="triage",
                choices=[Step(name=n, executor=lambda s, n=n: f"{n}: {s.input}") for n in ("bug", "feature")],
                requires_user_input=True,
                user_input_message="How should this be handled?",
            ),
            Loop(
                name="refine",
                steps=[Step(name="polish", executor=_polish)],
                max_iterations=3,
                requires_iteration_review=True,
                on_reject=OnReject.retry,
                forward_iteration_output=True,
            ),
            Step(name="fetch", executor=_flaky, on_error=OnError.pause),
            Step(
                name="summary", executor=lambda s: f"Summary of {s.previous_step_content}", requires_output_review=True
            ),
        ],
    )


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    model: FakeOpenAI
    db: BaseDb


def talker(kind: str, model: FakeOpenAI) -> BotWorkflow:
    """The conversational entry under test."""
    llm = OpenAIChat(id="scripted", base_url=model.base_url, api_key="scripted")
    if kind == "agent":
        return BotAgent(
            Agent(name=unique("Helper"), model=llm, tools=[page_oncall]), name=unique("helper"), approvers=OPS
        )
    if kind == "team":
        member = Agent(name="Pager", model=llm, tools=[page_oncall])
        team = Team(name=unique("oncall"), members=[member], model=llm)
        return BotAgent(team, name=unique("oncall"), approvers=OPS)
    if kind == "quorum":
        return BotAgent(shipping(), name=unique("ship"), approvers=Approvers(users=("UA", "UB", "UC"), required=2))
    if kind == "timed":
        gate = Step(
            name="check",
            executor=lambda s: f"checked {s.input}",
            requires_confirmation=True,
            hitl_timeout=100,
            on_timeout=OnTimeout.approve,
        )
        flow = Workflow(name=unique("timed"), steps=[gate])
        return BotAgent(flow, name=unique("timed"), approvers=Approvers(users=("UA",), remind_after=60))
    if kind == "kinds":
        return BotAgent(every_kind(), name=unique("kinds"))
    return BotAgent(shipping(), name=unique("ship"), approvers=Approvers(users=("UA", "UB")))


@pytest.fixture
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
async def env(db_kind: str, tmp_path: Path, model: FakeOpenAI, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    paged.clear()
    attempts.clear()
    db = make_db(db_kind, tmp_path)
    registry = Registry([talker(request.param, model)], db)
    async with DevSlack(SECRET) as slack:
        bot, runner, endpoint = await start_bot(slack, registry)
        bot.outbox.first_retry = 0.01
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, model, db)
        finally:
            await bot.background.idle(10)
            await runner.cleanup()
            await forget_home_viewers(db, slack.homes)  # the shared PostgreSQL would refresh them in later tests


def kind(kinds: str) -> Any:
    return pytest.mark.parametrize("env", [kinds], indirect=True)


async def settle(env: Env) -> None:
    await asyncio.sleep(0.05)
    await env.bot.background.idle(15)


def replies(env: Env, ts: str, event: str | None = None) -> list[Any]:
    """What the app posted in the thread of `ts` (with metadata `event`, if given)."""
    found = [m for m in env.slack.thread(ts) if not m.user and m.ts != ts]
    return [m for m in found if event is None or (m.metadata or {}).get("event_type") == event]


def answers(env: Env, ts: str) -> list[str]:
    return [m.text for m in replies(env, ts, "kern_answer")]


def pauses(env: Env, ts: str) -> list[str]:
    """The thread's pause messages, as their blocks' JSON, oldest first."""
    return [json.dumps(m.blocks) for m in replies(env, ts, "kern_pause")]


def told(env: Env, user: str) -> list[dict[str, Any]]:
    return [e for e in env.slack.ephemeral if e.get("user") == user]


def not_in_channel(env: Env, ts: str) -> None:
    """Nothing of the turn left its thread: no run card, no top-level message from the app."""
    assert not [m for m in env.slack.messages.values() if not m.user and m.thread_ts is None], "a run card"
    assert [m for m in env.slack.messages.values() if not m.user and m.thread_ts != ts] == []


async def submit_form(env: Env, user: str, values: dict[str, Any]) -> tuple[int, str]:
    status, body, _ = await env.slack.submit(env.slack.last_view()["id"], values, user=user)
    await settle(env)
    return status, body


@kind("agent")
async def test_a_tool_call_inline_is_answered_by_an_approver_only(env: Env) -> None:
    env.model.script(call("page_oncall", service="payments"), echo_tool_results)
    ts = await env.slack.say_in("U1", "C1", f"{BOT} page payments")
    await settle(env)
    [card] = pauses(env, ts)
    assert "page_oncall" in card and "<@UOPS>" in card
    await env.slack.click(ui.TOOL_OK, user="U1", thread_ts=ts)  # the person who asked is no approver
    await settle(env)
    refused = told(env, "U1")
    assert len(refused) == 1 and "may answer this" in refused[0]["text"] and refused[0].get("thread_ts") == ts
    assert paged == [] and answers(env, ts) == []
    await env.slack.click(ui.TOOL_OK, user="UOPS", thread_ts=ts)
    await settle(env)
    assert paged == ["payments"]
    assert answers(env, ts) == ["Final: paged the on-call of payments"]
    [decided] = pauses(env, ts)
    assert "Approved by <@UOPS>" in decided and ui.TOOL_OK not in decided
    not_in_channel(env, ts)


@kind("team")
async def test_a_team_members_tool_call_pauses_inline(env: Env) -> None:
    env.model.script(
        call("delegate_task_to_member", member_name="Pager", task="page payments"),  # the leader
        call("page_oncall", service="payments"),  # the member
        text("Member: paged"),  # the member, after its tool ran
        text("The on-call of payments is paged."),  # the leader's answer
    )
    ts = await env.slack.say_in("U1", "C1", f"{BOT} page payments")
    await settle(env)
    [card] = pauses(env, ts)
    assert "page_oncall" in card and "Pager" in card and paged == []
    await env.slack.click(ui.TOOL_OK, user="UOPS", thread_ts=ts)
    await settle(env)
    assert paged == ["payments"]
    assert answers(env, ts) == ["The on-call of payments is paged."]
    not_in_channel(env, ts)


@kind("quorum")
async def test_two_of_three_votes_inline(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} v2.1")
    await settle(env)
    [card] = pauses(env, ts)
    assert "Ship it?" in card and "2 approvals needed" in card
    await env.slack.click(ui.CONFIRM, user="UA", thread_ts=ts)
    await settle(env)
    await env.slack.click(ui.CONFIRM, user="UA", thread_ts=ts)  # a second vote of the same person counts once
    await settle(env)
    assert "already voted" in told(env, "UA")[-1]["text"] and told(env, "UA")[-1].get("thread_ts") == ts
    [card] = pauses(env, ts)
    assert "Approvals: 1 of 2 (<@UA>)" in card and ui.CONFIRM in card and answers(env, ts) == []  # still open
    await env.slack.click(ui.CONFIRM, user="UB", thread_ts=ts)
    await settle(env)
    first, second = pauses(env, ts)  # the vote carried: the step ran, and the form is next
    assert ui.CONFIRM not in first and "<@UA>" in first and "<@UB>" in first
    assert ui.OPEN_INPUT in second and answers(env, ts) == []


@kind("ship")
async def test_a_workflow_conversation_with_a_confirmation_and_a_form(env: Env) -> None:
    ts = await env.slack.say_in("U1", "DU1", "v2.1")
    await settle(env)
    await env.slack.click(ui.CONFIRM, user="U1", thread_ts=ts)  # not an approver
    await settle(env)
    assert "may answer this" in told(env, "U1")[-1]["text"] and len(pauses(env, ts)) == 1
    await env.slack.click(ui.CONFIRM, user="UA", thread_ts=ts)
    await settle(env)
    assert ui.OPEN_INPUT in pauses(env, ts)[-1]
    await env.slack.click(ui.OPEN_INPUT, user="UB", thread_ts=ts)
    await settle(env)
    view = env.slack.last_view()
    assert [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"] == ["Title", "Env"]
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": None}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "1"}}},
    }
    status, body = await submit_form(env, "UB", values)
    assert json.loads(body)["errors"] == {"f0": "Title is required."} and answers(env, ts) == []
    values["f0"]["v"]["value"] = "Spring <release>"
    status, body = await submit_form(env, "UB", values)
    assert status == 200 and body == ""
    assert answers(env, ts) == ["Shipped v2.1 as 'Spring &lt;release&gt;' to prod"]
    assert all(ui.OPEN_INPUT not in p and ui.CONFIRM not in p for p in pauses(env, ts))
    not_in_channel(env, ts)


@kind("kinds")
async def test_every_step_pause_kind_inline(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} login broken")
    await settle(env)
    state = {ui.ROUTE_BLOCK: {ui.ROUTE_PICK: {"type": "static_select", "selected_option": {"value": "0"}}}}
    await env.slack.click(ui.ROUTE_GO, user="U1", thread_ts=ts, state=state)  # route choice
    await settle(env)
    assert "Approving ends the loop" in pauses(env, ts)[-1]
    await env.slack.click(ui.OPEN_FEEDBACK, user="U1", thread_ts=ts)  # another iteration, please
    await settle(env)
    await submit_form(env, "U1", {"text": {"v": {"type": "plain_text_input", "value": "more"}}})
    await env.slack.click(ui.CONFIRM, user="U1", thread_ts=ts)  # this iteration ends the loop
    await settle(env)
    assert "upstream timed out" in pauses(env, ts)[-1]
    await env.slack.click(ui.RETRY, user="U1", thread_ts=ts)  # the error decision
    await settle(env)
    assert ui.OPEN_EDIT in pauses(env, ts)[-1]  # the output review
    await env.slack.click(ui.CONFIRM, user="U1", thread_ts=ts)
    await settle(env)
    assert answers(env, ts) == ["Summary of fetched (bug: login broken +polished +polished)"]
    assert len(pauses(env, ts)) == 5 and all("kern:" not in p.replace("kern:full", "") for p in pauses(env, ts))
    not_in_channel(env, ts)


@kind("ship")
async def test_a_pause_inline_handed_over(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} v3")
    await settle(env)
    await env.slack.click(ui.HANDOVER, user="UA", thread_ts=ts)
    await settle(env)
    values = {"to": {"v": {"type": "users_select", "selected_user": "UNEW"}}, "note": {"v": {"value": "yours"}}}
    await submit_form(env, "UA", values)
    notice = [m for m in replies(env, ts) if "<@UNEW>" in m.text]
    assert len(notice) == 1 and "handed you" in notice[0].text
    await env.slack.until(lambda: "Handed to <@UNEW> by <@UA>" in pauses(env, ts)[0])
    await env.slack.click(ui.CONFIRM, user="UNEW", thread_ts=ts)
    await settle(env)
    assert ui.OPEN_INPUT in pauses(env, ts)[-1] and "Approved by <@UNEW>" in pauses(env, ts)[0]


@kind("timed")
async def test_a_reminder_and_a_deadline_inline(env: Env) -> None:
    ts = await env.slack.say_in("U1", "C1", f"{BOT} v4")
    await settle(env)
    runner, registry = env.bot.runner, env.bot.registry
    await sweep_once(runner, registry, now=time.time() + 70)  # past remind_after: a reminder in the thread
    await settle(env)
    owed = [m for m in replies(env, ts) if (m.metadata or {}).get("event_type") == "kern_owed"]
    reminders = [m for m in owed if "<@UA>" in m.text]
    assert len(reminders) == 1 and answers(env, ts) == []
    await sweep_once(runner, registry, now=time.time() + 110)  # past the deadline: approved, nobody clicking
    await settle(env)
    await env.slack.until(lambda: answers(env, ts) == ["checked v4"])
    [decided] = pauses(env, ts)
    assert "Timed out" in decided and ui.CONFIRM not in decided
    not_in_channel(env, ts)


# ----- conversation turns listed as runs: the App Home and `/kern status` ------------------------------------
def home_text(env: Env, user: str) -> str:
    return json.dumps(env.slack.homes[user]["blocks"])


@kind("agent")
async def test_turns_are_listed_as_runs_on_the_home_and_in_kern_status(env: Env) -> None:
    env.model.script(call("page_oncall", service="search"), echo_tool_results)
    done = await env.slack.say_in("U1", "DU1", "page search")
    await settle(env)
    await env.slack.click(ui.TOOL_OK, user="UOPS", thread_ts=done)
    await settle(env)
    assert answers(env, done) == ["Final: paged the on-call of search"]
    env.model.script(call("page_oncall", service="payments"), echo_tool_results)
    waiting = await env.slack.say_in("U1", "C1", f"{BOT} page *payments* <now>")
    await settle(env)

    await env.slack.open_home("U1")
    await env.slack.until(lambda: "U1" in env.slack.homes and "You asked" in home_text(env, "U1"))
    shown = home_text(env, "U1")
    thread = f"/archives/C1/p{waiting.replace('.', '')}"  # a link to the thread (its first message)
    assert "You asked \\u201cpage *payments* &lt;now&gt;\\u201d in <#C1> (<" in shown and thread in shown
    assert "Waiting" in shown
    assert "You asked \\u201cpage search\\u201d in our DM" in shown and "Completed" in shown
    await env.slack.open_home("U2")  # another person's Home lists none of them
    await env.slack.until(lambda: "U2" in env.slack.homes)
    assert "You asked" not in home_text(env, "U2")

    status, body, took = await env.slack.command("status", user="U1")
    assert status == 200 and json.loads(body)["text"].startswith("Which run?") and took < 1.0
    await settle(env)
    listed = told(env, "U1")[-1]["text"]
    assert listed.startswith("Your latest runs:") and thread in listed
    assert "You asked \u201cpage *payments* &lt;now&gt;\u201d in <#C1>" in listed and "page search" in listed
    run_id = listed.split("\n")[2].split("`")[1]  # the newest first: the DM's turn second
    _, body, _ = await env.slack.command(f"status {run_id}", user="U1")
    text = json.loads(body)["text"]
    assert "completed" in text and "a conversation turn in our DM: page search" in text
    _, body, _ = await env.slack.command(f"status {run_id}", user="U2")  # not theirs to read: as if not there
    assert "page search" not in json.loads(body)["text"]
