"""Decided messages that keep their context, and the run card, forms, help and intro people read: end to end
through the Slack stand-in (signed requests to the bot's real endpoint), on SQLite and PostgreSQL."""

# ruff: noqa: F811 - the tests take test_bot_e2e's `env` fixture, imported here by name
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.registry import BotWorkflow, Registry
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.run import requirement as kinds
from kern.run.requirement import StepRequirement
from kern.tools import tool
from kern.workflow import OnReject, Router, Step, StepInput, StepOutput, UserInputField, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, calls, text, tool_results
from tests.test_bot_e2e import SECRET, Env, env, reject, run, run_id_of_card, settle, start_bot  # noqa: F401

TEXT = "plain_text_input"


def header(message: Any) -> str:
    """The first line of a pause message: what is asked, or (decided) the outcome."""
    return message.blocks[0]["text"]["text"]


def controls(message: Any) -> list[dict[str, Any]]:
    return [b for b in message.blocks if b["type"] == "actions"]


# What an open pause asks for (its label): a decided message shows its outcome instead, once.
OPEN_LABELS = (
    ":raised_hand: Approval needed",
    ":memo: Input needed",
    ":mag: Review needed",
    ":repeat: Review iteration",
    ":twisted_rightwards_arrows: Choose a route",
    ":warning: A step failed",
    ":hammer_and_wrench: Tool call needs approval",
)


def assert_decided_once(message: Any) -> str:
    """A decided message: no controls, no open label anywhere; its blocks as text (mrkdwn, not ASCII-escaped)."""
    kept = json.dumps(message.blocks, ensure_ascii=False)
    assert controls(message) == [], kept
    assert not [label for label in OPEN_LABELS if label in kept], kept
    return kept


def text_value(value: str | None) -> dict[str, Any]:
    return {"text": {"v": {"type": TEXT, "value": value}}}


