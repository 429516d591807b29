"""What people read (issue 27, defects 5, 7, 8, 9, 10, 12 and 18's text): mentions where Slack shows them
as names, text as it was typed (backticks too), long values as a preview with the rest a click away, form
bounds declared and enforced, an empty edit refused, command replies that say what to do, and the small
words right. End to end through the stand-in on SQLite and PostgreSQL (`env` of tests/test_bot_e2e.py)."""

# ruff: noqa: F811 - the tests take test_bot_e2e's `env` fixture, imported here by name

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from bot import blocks as ui
from bot.policy import Approvers, Audience
from bot.registry import BotWorkflow
from bot.surfaces.modals import EMPTY_EDIT
from kern.run.base import RunStatus
from kern.workflow import Step, Workflow
from tests.conftest import unique
from tests.test_bot_access import forget_home_viewers
from tests.test_bot_e2e import Env, env, run, run_id_of_card, settle  # noqa: F401 - env: the fixture

# Whose Homes are opened: ids of this test alone (a Home opened on the shared PostgreSQL database is republished
# by any bot there as runs change, so it must not be a Home other tests' runs touch).
STARTER, REVIEWER = (f"UTXT{uuid.uuid4().hex[:6].upper()}" for _ in range(2))
CUT_ESCAPE = re.compile(r"&(?:a|am|amp|l|lt|g|gt)?(?:…| …)")
EXTRA = [
    BotWorkflow(
        Workflow(name=unique("locked"), steps=[Step(name="s", executor=lambda s: "ok")]),
        name="locked",
        starters=Audience(users=("UBOSS",)),
    ),
    BotWorkflow(
        Workflow(name=unique("echo"), steps=[Step(name="say", executor=lambda s: s.input)]),
        name="echo",
    ),
    BotWorkflow(
        Workflow(
            name=unique("guarded"),
            steps=[Step(name="deploy", executor=lambda s: "done", requires_confirmation=True)],
        ),
        name="guarded",
        approvers=Approvers(users=("U1", "UBOSS")),
    ),
    BotWorkflow(
        Workflow(
            name=unique("mine"),
            steps=[Step(name="ship", executor=lambda s: "shipped", requires_confirmation=True)],
        ),
        name="mine",
        approvers=Approvers(users=(REVIEWER,)),
    ),
]
with_extra = pytest.mark.parametrize("env", [EXTRA], indirect=True)


@pytest.fixture
async def homes(env: Env) -> AsyncIterator[None]:
    """For a test that opens App Homes: forget them after (see `forget_home_viewers`)."""
    yield
    await forget_home_viewers(env.db, env.slack.homes)


def card_words(env: Env) -> str:
    return json.dumps(env.card().blocks, ensure_ascii=False)


def texts(blocks: Any) -> list[dict[str, Any]]:
    """Every text object (mrkdwn or plain_text) in `blocks`."""
    found: list[dict[str, Any]] = []
    if isinstance(blocks, dict):
        if blocks.get("type") in ("mrkdwn", "plain_text") and isinstance(blocks.get("text"), str):
            found.append(blocks)
        for value in blocks.values():
            found.extend(texts(value))
    elif isinstance(blocks, list):
        for item in blocks:
            found.extend(texts(item))
    return found


