"""Text from people and models never mentions anyone (issue 24, item 13): a run's input, a step's error
quoting it, review feedback (also feedback that cancels the run), form values, tool arguments and outputs
carry `<!channel> <!here> <@U123> <#C1> &`, and every message, update, ephemeral reply, response_url post,
modal and Home view the stand-in received shows it escaped once (no live mention, no `&amp;lt;`, no
look-alike characters, no cut escape). End to end through the stand-in, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.blocks.text import clip, code_block, escape, quote, shown
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from bot.slack.app import KernBot
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools import tool
from kern.workflow import OnError, OnReject, Step, StepInput, UserInputField, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, call, echo_tool_results
from tests.test_bot_e2e import SECRET, start_bot

EVIL = "<!channel> <!here> <@U123> <#C1> & co"
SHOWN = "&lt;!channel&gt; &lt;!here&gt; &lt;@U123&gt; &lt;#C1&gt; &amp; co"  # escaped once
LIVE = ("<!channel>", "<!here>", "<@U123>", "<#C1> &")
DOUBLE = ("&amp;lt;", "&amp;gt;", "&amp;amp;")
CUT_ESCAPE = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?…")
# Who starts and who reviews: ids of this test alone (a Home opened here is republished by any bot on the
# shared PostgreSQL database as runs change, so it must not be a Home other tests' runs touch).
STARTER, REVIEWER = (f"UESC{uuid.uuid4().hex[:6].upper()}" for _ in range(2))


@tool(requires_confirmation=True)
def deploy(service: str) -> str:
    """Deploy a service."""
    return f"deployed {service}"


def _fail(step_input: StepInput) -> str:
    raise ValueError(f"bad input: {step_input.input}")


def _draft(step_input: StepInput) -> str:
    feedback = step_input.additional_data.get("rejection_feedback")
    return f"Draft for {step_input.input}" + (f" (revised: {feedback})" if feedback else "")


def flows(model: FakeOpenAI) -> list[BotWorkflow]:
    agent = Agent(name="Deployer", model=OpenAIChat(id="m", base_url=model.base_url, api_key="t"), tools=[deploy])
    wf = [
        ("fails", [Step(name="check", executor=_fail)], {}),
        ("stuck", [Step(name="check", executor=_fail, on_error=OnError.pause)], {}),
        (
            "review",  # feedback cancels the run; the pause goes to the reviewer by DM too
            [Step(name="draft", executor=_draft, requires_output_review=True, on_reject=OnReject.cancel)],
            {"approvers": Approvers(users=(REVIEWER,)), "notify": "dm"},
        ),
        (
            "rework",  # feedback sends the draft back; the output then quotes the feedback
            [Step(name="draft", executor=_draft, requires_output_review=True, on_reject=OnReject.retry)],
            {},
        ),
        (
            "form",
            [
                Step(
                    name="ask",
                    executor=lambda s: f"Asked: {s.additional_data.get('user_input')}",
                    requires_user_input=True,
                    user_input_schema=[UserInputField(name="title")],
                )
            ],
            {},
        ),
        ("long", [Step(name="big", executor=lambda s: "x" + "&" * 4000)], {}),
        ("tools", [Step(name="ship", agent=agent)], {}),
    ]
    return [
        BotWorkflow(Workflow(name=unique(name), steps=steps), name=name, **extra)  # type: ignore[arg-type]
        for name, steps, extra in wf
    ]


@dataclass
class Env:
    slack: DevSlack
    bot: KernBot
    model: FakeOpenAI


@pytest.fixture
async def env(db_kind: str, tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db(db_kind, tmp_path)
    with FakeOpenAI() as model:
        async with DevSlack(SECRET) as slack:
            bot, server, endpoint = await start_bot(slack, Registry(flows(model), db))
            slack.bot_endpoint = endpoint
            try:
                yield Env(slack, bot, model)
            finally:
                await bot.background.idle(10)
                await server.cleanup()


async def settle(env: Env) -> None:
    await asyncio.sleep(0.05)
    await env.bot.background.idle(15)


def mrkdwn(payload: Any, *, top: bool = True) -> Iterator[str]:
    """Every string in `payload` that Slack reads as mrkdwn: a message's `text`, and mrkdwn text objects
    in its blocks or view (plain_text objects and input values show text as it is: nothing to escape)."""
    if isinstance(payload, dict):
        if payload.get("type") == "plain_text":
            return
        if payload.get("type") == "mrkdwn" or (top and isinstance(payload.get("text"), str)):
            yield payload["text"]
        for key, value in payload.items():
            if key not in ("text", "initial_value", "value", "private_metadata"):
                yield from mrkdwn(value, top=False)
            elif key == "text" and isinstance(value, dict):
                yield from mrkdwn(value, top=False)
    elif isinstance(payload, list):
        for item in payload:
            yield from mrkdwn(item, top=False)


def everything_sent(env: Env) -> list[tuple[str, str]]:
    """(where, mrkdwn string) for every call the bot made to the stand-in, and every command reply."""
    sent = [(method, s) for method, args, _ in env.slack.calls for s in mrkdwn(args)]
    return sent + [("command reply", e["text"]) for e in env.slack.ephemeral]


def assert_nothing_live(env: Env) -> None:
    sent = everything_sent(env)
    assert sent
    for where, text in sent:
        assert not any(live in text for live in LIVE), (where, text)
        assert not any(double in text for double in DOUBLE), (where, text)
        assert "\u200b" not in text and "\u02cb" not in text, (where, text)
        assert not CUT_ESCAPE.search(text), (where, text)


def shown_in(env: Env, method: str) -> list[str]:
    return [text for where, text in everything_sent(env) if where == method and SHOWN in text]


async def test_text_from_people_and_models_mentions_nobody(env: Env) -> None:
    slack = env.slack
    # a step's error quoting the input: on the failed card, and on an error pause
    await slack.command(f"run fails {EVIL}", user=STARTER)
    await settle(env)
    assert any(":x: *Error*" in t and f"bad input: {SHOWN}" in t for t in shown_in(env, "chat.update"))
    await slack.command(f"run stuck {EVIL}", user=STARTER)
    await settle(env)
    pauses = [json.dumps(m.blocks) for m in slack.messages.values() if "A step failed" in json.dumps(m.blocks)]
    assert pauses and f"bad input: {SHOWN}" in pauses[-1]
    # a hand-over of that pause with a note: the thread's notice quotes it
    await slack.click(ui.HANDOVER, user=STARTER)
    await settle(env)
    handed = {
        "to": {"v": {"type": "users_select", "selected_user": REVIEWER}},
        "note": {"v": {"type": "plain_text_input", "value": EVIL}},
    }
    await slack.submit(slack.last_view()["id"], handed, user=STARTER)
    await settle(env)
    assert any("handed you" in t for t in shown_in(env, "chat.postMessage"))

    # an output quoting the input, reviewed by the reviewer (thread and DM copy), rejected with feedback that
    # cancels the run
    await slack.command(f"run review {EVIL}", user=STARTER)
    await settle(env)
    dm_copies = [m for m in slack.messages.values() if m.channel.startswith("D")]
    assert dm_copies and SHOWN in json.dumps(dm_copies[-1].blocks)
    await slack.click(ui.OPEN_FEEDBACK, user=REVIEWER)
    await settle(env)
    await slack.submit(
        slack.last_view()["id"], {"text": {"v": {"type": "plain_text_input", "value": EVIL}}}, user=REVIEWER
    )
    await settle(env)
    card = [m for m in slack.messages.values() if m.thread_ts is None and not m.channel.startswith("D")][-1]
    status = next(b for b in card.blocks if b["type"] == "context")["elements"][0]["text"]
    assert status.startswith(f":no_entry: Cancelled: Step 'draft' was rejected: {SHOWN}")
    assert SHOWN in card.text  # the card's notification text too
    review_card_ts = card.ts

    # /kern status of the cancelled run
    store_card = await env.bot.store.card_at(card.channel, review_card_ts, team="")
    assert store_card is not None
    _, body, _ = await slack.command(f"status {store_card.run_id[:8]}", user=STARTER)
    assert json.loads(body)["text"].endswith(f"was rejected: {SHOWN}")

    # review feedback that sends the draft back, then an output that quotes it
    await slack.command("run rework plain", user=STARTER)
    await settle(env)
    await slack.click(ui.OPEN_FEEDBACK, user=STARTER)
    await settle(env)
    await slack.submit(
        slack.last_view()["id"], {"text": {"v": {"type": "plain_text_input", "value": EVIL}}}, user=STARTER
    )
    await settle(env)
    assert any("*Feedback*" in t for t in shown_in(env, "chat.update"))  # the decided message keeps it
    await slack.click(ui.CONFIRM, user=STARTER)
    await settle(env)
    assert any("Completed" in t or "*Output*" in t for t in shown_in(env, "chat.update"))

    # form values
    await slack.command("run form", user=STARTER)
    await settle(env)
    await slack.click(ui.OPEN_INPUT, user=STARTER)
    await settle(env)
    await slack.submit(
        slack.last_view()["id"], {"f0": {"v": {"type": "plain_text_input", "value": EVIL}}}, user=STARTER
    )
    await settle(env)
    assert any("*Title*" in t for t in shown_in(env, "chat.update"))
    assert any("Asked:" in t for t in shown_in(env, "chat.update"))

    # tool arguments from a model, and its output
    env.model.script(call("deploy", service=EVIL), echo_tool_results)
    await slack.command("run tools go", user=STARTER)
    await slack.until(lambda: any("Tool call needs approval" in json.dumps(m.blocks) for m in slack.messages.values()))
    tool_card = next(m for m in slack.messages.values() if "Tool call needs approval" in json.dumps(m.blocks))
    assert SHOWN in json.dumps(tool_card.blocks)
    await slack.click(ui.TOOL_OK, user=STARTER)
    await slack.until(lambda: any(f"deployed {SHOWN}" in t for t in shown_in(env, "chat.update")))
    await settle(env)

    # a long output of `&`: cut on the card between escapes, whole in the modal
    await slack.command("run long", user=STARTER)
    await settle(env)
    await slack.click(ui.VIEW_FULL, user=STARTER)
    await settle(env)
    full = "".join(mrkdwn(slack.last_view()["blocks"]))
    assert full.count("&amp;") == 4000

    # the App Home of the starter: the cancelled run's status line
    await slack.open_home(STARTER)
    await settle(env)
    assert shown_in(env, "views.publish")
    assert_nothing_live(env)
    assert [r for r in slack.rejected if r.get("method") != "chat.getPermalink"] == []


def test_escaping_is_once_and_keeps_the_text() -> None:
    assert escape(EVIL) == SHOWN
    assert quote(EVIL, 100) == SHOWN
    assert quote("ship `it` *now*", 100) == "```ship `it` *now*```"  # backticks as written, in a code block
    assert code_block("a ```b``` c", 100) == "a ```b``` c"  # no zero-width spaces put in; no fence it would end
    assert shown("a ```b``` c", 100) == {"type": "plain_text", "text": "a ```b``` c", "emoji": False}  # as written
    assert ui.reason_line("Cancelled by <@U1>") == "Cancelled by <@U1>"  # the bot's own wording names U1
    assert ui.reason_line("Cancelled by U1") == "Cancelled by <@U1>"
    assert ui.reason_line("Output Review 'd' was rejected: <@U123>") == "Output Review 'd' was rejected: &lt;@U123&gt;"


@pytest.mark.parametrize("limit", range(1, 40))
def test_a_cut_never_splits_an_escape_or_a_mention(limit: int) -> None:
    for text in (escape("a & b < c > d & e" * 3), "x <@U1> y <!date^1|z> &amp; " * 3):
        cut = clip(text, limit)
        assert len(cut) <= limit
        assert not CUT_ESCAPE.search(cut) and not re.search(r"<[^>]*…", cut)
        assert text.startswith(cut[:-1]) if cut != text else True


def test_only_bot_text_escapes() -> None:
    """One place: no other module of the bot escapes by hand (the stand-in plays Slack, and is not the bot)."""
    root = Path(__file__).resolve().parent.parent / "bot"
    by_hand = re.compile(r"&(?:amp|lt|gt);|\.replace\(\s*[\"'][&<>][\"']")
    found = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if path.name != "text.py" and "devslack" not in path.parts and by_hand.search(path.read_text())
    ]
    assert found == []
    assert by_hand.search((root / "blocks" / "text.py").read_text())  # the pattern finds the one place that does