async def open_and_submit(env: Env, action_id: str, values: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Click `action_id` (which opens a form), submit `values`; returns the form and the bot's answer."""
    await env.slack.click(action_id)
    await settle(env)
    view = env.slack.last_view()
    _status, body, _took = await env.slack.submit(view["id"], values)
    await settle(env)
    return view, body


# ----- confirmations and Conditions ----------------------------------------------------------------------
async def test_a_rejection_that_cancels_keeps_the_question(env: Env) -> None:
    card = await run(env, "deploy api")
    pause = pause_in(env, card.ts)
    await reject(env, "U2")
    decided = env.slack.messages[pause.ts]
    assert header(decided).startswith(":no_entry: *Rejected: run cancelled* · `deploy` / *deploy*")
    text = json.dumps(decided.blocks)
    assert "Deploy to production?" in text and "Rejected by <@U2> at <!date^" in text
    assert controls(decided) == []
    assert "Rejected: run cancelled" in decided.text  # the notification text says it too


async def test_a_conditions_no_is_a_choice_not_a_rejection(env: Env) -> None:
    card = await run(env, "analysis")
    pause = pause_in(env, card.ts)
    stale = env.slack.find(ui.CONFIRM)
    await env.slack.click(ui.REJECT, user="U2")
    await settle(env)
    await env.slack.click(ui.CONFIRM, user="U3", stale=stale)  # too late
    await settle(env)
    assert env.slack.ephemeral[-1]["text"] == "Already answered by <@U2>."
    decided = env.slack.messages[pause.ts]
    assert header(decided).startswith(":twisted_rightwards_arrows: *Chose: No, ran quick*")
    assert "Rejected" not in json.dumps(decided.blocks)
    assert "Run the detailed analysis?" in json.dumps(decided.blocks)
    assert "Answered by <@U2>" in json.dumps(decided.blocks)

    card = await run(env, "analysis")
    pause = pause_in(env, card.ts)
    await env.slack.click(ui.CONFIRM, user="U3")
    await settle(env)
    assert header(env.slack.messages[pause.ts]).startswith(":white_check_mark: *Chose: Yes, ran detailed*")
    assert "Detailed analysis done" in env.card_text()


def pause_in(env: Env, thread_ts: str) -> Any:
    """The newest pause message of a thread (not the line that tells the starter how the run ended)."""
    return [m for m in env.slack.thread(thread_ts) if m.blocks][-1]


async def test_no_decided_form_keeps_its_open_label(env: Env) -> None:
    """Every pause kind of the examples, decided: the outcome heads it once, who and when once, no open label."""
    card = await run(env, "deploy api")  # a confirmation, approved with a comment
    await env.slack.click(ui.OPEN_APPROVE, user="U2")
    await settle(env)
    await env.slack.submit(env.slack.last_view()["id"], text_value("after the <freeze>"), user="U2")
    await settle(env)
    kept = assert_decided_once([m for m in env.slack.thread(card.ts) if m.blocks][-1])
    assert "*Comment*\\nafter the &lt;freeze&gt;" in kept and kept.count("Approved by <@U2> at <!date^") == 1

    decided = []
    card = await run(env, "report")  # user input
    values = {
        "f0": {"v": {"type": TEXT, "value": "Weekly"}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
        "f2": {"v": {"type": "number_input", "value": "4"}},
        "f3": {"v": {"type": "checkboxes", "selected_options": []}},
    }
    await open_and_submit(env, ui.OPEN_INPUT, values)
    decided.append((env.slack.thread(card.ts)[0], ":memo: *Input provided*", "Submitted by <@U1>"))
    card = await run(env, "newsletter kern")  # an output review
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    decided.append((env.slack.thread(card.ts)[0], ":white_check_mark: *Approved*", "Approved by <@U1>"))
    card = await run(env, "refine idea")  # an iteration review
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    decided.append((env.slack.thread(card.ts)[0], ":white_check_mark: *Approved*", "Approved by <@U1>"))
    card = await run(env, "triage login broken")  # a route
    state = {ui.ROUTE_BLOCK: {ui.ROUTE_PICK: {"type": "static_select", "selected_option": {"value": "0"}}}}
    await env.slack.click(ui.ROUTE_GO, state=state, thread_ts=card.ts)
    await settle(env)
    decided.append((env.slack.thread(card.ts)[0], ":twisted_rightwards_arrows: *Chose bug*", "Chosen by <@U1>"))
    card = await run(env, "analysis")  # a Condition
    await env.slack.click(ui.CONFIRM)
    await settle(env)
    decided.append((env.slack.thread(card.ts)[0], ":white_check_mark: *Chose: Yes, ran detailed*", "Answered by"))
    card = await run(env, "flaky")  # a failed step
    await env.slack.click(ui.RETRY)
    await settle(env)
    decided.append((env.slack.thread(card.ts)[0], ":repeat: *Retried*", "Retried by <@U1>"))
    card = await run(env, "deploy web")  # a confirmation, rejected with a reason: the run is cancelled
    await reject(env, "U2", reason="not today")
    decided.append((pause_in(env, card.ts), ":no_entry: *Rejected: run cancelled*", "Rejected by <@U2>"))
    for message, head, by in decided:
        kept = assert_decided_once(message)
        assert header(message).startswith(head), kept
        assert kept.count(f"{by}") == 1 and kept.count("<!date^") == 1, kept  # who and when, once
    assert "*Reason*\\nnot today" in json.dumps(decided[-1][0].blocks)
    assert env.errors() == []


# ----- forms: user input, edits, feedback ------------------------------------------------------------------
async def test_submitted_values_stay_on_the_decided_message(env: Env) -> None:
    card = await run(env, "report")
    pause = pause_in(env, card.ts)
    assert "Fields: Title, Format, Pages, Include charts" in json.dumps(pause.blocks)
    values = {
        "f0": {"v": {"type": TEXT, "value": "Weekly <ops>"}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "2"}}},
        "f2": {"v": {"type": "number_input", "value": "4"}},
        "f3": {"v": {"type": "checkboxes", "selected_options": []}},
    }
    view, body = await open_and_submit(env, ui.OPEN_INPUT, values)
    assert body == "" and view["title"]["text"] == "Report"
    decided = env.slack.messages[pause.ts]
    assert header(decided).startswith(":memo: *Input provided*")
    fields = next(b for b in decided.blocks if "fields" in b)["fields"]
    assert [f["text"] for f in fields][:3] == ["*Title*\nWeekly &lt;ops&gt;", "*Format*\nhtml", "*Pages*\n4"]
    assert "Configure the report" in json.dumps(decided.blocks) and "Submitted by <@U1>" in json.dumps(decided.blocks)


async def test_whitespace_is_no_answer_to_a_required_field(env: Env) -> None:
    await run(env, "report")
    await env.slack.click(ui.OPEN_INPUT)
    await settle(env)
    view = env.slack.last_view()
    values = {
        "f0": {"v": {"type": TEXT, "value": "   "}},
        "f1": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
        "f2": {"v": {"type": "number_input", "value": None}},
        "f3": {"v": {"type": "checkboxes", "selected_options": []}},
    }
    _status, body, _took = await env.slack.submit(view["id"], values)
    answer = json.loads(body)
    assert answer == {"response_action": "errors", "errors": {"f0": "Title is required (only spaces given)."}}
    assert "Waiting: report" in env.card_text()  # nothing was recorded


