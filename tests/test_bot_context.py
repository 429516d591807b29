"""Enough context to decide, and nobody locked out (issue 27, items 2 and 7), end to end through the Slack
stand-in on SQLite and PostgreSQL: a pause shows what it is about (the run's input, the last step's
output, what approving runs, and the workflow author's context renderer) on every copy (thread, DM, App
Home); a renderer that raises or returns blocks Slack would refuse leaves the pause usable and is logged
once; `step_messages` words the question from the run's data; rules under which a pause could have nobody
to answer it are refused at start-up (one line), or, where that depends on who starts the run (or on a
group's or a channel's members), when the run is started (privately, nothing started)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.config import SettingsError
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow, Registry, load_registry
from kern.run.requirement import StepRequirement
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.test_bot_e2e import Env, bot_env, settle


def notes(run: Any, req: StepRequirement) -> str:
    return f"Release notes for {run.input}: <!channel> *all* fixed"  # text from people: shown as written


def checklist(run: Any, req: StepRequirement) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": "Checklist"}},
        {
            "type": "section",
            "block_id": "a:clash",  # the author's block ids are dropped: the pause's own must stay unique
            "fields": [
                {"type": "mrkdwn", "text": "*Tests*\ngreen"},
                {"type": "mrkdwn", "text": f"*Run*\n{req.step_name}"},
            ],
        },
    ]


def broken(run: Any, req: StepRequirement) -> str:
    raise RuntimeError("the release notes service is down")


def interactive(run: Any, req: StepRequirement) -> list[dict[str, Any]]:
    button = {"type": "button", "action_id": "x", "text": {"type": "plain_text", "text": "Go"}}
    return [{"type": "actions", "elements": [button]}]


def release(name: str) -> Workflow:
    return Workflow(
        name=unique(name),
        steps=[
            Step(name="build", executor=lambda s: f"build 1.2.{s.input}"),
            Step(
                name="ship",
                description="Pushes the build to production.",
                executor=lambda s: f"shipped {s.previous_step_content}",
                requires_confirmation=True,
            ),
        ],
    )


def flows() -> list[BotWorkflow]:
    return [
        BotWorkflow(
            release("release"),
            name="release",
            approvers=Approvers(users=("UAPP",)),
            notify="dm",
            context=notes,
            step_messages={"ship": "Ship {previous} to production for {input}?"},
        ),
        BotWorkflow(release("checked"), name="checked", step_context={"ship": checklist}),
        BotWorkflow(
            release("broken"), name="broken", approvers=Approvers(users=("UAPP",)), notify="dm", context=broken
        ),
        BotWorkflow(
            release("clicky"),
            name="clicky",
            context=interactive,
            step_messages={"ship": lambda run, req: run.no_such_field},  # fails: kern's question stays
        ),
        BotWorkflow(release("boss"), name="boss", approvers=Approvers(users=("UBOSS",), forbid_self_approval=True)),
        BotWorkflow(
            release("members"), name="members", approvers=Approvers(channel_members=True, forbid_self_approval=True)
        ),
        BotWorkflow(release("pair"), name="pair", approvers=Approvers(groups=("SPAIR",), required=2)),
    ]


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    async with bot_env(Registry(flows(), db), db) as env:
        yield env


async def start(env: Env, text: str, user: str = "U1") -> str:
    """The private reply to `/kern run <text>`."""
    status, body, _ = await env.slack.command(f"run {text}", user=user)
    assert status == 200
    await settle(env)
    return str(json.loads(body)["text"]) if body.startswith("{") else body


def card_text(env: Env) -> str:
    """The newest run card (in the channel: the DM copies are top-level messages too)."""
    found = [m for m in env.slack.messages.values() if m.thread_ts is None and not m.channel.startswith("D")]
    return json.dumps(found[-1].blocks)


def pauses(env: Env) -> list[Any]:
    return [
        m for m in env.slack.messages.values() if m.thread_ts and (m.metadata or {}).get("event_type") == "kern_pause"
    ]


def cards(env: Env) -> int:
    return len([m for m in env.slack.messages.values() if m.thread_ts is None and not m.channel.startswith("D")])


async def open_home(env: Env, user: str) -> str:
    before = env.slack.homes.get(user, {}).get("hash")
    await env.slack.open_home(user)
    await settle(env)
    await env.slack.until(lambda: env.slack.homes.get(user, {}).get("hash") not in (None, before))
    return json.dumps(env.slack.homes[user]["blocks"])


# ----- context to decide -------------------------------------------------------------------------------
async def test_a_pause_shows_what_it_is_about_on_the_thread_the_dm_copy_and_the_home(env: Env) -> None:
    await start(env, "release 7")
    thread = json.dumps(pauses(env)[-1].blocks)
    await env.slack.until(lambda: len(env.slack.dm_of("UAPP")) == 1)
    dm = json.dumps(env.slack.dm_of("UAPP")[-1].blocks)
    home = await open_home(env, "UAPP")
    for shown in (thread, dm, home):
        assert "Ship build 1.2.7 to production for 7?" in shown  # the question, worded from the run's data
        assert "*Input:* 7" in shown and "*From build:* build 1.2.7" in shown  # what it is about
        assert "*Approving runs* *ship*: Pushes the build to production." in shown  # what approving runs
        # the renderer's text, shown as written: escaped once (no @channel), its stars in a code span
        assert "`Release notes for 7: &lt;!channel&gt; *all* fixed`" in shown and "<!channel>" not in shown
    assert pauses(env)[-1].text.count("Ship build 1.2.7") == 1  # the notification's text asks it too
    await env.slack.click(ui.CONFIRM, user="UAPP")
    await settle(env)
    assert "Completed" in card_text(env) and "shipped build 1.2.7" in card_text(env)
    decided = json.dumps(pauses(env)[-1].blocks)
    assert "Ship build 1.2.7 to production for 7?" in decided  # the decided message keeps the same question
    assert env.errors() == []


async def test_a_renderers_blocks_are_shown_as_given(env: Env) -> None:
    await start(env, "checked 1")
    blocks = pauses(env)[-1].blocks
    assert {"type": "header", "text": {"type": "plain_text", "text": "Checklist"}} in blocks
    fields = next(b for b in blocks if b.get("fields"))
    assert fields["fields"][1]["text"] == "*Run*\nship" and "block_id" not in fields
    assert "Run step 'ship'?" in json.dumps(blocks)  # kern's own question, when no step_messages
    await env.slack.click(ui.CONFIRM)  # and the pause works
    await settle(env)
    assert "Completed" in card_text(env) and env.errors() == []


async def test_a_failing_renderer_leaves_the_pause_usable_and_is_logged_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kern_bot")
    await start(env, "broken 2")
    await env.slack.until(lambda: len(env.slack.dm_of("UAPP")) == 1)
    home = await open_home(env, "UAPP")
    await open_home(env, "UAPP")
    for shown in (json.dumps(pauses(env)[-1].blocks), json.dumps(env.slack.dm_of("UAPP")[-1].blocks), home):
        assert "Run step 'ship'?" in shown and "*Input:* 2" in shown  # without the author's context, usable
        assert "service is down" not in shown
    failures = [r for r in caplog.records if "context renderer" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in failures]  # once, however often the pause is drawn
    assert "RuntimeError: the release notes service is down" in failures[0].getMessage()
    await env.slack.click(ui.CONFIRM, user="UAPP")
    await settle(env)
    assert "Completed" in card_text(env) and env.errors() == []


async def test_blocks_slack_would_refuse_or_a_failing_question_are_left_out(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kern_bot")
    await start(env, "clicky 3")
    shown = json.dumps(pauses(env)[-1].blocks)
    assert '"action_id": "x"' not in shown and "Run step 'ship'?" in shown
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "returned blocks Slack would refuse: block 0: type 'actions'" in logged
    assert "step_messages AttributeError" in logged
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    assert "Completed" in card_text(env) and env.errors() == []


def test_renderers_are_checked_when_the_workflow_is_declared() -> None:
    with pytest.raises(SettingsError, match="step_context names no step 'shipp'; its steps are 'build', 'ship'"):
        BotWorkflow(release("typo"), step_context={"shipp": notes})
    with pytest.raises(SettingsError, match=r"step_messages\['ship'\] must be a function"):
        BotWorkflow(release("typo"), step_messages={"ship": 42})  # type: ignore[dict-item]


# ----- nobody locked out --------------------------------------------------------------------------------
def locked() -> list[BotWorkflow]:  # read by load_registry, as KERN_WORKFLOWS would name it
    approve = Step(name="approve", executor=lambda s: "ok", requires_confirmation=True)
    return [
        BotWorkflow(
            Workflow(name="expenses", steps=[approve]),
            approvers=Approvers(users=("UBOSS",), forbid_self_approval=True),
            starters=Audience(users=("UBOSS",)),
        )
    ]


def test_rules_nobody_could_answer_are_refused_at_start_up(tmp_path: Path) -> None:
    db = make_db("sqlite", tmp_path)
    with pytest.raises(SettingsError) as refused:
        load_registry("tests.test_bot_context:locked", db)
    line = str(refused.value)
    assert "\n" not in line
    assert line == (
        "BotWorkflow 'expenses', step 'approve': nobody could answer its pauses: its only approver, UBOSS, may not "
        "answer runs they start (forbid_self_approval), and only UBOSS may start it. Fix: name more approvers "
        "(users, groups or channel_members), lower `required`, or drop forbid_self_approval."
    )
    flow = Workflow(name="w", steps=[Step(name="vote", executor=lambda s: "ok", requires_confirmation=True)])
    with pytest.raises(SettingsError, match=r"step 'vote': .*it needs 2 approvals and only 1 person may give one"):
        BotWorkflow(flow, approvers=Approvers(users=("U1",), required=2))
    with pytest.raises(SettingsError, match="step 'vote'"):  # per step too
        BotWorkflow(flow, step_approvers={"vote": Approvers(users=("U1",), required=3)})
    # where it depends on who starts, it is checked at the start instead
    BotWorkflow(flow, approvers=Approvers(users=("UBOSS",), forbid_self_approval=True))
    BotWorkflow(flow, approvers=Approvers(groups=("S1",), required=2))  # a group's members: asked at the start
    plain = Workflow(name="p", steps=[Step(name="fetch", executor=lambda s: "ok")])  # nothing pauses: nothing to check
    BotWorkflow(plain, approvers=Approvers(users=("U1",), required=2))


async def test_the_only_approver_may_not_start_a_run_they_could_not_answer(env: Env) -> None:
    before = cards(env)
    body = await start(env, "boss x", user="UBOSS")
    assert body.startswith("`boss` was not started: its step *ship* could have nobody to answer it here")
    assert "its only approver, <@UBOSS>, may not answer runs they start" in body
    assert cards(env) == before and pauses(env) == []  # nothing started
    await start(env, "boss y", user="U1")  # someone else may start it, and UBOSS answers
    assert cards(env) == before + 1
    await env.slack.click(ui.CONFIRM, user="UBOSS")
    await settle(env)
    assert "Completed" in card_text(env) and env.errors() == []


async def test_groups_and_channel_members_are_asked_when_the_run_starts(env: Env) -> None:
    env.slack.members["C1"] = ["U1", "UBOT"]  # the starter and the bot: nobody else could answer
    before = cards(env)
    body = await start(env, "members x", user="U1")
    assert "`members` was not started" in body and "its only approver, <@U1>" in body
    assert cards(env) == before
    env.slack.members["C1"] = ["U1", "UBOT", "U2"]
    await start(env, "members y", user="U1")
    assert cards(env) == before + 1

    env.slack.groups["SPAIR"] = ["U2"]  # two approvals needed, one person in the group
    body = await start(env, "pair x", user="U1")
    assert "`pair` was not started" in body and "it needs 2 approvals and only 1 person may give one" in body
    env.slack.groups["SPAIR"] = ["U2", "U3"]
    await start(env, "pair y", user="U1")
    assert cards(env) == before + 2
    assert env.errors() == []
