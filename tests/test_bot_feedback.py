"""kern-bot and an agent's questions (`UserFeedbackTools`): the card shows them, Answer opens a form made
from `user_feedback_schema`, the submission is validated inline and recorded with
`provide_user_feedback`, and the answers reach the model. End to end through the Slack stand-in, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Approvers
from bot.registry import BotWorkflow, Registry
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools.user_feedback import UserFeedbackTools
from kern.workflow import Step, Workflow
from tests.conftest import make_db, unique
from tests.openai_stub import FakeOpenAI, Reply, call, calls, text, tool_results
from tests.test_bot_e2e import SECRET, start_bot

WHERE, LIKE = "Where do you want to go?", "What do you like doing?"
QUESTIONS = [
    {
        "question": WHERE,
        "header": "Destination",
        "options": [
            {"label": "Beach", "description": "Sun & <sand>"},
            {"label": "Mountains"},
            {"label": "City"},
        ],
    },
    {
        "question": LIKE,
        "header": "Activities",
        "multi_select": True,
        "options": [{"label": "Hiking"}, {"label": "Skiing"}, {"label": "Museums"}],
    },
]


@pytest.fixture(scope="module")
def model_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def final(body: dict[str, Any]) -> Reply:
    return text("Plan for " + " | ".join(tool_results(body)))


def card_of(slack: DevSlack) -> Any:
    return next(m for m in slack.messages.values() if m.thread_ts is None)


def options_of(block: dict[str, Any]) -> list[str]:
    return [o["text"]["text"] for o in block["element"]["options"]]


async def test_agent_questions_answered_in_a_modal(db_kind: str, tmp_path: Path, model_server: FakeOpenAI) -> None:
    model_server.script(call("ask_user", questions=QUESTIONS), final)
    db = make_db(db_kind, tmp_path)
    agent = Agent(
        name="Planner",
        model=OpenAIChat(id="m", base_url=model_server.base_url, api_key="t"),
        tools=[UserFeedbackTools()],
        db=db,
    )
    wf = Workflow(name=unique("trip"), steps=[Step(name="plan", agent=agent)])
    entry = BotWorkflow(wf, name="trip", approvers=Approvers(users=("UBOSS",)))
    async with DevSlack(SECRET) as slack:
        bot, server, url = await start_bot(slack, Registry([entry], db))
        slack.bot_endpoint = url
        try:
            await slack.command("run trip plan a holiday", user="U1")
            await slack.until(lambda: any("asks you" in json.dumps(m.blocks) for m in slack.messages.values()))
            pause, _el, _bid = slack.find(ui.TOOL_ANSWER)
            shown = json.dumps(pause.blocks)
            for part in (WHERE, LIKE, "Destination", "Activities", "Beach", "Mountains", "Museums", "Sun &amp; &lt;"):
                assert part in shown, part
            assert "choose one" in shown and "choose any" in shown
            with pytest.raises(LookupError):
                slack.find(ui.TOOL_OK)  # not shown as a confirmation any more
            card = await bot.store.card_at(card_of(slack).channel, card_of(slack).ts, team="")
            assert card is not None
            run = await wf.aget_run(card.run_id)
            rid = run.step_requirements[-1].requirement_id
            asked = len(model_server.requests)

            # someone who may not answer gets a private refusal in place of the form
            await slack.click(ui.TOOL_ANSWER, user="URANDOM")
            await bot.background.idle()
            refused = slack.last_view()
            assert refused["title"]["text"] == "Not allowed" and "<@UBOSS>" in json.dumps(refused["blocks"])

            await slack.click(ui.TOOL_ANSWER, user="UBOSS")
            await bot.background.idle()
            view = slack.last_view()
            inputs = {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}
            assert [b["label"]["text"] for b in inputs.values()] == [WHERE, LIKE]
            assert inputs["q0"]["element"]["type"] == "static_select"
            assert inputs["q1"]["element"]["type"] == "checkboxes"
            assert options_of(inputs["q0"]) == ["Beach", "Mountains", "City"]
            assert options_of(inputs["q1"]) == ["Hiking", "Skiing", "Museums"]
            assert inputs["q0"]["element"]["options"][0]["description"]["text"] == "Sun & <sand>"

            # nothing chosen for the single-select question: an inline error on its block, nothing recorded
            values: dict[str, Any] = {
                "q0": {"v": {"type": "static_select", "selected_option": None}},
                "q1": {"v": {"type": "checkboxes", "selected_options": [{"value": "0"}, {"value": "2"}]}},
            }
            status, body, _ = await slack.submit(view["id"], values, user="UBOSS")
            assert status == 200 and json.loads(body) == {
                "response_action": "errors",
                "errors": {"q0": "Choose an option."},
            }
            await bot.background.idle()
            assert await bot.store.tool_decisions(rid) == {}
            assert len(model_server.requests) == asked and slack.find(ui.TOOL_ANSWER)[0].ts == pause.ts

            # an option index that is none of the options: kern's refusal, inline, on that question's block
            values["q0"]["v"]["selected_option"] = {"value": "7"}
            status, body, _ = await slack.submit(view["id"], values, user="UBOSS")
            errors = json.loads(body)["errors"]
            assert list(errors) == ["q0"] and "not among the options" in errors["q0"]

            # a valid answer from someone not allowed: refused privately, nothing recorded
            values["q0"]["v"]["selected_option"] = {"value": "0"}
            before = len(slack.ephemeral)
            status, body, _ = await slack.submit(view["id"], values, user="URANDOM")
            assert status == 200 and body == ""
            await bot.background.idle()
            assert [e["user"] for e in slack.ephemeral[before:]] == ["URANDOM"]
            assert "Only <@UBOSS>" in slack.ephemeral[-1]["text"]
            assert await bot.store.tool_decisions(rid) == {} and len(model_server.requests) == asked

            status, body, _ = await slack.submit(view["id"], values, user="UBOSS")
            assert status == 200 and body == ""
            await bot.background.idle()
            await slack.until(lambda: "Completed" in json.dumps(card_of(slack).blocks))
            answers = {WHERE: ["Beach"], LIKE: ["Hiking", "Museums"]}
            assert tool_results(model_server.requests[-1]) == [json.dumps(answers)]  # what the model received
            assert "Plan for " in json.dumps(card_of(slack).blocks) and "Museums" in json.dumps(card_of(slack).blocks)
            decided = json.dumps(slack.messages[pause.ts].blocks)
            assert "Answered by <@UBOSS>" in decided
            assert "*Destination*: Beach" in decided and "*Activities*: Hiking, Museums" in decided
            assert not any(b["type"] == "actions" for b in slack.messages[pause.ts].blocks)
            assert [c for c in slack.calls if not c[2].get("ok")] == []
        finally:
            await bot.background.idle()
            await server.cleanup()


BIG = [
    {
        "question": "Which region? " + "x" * 2500,
        "header": "Region " + "h" * 60,
        "options": [{"label": f"region {i:03d} " + "r" * 90, "description": "d" * 200} for i in range(150)],
    },
    {
        "question": "Which checks?",
        "header": "Checks",
        "multi_select": True,
        "options": [{"label": f"check {i}"} for i in range(12)],
    },
    {
        "question": "Which extras?",
        "header": "Extras",
        "multi_select": True,
        "options": [{"label": "a" * 90, "description": "<b>" * 40}, {"label": "b"}],
    },
]


async def test_big_questions_stay_within_slack_limits_and_reject_still_works(
    db_kind: str, tmp_path: Path, model_server: FakeOpenAI
) -> None:
    """Long texts, 150 options (option groups), 12 multi-select options (a multi-select menu rather than
    checkboxes): Slack (the stand-in validates like it) accepts card and form. Two questions calls in one
    pause: the first answered leaves the run waiting; rejecting the second (the existing flow) goes on."""
    model_server.script(
        calls(("ask_user", {"questions": BIG}), ("ask_user", {"questions": QUESTIONS[:1]})),
        final,
    )
    db = make_db(db_kind, tmp_path)
    agent = Agent(
        name="Planner",
        model=OpenAIChat(id="m", base_url=model_server.base_url, api_key="t"),
        tools=[UserFeedbackTools()],
        db=db,
    )
    wf = Workflow(name=unique("big-trip"), steps=[Step(name="plan", agent=agent)])
    async with DevSlack(SECRET) as slack:
        bot, server, url = await start_bot(slack, Registry([BotWorkflow(wf, name="trip")], db))
        slack.bot_endpoint = url
        try:
            await slack.command("run trip plan", user="U1")
            await slack.until(lambda: any("asks you" in json.dumps(m.blocks) for m in slack.messages.values()))
            pause = slack.find(ui.TOOL_ANSWER)[0]
            assert len(slack.find(ui.TOOL_NO)[0].blocks) == len(pause.blocks)  # both calls on one message
            await slack.click(ui.TOOL_ANSWER)
            await bot.background.idle()
            view = slack.last_view()
            inputs = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
            assert [len(g["options"]) for g in inputs["q0"]["option_groups"]] == [100, 50]
            assert inputs["q1"]["type"] == "multi_static_select" and inputs["q2"]["type"] == "checkboxes"
            values = {
                "q0": {"v": {"type": "static_select", "selected_option": {"value": "149"}}},
                "q1": {"v": {"type": "multi_static_select", "selected_options": [{"value": "11"}, {"value": "0"}]}},
                "q2": {"v": {"type": "checkboxes", "selected_options": [{"value": "1"}]}},
            }
            status, body, _ = await slack.submit(view["id"], values)
            assert status == 200 and body == ""
            await bot.background.idle()
            card = json.dumps(slack.messages[pause.ts].blocks)
            assert "Answered by <@U1>" in card and "check 11, check 0" in card  # the other call still waits
            assert "Completed" not in json.dumps(card_of(slack).blocks)

            await slack.click(ui.TOOL_NO)
            await bot.background.idle()
            await slack.submit(slack.last_view()["id"], {"text": {"v": {"type": "plain_text_input", "value": "later"}}})
            await slack.until(lambda: "Completed" in json.dumps(card_of(slack).blocks))
            results = tool_results(model_server.requests[-1])
            assert json.loads(results[0])["Which checks?"] == ["check 11", "check 0"]
            assert json.loads(results[0])[BIG[0]["question"]] == ["region 149 " + "r" * 90]
            assert "rejected" in results[1].lower() and "later" in results[1]
            assert [c for c in slack.calls if not c[2].get("ok")] == []
        finally:
            await bot.background.idle()
            await server.cleanup()