def test_kern_refuses_whitespace_for_a_required_field() -> None:
    req = StepRequirement(
        step_name="report",
        kind=kinds.USER_INPUT,
        user_input_schema=[UserInputField(name="title"), UserInputField(name="note", required=False)],
    )
    with pytest.raises(ValueError, match=r"Invalid input for step 'report': title: required \(only spaces given\)"):
        req.set_user_input(title=" \t\n ")
    assert req.user_input is None and not req.is_resolved  # nothing changed
    req.set_user_input(title="Q4", note="  ")
    assert req.user_input == {"title": "Q4", "note": None}  # an optional field left blank is empty


def test_kern_refuses_whitespace_for_a_tools_required_field() -> None:
    from kern.run.agent import RunRequirement, ToolExecution

    call = RunRequirement(
        tool_execution=ToolExecution(
            tool_call_id="call_1",
            tool_name="open_change",
            tool_args={"summary": "x"},
            requires_user_input=True,
            user_input_schema=[UserInputField(name="ticket")],
        )
    )
    with pytest.raises(ValueError, match=r"tool 'open_change': ticket: required \(only spaces given\)"):
        call.provide_user_input({"ticket": "   "})
    call.provide_user_input({"ticket": "CHG-1"})
    assert call.tool_execution.tool_args["ticket"] == "CHG-1"


async def test_an_edit_keeps_the_edited_and_the_reviewed_output(env: Env) -> None:
    card = await run(env, "newsletter the bot")
    first = pause_in(env, card.ts)
    view, _ = await open_and_submit(env, ui.OPEN_FEEDBACK, text_value("mention *kern*"))
    assert view["title"]["text"] == "Send back: Draft" and view["submit"]["text"] == "Reject"
    sent_back = env.slack.messages[first.ts]
    assert header(sent_back).startswith(":leftwards_arrow_with_hook: *Sent back with feedback*")
    assert "*Feedback*\\n`mention *kern*`" in json.dumps(sent_back.blocks)
    assert "Dear team" in json.dumps(sent_back.blocks) and "Review the newsletter draft" in json.dumps(sent_back.blocks)

    second = pause_in(env, card.ts)
    view, _ = await open_and_submit(env, ui.OPEN_EDIT, text_value("Final text"))
    assert view["title"]["text"] == "Edit: Draft"
    decided = env.slack.messages[second.ts]
    assert header(decided).startswith(":pencil2: *Edited and approved*")
    kept = json.dumps(decided.blocks)
    assert "*Edited output*\\n```Final text```" in kept and "Revised after feedback: mention *kern*" in kept
    assert "Edited by <@U1>" in kept
    assert "Final text" in env.card_text()


async def test_read_only_views_close_and_titles_fit(env: Env) -> None:
    await run(env, "newsletter " + "x" * 3000)
    await env.slack.click(ui.VIEW_FULL)
    await settle(env)
    view = env.slack.last_view()
    assert view["close"]["text"] == "Close" and "submit" not in view
    await env.slack.click(ui.OPEN_FEEDBACK)
    await settle(env)
    assert env.slack.last_view()["close"]["text"] == "Cancel"  # a form's close discards it
    assert ui.form_title("a_very_long_step_name_for_reviews", "Send back: ") == "Send back: A very long …"
    assert env.errors() == []


# ----- retries used up ---------------------------------------------------------------------------------------
def _summarize(step_input: StepInput) -> StepOutput:
    feedback = step_input.additional_data.get("rejection_feedback")
    return StepOutput(content="Summary" + (f" (after: {feedback})" if feedback else ""))


SUMMARY = [
    BotWorkflow(
        Workflow(
            name="summary",
            steps=[
                Step(
                    name="summary",
                    executor=_summarize,
                    requires_output_review=True,
                    on_reject=OnReject.retry,
                    hitl_max_retries=1,
                )
            ],
        ),
        name="summary",
    )
]


