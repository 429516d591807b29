"""Start forms end to end through the Slack stand-in: a modal generated from a workflow's pydantic
`input_schema`, inline errors for constraint violations, the typed input reaching the steps, the
picker from `/kern run` and from the global shortcut, and the rules on who may start a workflow."""

from __future__ import annotations

import datetime
import enum
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from bot import blocks as ui
from bot.devslack import DevSlack
from bot.policy import Audience
from bot.registry import BotWorkflow
from kern.workflow import Step, StepInput, Workflow
from tests.conftest import make_db
from tests.test_bot_e2e import SECRET, Env, registry_for, settle, start_bot


class Size(enum.Enum):
    small = "S"
    large = "L"


class Order(BaseModel):
    """An order form."""

    item: str = Field(description="What to order", min_length=3, max_length=40)
    quantity: int = Field(2, ge=1, le=9, description="How many")
    price: float = 1.5
    size: Size = Size.large
    speed: Literal["normal", "express"] = "normal"
    gift: bool = False
    notes: list[str] = Field(default_factory=list)
    colors: list[Size] = Field(default_factory=list)
    deliver_on: datetime.date | None = None
    ship_to: str = Field(title="Ship to address", pattern=r"^[A-Z]", alias="shipTo")


def _ordered(step_input: StepInput) -> str:
    order = step_input.input
    assert isinstance(order, Order), type(order)
    return f"ordered {order.quantity}x {order.item} size={order.size.name} gift={order.gift} notes={order.notes}"


def order_flows() -> list[BotWorkflow]:
    return [
        BotWorkflow(Workflow(name="order", description="Order things", input_schema=Order, steps=[_step()])),
        BotWorkflow(
            Workflow(name="vip", input_schema=Order, steps=[_step()]),
            starters=Audience(users=("UBOSS",)),
        ),
    ]


def _step() -> Step:
    return Step(name="order", executor=_ordered)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    db = make_db("sqlite", tmp_path)
    async with DevSlack(SECRET) as slack:
        bot, runner, endpoint = await start_bot(slack, registry_for(db, order_flows()))
        slack.bot_endpoint = endpoint
        try:
            yield Env(slack, bot, db)
        finally:
            await bot.background.idle(10)
            await runner.cleanup()


def blocks_of(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if b["type"] == "input"}


VALID = {
    "start_item": {"v": {"type": "plain_text_input", "value": "teapot"}},
    "start_quantity": {"v": {"type": "number_input", "value": "3"}},
    "start_size": {"v": {"type": "static_select", "selected_option": {"value": "0"}}},
    "start_gift": {"v": {"type": "checkboxes", "selected_options": [{"value": "true"}]}},
    "start_notes": {"v": {"type": "plain_text_input", "value": "fragile\n\nwrap it"}},
    "start_colors": {"v": {"type": "multi_static_select", "selected_options": [{"value": "1"}]}},
    "start_deliver_on": {"v": {"type": "datepicker", "selected_date": "2026-12-01"}},
    "start_ship_to": {"v": {"type": "plain_text_input", "value": "Main street 1"}},
}


async def open_form(env: Env, name: str, user: str = "U1") -> dict[str, Any]:
    status, body, took = await env.slack.command(f"run {env.bot.registry.get(name).name}", user=user)  # type: ignore[union-attr]
    assert status == 200 and took < 1.0 and body == "", (status, body)
    await settle(env)
    view = env.slack.last_view()
    assert view["callback_id"] == ui.V_START and not view.get("closed")
    return view


async def test_form_follows_the_model(env: Env) -> None:
    view = await open_form(env, "order")
    assert view["title"]["text"] == "Run order" and view["submit"]["text"] == "Start"
    assert "Order things" in json.dumps(view["blocks"][0])  # the workflow's description
    inputs = blocks_of(view)
    assert list(inputs) == [f"start_{n}" for n in Order.model_fields]
    item = inputs["start_item"]
    assert item["label"]["text"] == "Item" and item["hint"]["text"] == "What to order" and not item["optional"]
    assert item["element"]["type"] == "plain_text_input"
    assert (item["element"]["min_length"], item["element"]["max_length"]) == (3, 40)
    quantity = inputs["start_quantity"]["element"]
    assert quantity == {
        "action_id": "v",
        "type": "number_input",
        "is_decimal_allowed": False,
        "min_value": "1",
        "max_value": "9",
        "initial_value": "2",
    }
    assert inputs["start_price"]["element"]["is_decimal_allowed"] is True
    size = inputs["start_size"]["element"]
    assert size["type"] == "static_select" and [o["text"]["text"] for o in size["options"]] == ["S", "L"]
    assert size["initial_option"]["text"]["text"] == "L"
    assert inputs["start_speed"]["element"]["initial_option"]["text"]["text"] == "normal"
    gift = inputs["start_gift"]
    assert gift["element"]["type"] == "checkboxes" and gift["element"]["options"][0]["text"]["text"] == "Yes"
    assert "initial_options" not in gift["element"]
    assert inputs["start_notes"]["element"]["multiline"] and "one per line" in inputs["start_notes"]["hint"]["text"]
    assert inputs["start_colors"]["element"]["type"] == "multi_static_select"
    assert inputs["start_deliver_on"]["element"]["type"] == "datepicker" and inputs["start_deliver_on"]["optional"]
    assert inputs["start_ship_to"]["label"]["text"] == "Ship to address"  # the field's title
    assert env.slack.rejected == []