async def submit_report(env: Env, title: str, pages: str | None = "3", charts: bool = True) -> tuple[Any, str]:
    card = await run(env, "report")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    view = env.slack.last_view()
    values = {
        "f0": {"v": {"type": "plain_text_input", "value": title}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
        "f2": {"v": {"type": "number_input", "value": pages}},
        "f3": {"v": {"type": "checkboxes", "selected_options": [{"value": "true"}] if charts else []}},
    }
    _, body, _ = await env.slack.submit(view["id"], values)
    await settle(env)
    return card, body


# ----- defect 5: mentions show as names where Slack can, never as codes -------------------------------------
@with_extra
async def test_mentions_are_live_where_slack_shows_them(env: Env, homes: None) -> None:
    env.slack.members.setdefault("C1", []).extend(u for u in (STARTER, "U7") if u not in env.slack.members["C1"])
    await run(env, "guarded", user=STARTER)
    await env.slack.click(
        ui.HANDOVER, user="U7"
    )  # U7 sees the run (a member of C1)  # U7 may not answer: the form says who may
    await settle(env)
    view = env.slack.last_view()
    assert view["title"]["text"] == "Not allowed"
    (said,) = [t for t in texts(view["blocks"])]
    assert said == {"type": "mrkdwn", "text": "Only <@U1> or <@UBOSS> may answer this."}  # mrkdwn: names, not codes
    run_id = await run_id_of_card(env)
    await env.slack.command(f"cancel {run_id[:12]}", user="U7")  # and the refusal to cancel reads as a sentence
    await settle(env)
    assert env.slack.ephemeral[-1]["text"] == (
        "Only the person who started the run or those who may answer it (<@U1> or <@UBOSS>) may cancel this run."
    )
    await env.slack.command(f"cancel {run_id[:12]}", user="UBOSS")
    await settle(env)
    await env.slack.open_home(STARTER)
    await settle(env)
    await env.slack.until(lambda: STARTER in env.slack.homes)
    home = env.slack.homes[STARTER]["blocks"]
    runs = [t for t in texts(home) if "Cancelled by" in t["text"]]
    assert runs and all(t["type"] == "mrkdwn" and "Cancelled by <@UBOSS>" in t["text"] for t in runs), runs
    assert "&lt;@" not in json.dumps(home)
    # a start form's refusal names people: shown over the form in mrkdwn, not as a plain-text error with codes
    await env.slack.command("run research")  # a form U1 may submit; then a payload naming a workflow they may not start
    await settle(env)
    form = env.slack.last_view()
    form["private_metadata"] = json.dumps({"wf": "locked", "ch": "C1", "picked": False})
    topic = {"type": "plain_text_input", "value": "anything"}
    _, body, _ = await env.slack.submit(form["id"], {"start_topic": {"v": topic}})
    answer = json.loads(body)
    assert answer["response_action"] == "push", answer  # over the form, which stays beneath
    assert answer["view"]["blocks"][0]["text"] == {"type": "mrkdwn", "text": "Only <@UBOSS> may start `locked`."}
    assert env.errors() == []


# ----- defect 7: text as it was typed ---------------------------------------------------------------------
@with_extra
async def test_backticks_are_shown_as_typed(env: Env) -> None:
    title = "use ```code``` and `ticks`"
    card, body = await submit_report(env, title)
    assert body == ""
    decided = env.slack.thread(card.ts)[-1].blocks
    fields = next(b["fields"] for b in decided if "fields" in b)
    assert fields[0] == {"type": "plain_text", "text": f"Title\n{title}", "emoji": False}  # exactly as typed
    assert {"type": "mrkdwn", "text": "*Include charts*\nYes"} in fields  # a ticked box reads Yes
    output = f"Report '{title}' as pdf, 3 page(s), with charts."
    card_blocks = env.slack.messages[card.ts].blocks
    assert {"type": "plain_text", "text": f"Output\n{output}", "emoji": False} in texts(card_blocks)
    sent = json.dumps([m.blocks for m in env.slack.messages.values()])
    assert "\\u200b" not in sent and "\\u02cb" not in sent  # no look-alikes, no zero-width spaces
    # single backticks fit a code block: kept as typed, apart from the fence
    _, body, _ = await env.slack.command("run echo `a` b `c`")
    await settle(env)
    assert {"type": "mrkdwn", "text": "*Output*\n``` `a` b `c` ```"} in texts(env.card().blocks)


# ----- defect 8: long values -------------------------------------------------------------------------------
@with_extra
async def test_long_values_are_previews_with_the_rest_a_click_away(env: Env) -> None:
    given = "<a&b> " * 850  # 5,100 characters, each escape a cut could split
    await env.slack.command(f"run echo {given}")
    await settle(env)
    card = env.card()
    section = next(b for b in card.blocks if "fields" in b)
    shown_input, started_by = section["fields"]
    assert started_by["text"] == "*Started by*\n<@U1>"  # kept on the card, beside the input
    assert len(shown_input["text"]) <= 300 and re.search(r"… \([\d,]+ more characters\)$", shown_input["text"])
    output = next(t["text"] for t in texts(card.blocks) if t["text"].startswith("*Output*"))
    assert re.search(r"``` … \([\d,]+ more characters\)$", output) and not CUT_ESCAPE.search(output)
    assert not CUT_ESCAPE.search(shown_input["text"])
    view_input = next(
        el for b in card.blocks if b["type"] == "actions" for el in b["elements"] if el["value"].startswith("input:")
    )
    assert view_input["text"]["text"] == "View input"
    payload = env.slack.click_payload(ui.VIEW_FULL)
    payload["actions"][0]["value"] = view_input["value"]
    await env.slack._interaction(payload)
    await settle(env)
    modal = env.slack.last_view()
    assert modal["title"]["text"] == "Input"
    whole = "".join(t["text"].removeprefix("```").removesuffix("```") for t in texts(modal["blocks"]))
    assert whole == ui.escape(given.strip())  # all of it, escaped once
    # a 3,000-character value on a decided form is one readable line, not a narrow code column
    card, _ = await submit_report(env, "x" * 3000)
    decided = env.slack.thread(card.ts)[-1].blocks
    assert not any("fields" in b for b in decided)
    line = next(t["text"] for t in texts(decided) if t["text"].startswith("*Title*"))
    assert line.startswith("*Title*: xxx") and line.count("x") < 700 and "more characters)" in line
    assert env.errors() == []


# ----- defect 9: number bounds; checkbox values --------------------------------------------------------------
@with_extra
async def test_number_fields_are_bounded_and_refused_by_name(env: Env) -> None:
    await run(env, "report")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    view = env.slack.last_view()
    pages = next(b for b in view["blocks"] if b.get("block_id") == "f2")["element"]
    assert (pages["min_value"], pages["max_value"]) == ("1", "50")  # the form declares them
    for value, error in (
        ("-5", "Pages: must be at least 1, got -5"),
        ("100000000000000000000000", "Pages: must be at most 50, got 100000000000000000000000"),
    ):
        values = {
            "f0": {"v": {"type": "plain_text_input", "value": "Q4"}},
            "f1": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
            "f2": {"v": {"type": "number_input", "value": value}},  # a client that ignores the bounds
            "f3": {"v": {"type": "checkboxes", "selected_options": []}},
        }
        _, body, _ = await env.slack.submit(view["id"], values)
        assert json.loads(body) == {"response_action": "errors", "errors": {"f2": error}}
    run_id = await run_id_of_card(env)
    entry = env.bot.registry.get("report")
    assert entry is not None and (await entry.workflow.aget_run(run_id)).status == RunStatus.PAUSED
    values["f2"]["v"]["value"] = "50"
    _, body, _ = await env.slack.submit(view["id"], values)
    await settle(env)
    assert body == "" and "50 page(s), without charts" in env.card_text()
    decided = env.slack.thread(env.card().ts)[-1].blocks
    assert {"type": "mrkdwn", "text": "*Include charts*\nNo"} in texts(decided)  # not "false"


# ----- defect 10: an empty edit -----------------------------------------------------------------------------
@with_extra
async def test_an_empty_edit_is_refused_in_the_form(env: Env) -> None:
    card = await run(env, "newsletter the new engine")
    await env.slack.click(ui.OPEN_EDIT)
    await settle(env)
    view = env.slack.last_view()
    for empty in ("", "  \n\t "):
        _, body, _ = await env.slack.submit(view["id"], {"text": {"v": {"type": "plain_text_input", "value": empty}}})
        assert json.loads(body) == {"response_action": "errors", "errors": {"text": EMPTY_EDIT}}
    await settle(env)
    assert "Waiting: draft" in env.card_text() and env.slack.find(ui.OPEN_EDIT)  # still open, nothing decided
    assert env.slack.messages[card.ts].blocks == env.card().blocks


# ----- defect 12: command replies -----------------------------------------------------------------------------
@with_extra
async def test_command_replies_say_what_to_do(env: Env) -> None:
    for verb in ("status", "cancel"):
        _, body, _ = await env.slack.command(verb)
        text = json.loads(body)["text"]
        assert text.startswith("Which run?") and f"`/kern {verb} <run id>`" in text and "don't know" not in text
    _, body, _ = await env.slack.command("run research just some words")
    text = json.loads(body)["text"]
    assert "takes a form" in text and "`/kern run research` without input" in text and "expects a JSON" not in text
    shape = re.search(r"`/kern run research (\{.*\})`", text)
    assert shape is not None
    sample = json.loads(shape[1].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))
    assert sample["topic"] and sample["depth"] == "quick" and sample["sources"] == 3
    _, body, _ = await env.slack.command(f"run research {shape[1]}")  # the shape it shows starts a run
    assert "Starting" in body
    await settle(env)
    card = await run(env, "deploy api")
    run_id = await run_id_of_card(env)
    _, body, _ = await env.slack.command(f"status {run_id[:12].upper()}")  # ids in any case
    text = json.loads(body)["text"]
    assert f"run `{run_id[:12]}`: paused, waiting at deploy: needs an approval" in text and run_id not in text
    await env.slack.click(ui.CONFIRM, user="U2")
    await settle(env)
    await env.slack.command(f"cancel {run_id[:12]}")
    await settle(env)
    assert env.slack.ephemeral[-1]["text"] == f"Run `{run_id[:12]}` already completed; nothing to cancel."
    assert "Completed" in json.dumps(env.slack.messages[card.ts].blocks)
    card = await run(env, "flaky")
    await env.slack.click(ui.SKIP)
    await settle(env)
    assert "Nothing to use: the fetch step was skipped." in env.card_text() and "None" not in env.card_text()