@pytest.mark.parametrize("env", [SUMMARY], indirect=True)
async def test_the_last_reject_asks_first_and_says_it_cancels(env: Env) -> None:
    card = await run(env, "summary")
    first = pause_in(env, card.ts)
    button = env.slack.find(ui.OPEN_FEEDBACK)[1]
    assert "confirm" not in button and "retry 1 of 1" in json.dumps(first.blocks)  # a retry is still left
    await open_and_submit(env, ui.OPEN_FEEDBACK, text_value("shorter"))
    assert header(env.slack.messages[first.ts]).startswith(":leftwards_arrow_with_hook: *Sent back with feedback*")

    last = pause_in(env, card.ts)
    assert "Summary (after: shorter)" in json.dumps(last.blocks)
    assert "Retries used up: rejecting cancels the run" in json.dumps(last.blocks)
    assert "retry 2 of 1" not in json.dumps(last.blocks)
    button = env.slack.find(ui.OPEN_FEEDBACK)[1]
    assert button["confirm"]["title"]["text"] == "Retries used up"
    assert button["confirm"]["confirm"]["text"] == "Reject and cancel" and button["confirm"]["style"] == "danger"
    view, _ = await open_and_submit(env, ui.OPEN_FEEDBACK, text_value(None))  # the reason is optional here
    assert view["submit"]["text"] == "Reject and cancel" and "Retries used up" in json.dumps(view["blocks"])
    decided = env.slack.messages[last.ts]
    assert header(decided).startswith(":no_entry: *Retries used up: run cancelled*")
    assert "Sent back" not in header(decided) and "Rejected by <@U1>" in json.dumps(decided.blocks)
    assert "Cancelled: Max retries (1) reached for step 'summary'" in env.card_text()
    assert env.errors() == []


# ----- routers -------------------------------------------------------------------------------------------------
FANOUT = [
    BotWorkflow(
        Workflow(
            name="fanout",
            steps=[
                Router(
                    name="notify",
                    choices=[
                        Step(name=n, executor=lambda s, n=n: f"{n} sent" + (" (long)" + "z" * 3000) * (n == "pager"))
                        for n in ("email", "sms", "pager")
                    ],
                    requires_user_input=True,
                    allow_multiple_selections=True,
                    user_input_message="Where should the alert go?",
                )
            ],
        ),
        name="fanout",
    )
]


@pytest.mark.parametrize("env", [FANOUT], indirect=True)
async def test_every_chosen_routes_output_is_on_the_card(env: Env) -> None:
    card = await run(env, "fanout disk full")
    pause = pause_in(env, card.ts)
    picked = [{"value": "0"}, {"value": "2"}]
    state = {ui.ROUTE_BLOCK: {ui.ROUTE_PICK: {"type": "multi_static_select", "selected_options": picked}}}
    await env.slack.click(ui.ROUTE_GO, state=state, user="U2")
    await settle(env)
    decided = env.slack.messages[pause.ts]
    assert header(decided).startswith(":twisted_rightwards_arrows: *Chose email, pager*")
    assert "Routes: *email*, sms, *pager*" in json.dumps(decided.blocks)
    assert "Where should the alert go?" in json.dumps(decided.blocks)
    shown = env.card_text()
    assert "*Output of email*\\n```email sent```" in shown and "*Output of pager*\\n```pager sent (long)z" in shown
    assert "sms sent" not in shown
    await env.slack.click(ui.VIEW_FULL)  # the long one is cut on the card: the whole of each is in the modal
    await settle(env)
    full = json.dumps(env.slack.last_view()["blocks"])
    assert "email:\\nemail sent\\n\\npager:\\npager sent (long)" in full and full.count("z") >= 3000


# ----- the run card ------------------------------------------------------------------------------------------
async def test_a_cancelled_card_names_who_and_when(env: Env) -> None:
    card = await run(env, "deploy web")
    pause = pause_in(env, card.ts)
    assert "Started <!date^" in env.card_text()
    await env.slack.command(f"cancel {(await run_id_of_card(env))[:8]}", user="U1")
    await settle(env)
    status = next(b for b in env.card().blocks if b["type"] == "context")["elements"][0]["text"]
    assert status.startswith(":no_entry: Cancelled by <@U1>")  # a mention, not an escaped literal
    assert "&lt;@" not in env.card_text()
    assert "Cancelled <!date^" in env.card_text() and "Started <!date^" in env.card_text()
    assert controls(env.card()) == []  # a finished run has nothing left to press
    assert header(env.slack.messages[pause.ts]).startswith(":no_entry: *Run cancelled*")
    assert "Cancelled by <@U1>" in json.dumps(env.slack.messages[pause.ts].blocks)
    _, body, _ = await env.slack.command(f"status {(await run_id_of_card(env))[:8]}")
    assert json.loads(body)["text"].endswith(": cancelled: Cancelled by <@U1>")


