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


async def test_a_command_typed_without_its_slash_gets_a_private_hint(env: Env) -> None:
    """Slack's `message` and `app_mention` events, signed, to the bot's endpoint: a message that reads as a
    command gets the command meant, to its author only (in its thread, if in one); a mention or a DM gets
    how to talk to the bot; talk between people, edits and other bots' messages get nothing."""

    async def message(text: str, **extra: object) -> None:
        event = {"type": "message", "channel": "C1", "user": "U2", "text": text, "ts": "1.000100"}
        status, _body, _took = await env.slack.event({**event, "channel_type": "channel", **extra})
        assert status == 200

    await message("run deploy api")
    await message("kern status 3f2a9c", thread_ts="0.000100")
    await message("<@UBOT> hello there")  # also an app_mention (below): answered once, there
    await env.slack.event(
        {"type": "app_mention", "channel": "C1", "user": "U2", "text": "<@UBOT> hello there", "ts": "2.1"}
    )
    await message("help me with the deploy please", channel_type="im", channel="D2")
    await env.slack.until(lambda: len(env.slack.ephemeral) == 4)
    await message("help me with the deploy please")  # people talking in a channel
    await message("run deploy api", subtype="message_changed")
    await message("run deploy api", bot_id="B9")
    await env.slack.command("list", user="U3")  # answered after the messages above were handled
    await env.slack.until(lambda: len(env.slack.ephemeral) == 5)
    hints = [(e["user"], e["channel"], e.get("thread_ts"), e["text"]) for e in env.slack.ephemeral[:4]]
    meant = "Commands start with a slash: did you mean "
    assert sorted(hints, key=str) == sorted(
        [
            ("U2", "C1", None, meant + "`/kern run deploy api`?"),
            ("U2", "C1", "0.000100", meant + "`/kern status 3f2a9c`?"),
            (
                "U2",
                "C1",
                None,
                "I answer to `/kern` commands: `/kern run <workflow>` starts one, `/kern list` lists "
                "them, `/kern help` says more. Pauses are answered with the buttons on their messages.",
            ),
            ("U2", "D2", None, meant + "`/kern help`?"),
        ],
        key=str,
    )