async def test_constraint_violations_are_shown_inline(env: Env) -> None:
    view = await open_form(env, "order")
    bad = {
        **VALID,
        "start_item": {"v": {"type": "plain_text_input", "value": "ab"}},
        "start_quantity": {"v": {"type": "number_input", "value": "12"}},
        "start_ship_to": {"v": {"type": "plain_text_input", "value": "   "}},
        "start_deliver_on": {"v": {"type": "datepicker", "selected_date": "2026-13-45"}},
    }
    status, body, _ = await env.slack.submit(view["id"], bad)
    errors = json.loads(body)["errors"]
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    assert set(errors) == {"start_item", "start_quantity", "start_ship_to", "start_deliver_on"}
    assert "at least 3 characters" in errors["start_item"]
    assert "less than or equal to 9" in errors["start_quantity"]
    assert errors["start_ship_to"] == "This field is required."  # blank is not an answer
    status, body, _ = await env.slack.submit(view["id"], {**VALID, "start_ship_to": {"v": {"value": "lower"}}})
    assert "should match pattern" in json.loads(body)["errors"]["start_ship_to"]
    assert not env.slack.views[view["id"]].get("closed")
    assert [m for m in env.slack.messages.values()] == []  # nothing started
    assert env.slack.rejected == []  # every error was keyed to an input block


async def test_valid_submit_starts_the_run_with_typed_input(env: Env) -> None:
    view = await open_form(env, "order")
    status, body, took = await env.slack.submit(view["id"], VALID)
    assert status == 200 and body == "" and took < 1.0
    assert env.slack.views[view["id"]]["closed"]
    await settle(env)
    await env.slack.until(lambda: "Completed" in env.card_text())
    card = env.card()
    assert card.channel == "C1"  # where the command was typed
    assert "ordered 3x teapot size=small gift=True notes=['fragile', 'wrap it']" in env.card_text()
    shown = json.dumps(card.blocks[1])  # the input, as the card shows it: a line per field
    for line in ("Item: teapot", "Quantity: 3", "Size: S", "Gift: yes", "Notes: fragile, wrap it", "Colors: L"):
        assert line in shown, shown
    stored = await env.bot.store.card_at(card.channel, card.ts, team="")
    assert stored is not None and stored.started_by == "U1"
    assert env.errors() == []


async def test_typed_command_input_is_validated_by_the_model(env: Env) -> None:
    name = env.bot.registry.get("order").name  # type: ignore[union-attr]
    _, body, _ = await env.slack.command(f'run {name} {{"item": "x"}}')
    assert "does not fit" in body and "*Item*" in body and "*Ship to*" in body and "without input for a form" in body
    _, body, _ = await env.slack.command(f"run {name} not json")  # how to give it: the form, or the JSON shape
    assert "takes a form" in body and "without input" in body and "give its input as JSON" in body
    await settle(env)
    assert env.slack.messages == {}
    _, body, _ = await env.slack.command(f'run {name} {{"item": "kettle", "shipTo": "Home"}}')
    assert "Starting" in body
    await settle(env)
    await env.slack.until(lambda: "Completed" in env.card_text())
    assert "ordered 2x kettle size=large" in env.card_text()


async def test_unauthorized_user_gets_no_form_and_cannot_submit_one(env: Env) -> None:
    vip = env.bot.registry.get("vip").name  # type: ignore[union-attr]
    views_before = len(env.slack.views)
    _, body, _ = await env.slack.command(f"run {vip}", user="U1")
    assert "may start" in body
    await settle(env)
    assert len(env.slack.views) == views_before
    view = await open_form(env, "vip", user="UBOSS")
    status, body, _ = await env.slack.submit(view["id"], VALID, user="U1")  # someone else's submission
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "push"  # the refusal names people: mrkdwn, over the form
    assert "may start" in answer["view"]["blocks"][0]["text"]["text"]
    await settle(env)
    assert env.slack.messages == {}
    await env.slack.submit(view["id"], VALID, user="UBOSS")
    await settle(env)
    await env.slack.until(lambda: "Completed" in env.card_text())