async def test_a_running_card_has_times_and_its_buttons(env: Env) -> None:
    await run(env, "report")
    card = env.card()
    buttons = [e["action_id"] for b in controls(card) for e in b["elements"]]
    assert buttons == [ui.RUN_STATUS, ui.RUN_CANCEL]
    assert "Started <!date^" in env.card_text() and "Finished" not in env.card_text()


# ----- tool calls ----------------------------------------------------------------------------------------------
@tool(requires_confirmation=True)
def page_oncall(team: str, urgency: str) -> str:
    """Page a team."""
    return f"paged {team} ({urgency})"


async def test_decided_tool_calls_keep_their_arguments(db_kind: str, tmp_path: Path, server: FakeOpenAI) -> None:
    server.script(
        calls(
            ("page_oncall", {"team": "db <core>", "urgency": "high"}),
            ("page_oncall", {"team": "web", "urgency": "low"}),
        ),
        lambda body: text("Done: " + " | ".join(tool_results(body))),
    )
    db = make_db(db_kind, tmp_path)
    agent = Agent(name="Pager", model=OpenAIChat(id="m", base_url=server.base_url, api_key="t"), tools=[page_oncall])
    entry = BotWorkflow(Workflow(name=unique("pager"), steps=[Step(name="page", agent=agent)]), name="pager")
    async with DevSlack(SECRET) as slack:
        bot, web_runner, url = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = url
        env = Env(slack, bot, db)
        try:
            card = await run(env, "pager disk full")
            await slack.until(lambda: any(ui.TOOL_OK in json.dumps(m.blocks) for m in slack.thread(card.ts)))
            pause = slack.thread(card.ts)[-1]
            await slack.click(ui.TOOL_OK, user="U2")  # the first call
            await settle(env)
            view, _ = await open_and_submit(env, ui.TOOL_NO, text_value("not at night"))
            assert [b["label"]["text"] for b in view["blocks"] if b["type"] == "input"] == ["Note for the agent"]
            assert view["blocks"][-1]["optional"] is True  # Slack itself shows "(optional)", once
            await slack.until(lambda: "Done:" in env.card_text())
            decided = slack.messages[pause.ts]
            kept = json.dumps(decided.blocks)
            assert header(decided).startswith(":white_check_mark: *Tool calls decided*")
            assert_decided_once(decided)
            assert kept.count("Approved by <@U2>") == 1 and kept.count("Rejected by <@U1>") == 1  # each call's, once
            assert kept.count("wants to call `page_oncall`") == 2
            assert "db &lt;core&gt;" in kept and "*urgency*\\nhigh" in kept and "*team*\\nweb" in kept
            assert "Approved by <@U2>" in kept and "Rejected by <@U1>" in kept and "not at night" in kept
            assert controls(decided) == [] and env.errors() == []
        finally:
            await bot.background.idle(10)
            await web_runner.cleanup()


async def test_a_cancelled_tool_call_reads_cleanly(db_kind: str, tmp_path: Path, server: FakeOpenAI) -> None:
    server.script(
        calls(("page_oncall", {"team": "db", "urgency": "high"}), ("page_oncall", {"team": "web", "urgency": "low"}))
    )
    db = make_db(db_kind, tmp_path)
    agent = Agent(name="Pager", model=OpenAIChat(id="m", base_url=server.base_url, api_key="t"), tools=[page_oncall])
    entry = BotWorkflow(Workflow(name=unique("pager"), steps=[Step(name="page", agent=agent)]), name="pager")
    async with DevSlack(SECRET) as slack:
        bot, web_runner, url = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = url
        env = Env(slack, bot, db)
        try:
            card = await run(env, "pager disk full")
            await slack.until(lambda: any(ui.TOOL_OK in json.dumps(m.blocks) for m in slack.thread(card.ts)))
            pause = slack.thread(card.ts)[-1]
            await slack.click(ui.TOOL_OK, user="U2")  # the first call; the second is never decided
            await settle(env)
            await slack.command(f"cancel {(await run_id_of_card(env))[:8]}", user="U1")
            await settle(env)
            await slack.until(lambda: not controls(slack.messages[pause.ts]))
            decided = slack.messages[pause.ts]
            kept = assert_decided_once(decided)
            assert header(decided).startswith(":no_entry: *Run cancelled*")
            assert "Approved by <@U2> at <!date^" in kept and ":heavy_minus_sign: Not decided" in kept
            assert "Decided by" not in kept and not kept.rstrip("]}").endswith(": ")  # nothing dangles
            assert kept.count("Cancelled by <@U1> at <!date^") == 1 and env.errors() == []
        finally:
            await bot.background.idle(10)
            await web_runner.cleanup()