# ----- defect 18: the small words ---------------------------------------------------------------------------
@with_extra
async def test_the_small_words(env: Env, homes: None) -> None:
    await run(env, "mine")  # the one pause open in this bot's workflows
    await env.slack.open_home(REVIEWER)
    await settle(env)
    await env.slack.until(lambda: REVIEWER in env.slack.homes)
    home = json.dumps(env.slack.homes[REVIEWER]["blocks"])
    count = re.search(r"(\d+) (pause waits|pauses wait) on you, newest first\.", home)
    assert count is not None, home  # one here; more on a shared PostgreSQL database, whose other runs anyone may answer
    assert count[2] == ("pause waits" if count[1] == "1" else "pauses wait")
    card = await run(env, "flaky")
    pause = env.slack.thread(card.ts)[-1]
    error = "upstream timed out (this example fails on its first try)"
    assert json.dumps(pause.blocks).count(error) == 1  # the error once, not twice
    assert "Waiting: fetch — it failed: retry or skip it" in card_words(env)  # what it waits for, in words
    await env.slack.click(ui.RETRY)
    await settle(env)
    assert json.dumps(env.slack.messages[pause.ts].blocks).count(error) == 1
    card = await run(env, "timed")
    deadline = next(t["text"] for t in texts(env.slack.thread(card.ts)[-1].blocks) if ":alarm_clock:" in t["text"])
    assert re.fullmatch(
        r":alarm_clock: If nobody answers within 1 min \(by <!date\^\d+\^\{time_secs\}\|\d+>\), "
        r"it is approved automatically\.",
        deadline,
    ), deadline
    assert "Waiting: rollout — needs an approval" in card_words(env)


def test_what_a_tool_call_waits_for() -> None:
    """The card of a run paused on an agent's tool calls says what they need (an executor pause's calls)."""

    def paused_on(*kinds: str) -> Any:
        calls = [SimpleNamespace(status="pending", kind=k) for k in kinds]
        return SimpleNamespace(kind="executor", executor_requirements=calls, step_name="agent", iteration=None)

    assert ui.waiting_for(paused_on("confirmation")) == "a tool call needs approval"
    assert ui.waiting_for(paused_on("user_feedback")) == "the agent asks a question"
    assert ui.waiting_for(paused_on("external_execution")) == "a tool call needs its result"
    assert ui.waiting_for(paused_on("confirmation", "user_input")) == "2 tool calls need an answer"