async def test_picker_from_the_command(env: Env) -> None:
    status, body, _ = await env.slack.command("run", user="U1", channel="C7")
    assert status == 200 and body == ""
    await settle(env)
    picker = env.slack.last_view()
    assert picker["callback_id"] == ui.V_START_PICK and picker["submit"]["text"] == "Next"
    inputs = blocks_of(picker)
    assert list(inputs) == [ui.WORKFLOW_BLOCK]  # the channel is the command's
    offered = [o["value"] for o in inputs[ui.WORKFLOW_BLOCK]["element"]["options"]]
    names = {e.workflow.name: n for n, e in env.bot.registry.entries.items()}
    assert env.bot.registry.get("order").name in offered  # type: ignore[union-attr]
    assert env.bot.registry.get("vip").name not in offered  # type: ignore[union-attr]  # U1 may not start it
    assert len(offered) == len(names) - 1
    # a workflow without a schema: one text input
    deploy = env.bot.registry.get("deploy").name  # type: ignore[union-attr]
    pick = {ui.WORKFLOW_BLOCK: {"v": {"type": "static_select", "selected_option": {"value": deploy}}}}
    status, body, _ = await env.slack.submit(picker["id"], pick)
    assert json.loads(body)["response_action"] == "update"
    form = env.slack.views[picker["id"]]
    assert form["callback_id"] == ui.V_START and list(blocks_of(form)) == ["start_input"]
    assert blocks_of(form)["start_input"]["element"]["type"] == "plain_text_input"
    await env.slack.submit(form["id"], {"start_input": {"v": {"type": "plain_text_input", "value": " api "}}})
    await settle(env)
    shown = lambda: json.dumps([m.blocks for m in env.slack.messages.values()])  # noqa: E731
    await env.slack.until(lambda: "Deploy to production?" in shown())
    assert env.card().channel == "C7" and "api" in env.card_text()
    assert env.slack.rejected == []


async def test_shortcut_picker_asks_for_the_channel(env: Env) -> None:
    status, _, took = await env.slack.shortcut(ui.RUN_SHORTCUT, user="U2")
    assert status == 200 and took < 1.0
    await settle(env)
    picker = env.slack.last_view()
    inputs = blocks_of(picker)
    assert list(inputs) == [ui.WORKFLOW_BLOCK, ui.CHANNEL_BLOCK]
    assert inputs[ui.CHANNEL_BLOCK]["element"]["type"] == "conversations_select"
    order = env.bot.registry.get("order").name  # type: ignore[union-attr]
    pick = {ui.WORKFLOW_BLOCK: {"v": {"type": "static_select", "selected_option": {"value": order}}}}
    _, body, _ = await env.slack.submit(picker["id"], pick)
    assert json.loads(body)["errors"] == {ui.CHANNEL_BLOCK: "Choose a channel."}
    pick[ui.CHANNEL_BLOCK] = {"v": {"type": "conversations_select", "selected_conversation": "C5"}}
    env.slack.members["C5"] = ["U2"]  # a channel they are in (tests/test_bot_access.py: one they are not)
    await env.slack.submit(picker["id"], pick, user="U2")
    form = env.slack.views[picker["id"]]
    assert form["callback_id"] == ui.V_START and "start_item" in blocks_of(form)
    await env.slack.submit(form["id"], VALID, user="U2")
    await settle(env)
    await env.slack.until(lambda: "Completed" in env.card_text())
    assert env.card().channel == "C5" and "ordered 3x teapot" in env.card_text()
    assert env.slack.rejected == []


async def test_shortcut_is_signed_and_needs_a_fresh_trigger(env: Env) -> None:
    status, _, _ = await env.slack.send(
        DevSlack.interaction_body({"type": "shortcut", "callback_id": ui.RUN_SHORTCUT}),
        "application/x-www-form-urlencoded",
        signature="v0=forged",
    )
    assert status == 401
    env.slack.trigger_ttl = 0.0  # the trigger expires before the bot opens the picker
    await env.slack.shortcut(ui.RUN_SHORTCUT)
    await settle(env)
    assert env.slack.views == {}
    assert any(r["error"] == "expired_trigger_id" for r in env.slack.rejected)


def test_both_manifests_declare_the_shortcut() -> None:
    root = Path(__file__).parent.parent / "manifests"
    shortcuts = json.loads((root / "http.json").read_text())["features"]["shortcuts"]
    assert [(s["type"], s["callback_id"]) for s in shortcuts] == [("global", ui.RUN_SHORTCUT)]
    assert all(len(s["name"]) <= 24 and s["description"] for s in shortcuts)
    socket = (root / "socket-mode.yaml").read_text()  # no YAML parser installed: the same lines
    assert "  shortcuts:\n    - name: Run a workflow\n      type: global\n" in socket
    assert f"      callback_id: {ui.RUN_SHORTCUT}\n" in socket


async def test_a_form_for_a_workflow_no_longer_offered(env: Env) -> None:
    view = await open_form(env, "order")
    env.bot.registry.entries.pop("order")  # the bot was redeployed without it while the form was open
    status, body, _ = await env.slack.submit(view["id"], VALID)
    assert status == 200 and json.loads(body)["errors"] == {"start_item": "This workflow is no longer offered."}
    assert env.slack.rejected == []  # keyed to an input block the form has
