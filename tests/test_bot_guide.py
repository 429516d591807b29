"""What kern-bot says about itself, end to end through the Slack stand-in: `/kern help`, the intro when it
is added to a channel, and the "Starting…" reply that goes once the run card is there."""

# ruff: noqa: F811 - the tests take test_bot_e2e's `env` fixture, imported here by name
from __future__ import annotations

import json

import pytest

from bot.policy import Audience
from bot.registry import BotWorkflow
from kern.workflow import Step, Workflow
from tests.test_bot_e2e import Env, env, run, settle  # noqa: F401

BOSS_ONLY = [
    BotWorkflow(
        Workflow(
            name="payroll",
            description="Runs payroll <monthly>",
            steps=[Step(name="pay", executor=lambda s: "paid", requires_confirmation=True)],
        ),
        name="payroll",
        starters=Audience(users=("UBOSS",)),
    )
]


@pytest.mark.parametrize("env", [BOSS_ONLY], indirect=True)
async def test_help_lists_commands_with_examples_and_the_workflows_you_may_start(env: Env) -> None:
    status, body, took = await env.slack.command("help", user="U1")
    assert status == 200 and took < 1.0
    help_text = json.loads(body)["text"]
    for usage in ("run <workflow> [input]", "list", "status <run id>", "cancel <run id>", "help"):
        assert f"`/kern {usage}`" in help_text
    assert "e.g. `/kern run deploy some input`" in help_text and "e.g. `/kern status 3f2a9c`" in help_text
    assert "• `deploy`: Plan, then deploy after an approval (reject cancels)" in help_text
    assert "`triage`: You pick the route" in help_text
    assert "payroll" not in help_text  # U1 may not start it

    _, body, _ = await env.slack.command("", user="UBOSS")  # a bare /kern is help too
    assert "• `payroll`: Runs payroll &lt;monthly&gt;" in json.loads(body)["text"]


async def test_the_starting_reply_goes_once_the_card_is_posted(env: Env) -> None:
    status, body, _ = await env.slack.command("run deploy api")
    assert status == 200 and "Starting `deploy`" in body
    await settle(env)
    assert "Deploy to production?" in json.dumps(env.slack.thread(env.card().ts)[-1].blocks)
    assert [e for e in env.slack.ephemeral if e["text"].startswith("Starting")] == []
    deletes = [(a, b) for m, a, b in env.slack.calls if m == "response_url"]
    assert deletes == [({"delete_original": True}, {"ok": True})]


async def test_the_starting_reply_stays_when_deleting_it_fails(env: Env) -> None:
    """The stand-in refuses a response_url used up (as Slack does after 5 uses): the card is posted anyway."""
    env.slack.response_url_uses = 0
    await run(env, "deploy api")
    assert "Waiting: deploy" in env.card_text()
    assert [e["text"] for e in env.slack.ephemeral] == ["Starting `deploy`…"]
    assert env.slack.rejected[-1] == {"method": "response_url", "error": "used_url", "errors": []}


async def test_an_intro_when_added_to_a_channel(env: Env) -> None:
    status, _body, _took = await env.slack.join("C7")
    assert status == 200
    await settle(env)
    await env.slack.until(lambda: any(m.channel == "C7" for m in env.slack.messages.values()))
    intro = next(m for m in env.slack.messages.values() if m.channel == "C7")
    text = json.dumps(intro.blocks)
    assert "Hi, I'm kern." in text and "`/kern run <workflow> [input]`" in text and "`/kern help`" in text
    assert "`deploy`: Plan, then deploy" in text and intro.text == "Hi, I'm kern. Try /kern help."

    await env.slack.join("C7", user="U5")  # someone else joining says nothing
    await env.slack.join("C8", user="U5")
    await settle(env)
    assert len([m for m in env.slack.messages.values() if m.channel in ("C7", "C8")]) == 1
    assert env.errors() == []
