"""kern-bot dev in headless Chromium: a person talks to the conversational agent on the page (a mention typed in
the composer) and watches its answer stream into the thread: half written (the scripted model holds it), with
the streaming cursor, then whole; a tool call shows as a task card; a tool call that needs a person pauses
inline, and approving it on the page lets the answer go on. See tests/test_dev_browser.py for the browser
set-up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.registry import BotAgent, BotWorkflow
from bot.scripted_model import user_text
from kern.agent import Agent
from kern.models.openai import OpenAIChat
from kern.tools import tool
from tests.openai_stub import FakeOpenAI, Reply, call, text, tool_results
from tests.test_dev_browser import browser_page, command, expect  # noqa: F401 - the fixture and its helpers
from tests.test_devslack_web import dev_page  # noqa: F401 - kern-bot dev's page, bot and local Slack

ANSWER = "Kern streams this answer into the thread a few words at a time, and then it is done."
HOLD = threading.Event()
_model: list[FakeOpenAI] = []


@tool
def look_up(city: str) -> str:
    """Look a city's weather up."""
    return f"sunny in {city}"


@tool(requires_confirmation=True)
def warn_city(city: str) -> str:
    """Send a weather warning to a city."""
    return f"warned {city}"


def script(body: dict[str, Any]) -> Reply:
    results = tool_results(body)
    if results:
        return text(f"It is {results[-1]}.")
    if user_text(body).startswith("weather"):
        return call("look_up", city="Osaka")
    if user_text(body).startswith("warn"):
        return call("warn_city", city="Kyoto")
    return Reply(text=ANSWER, hold_after=6, hold=HOLD)  # half written until the test lets it go on


@pytest.fixture(scope="module")
def model() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(fallback=script) as server:
        _model[:] = [server]
        yield server
        _model.clear()


def extra_workflows(db: object) -> list[BotWorkflow]:
    """The conversational agent on the scripted model (read by the dev_page fixture)."""
    if not _model:
        return []
    model = OpenAIChat(id="m", base_url=_model[0].base_url, api_key="t")
    agent = Agent(name="Talker", model=model, tools=[look_up, warn_city])
    return [BotAgent(agent, name="talker")]


async def test_a_person_watches_the_answer_stream(model: FakeOpenAI, browser_page: Any) -> None:  # noqa: F811
    tab, shots = browser_page
    channel = tab.locator("#channel")
    HOLD.clear()
    try:
        await command(tab, "@kern tell me about streaming")
        answer = channel.locator(".msg.small", has_text="Kern streams this")
        await expect(answer).to_contain_text("▍")  # still streaming: the first pieces, and the cursor
        await expect(answer).not_to_contain_text("then it is done")
        await tab.screenshot(path=str(Path(shots) / "conversation-streaming.png"))
    finally:
        HOLD.set()
    await expect(answer).to_contain_text(ANSWER)
    await expect(answer).not_to_contain_text("▍")

    await command(tab, "@kern weather please")
    card = channel.locator(".msg.small", has_text="It is sunny in Osaka.")
    await expect(card).to_contain_text("✓ look_up")  # the tool call's task card, done

    await command(tab, "@kern warn Kyoto")  # a tool call that needs a person: its card, inline
    approve = channel.get_by_role("button", name="Approve once")
    await expect(approve).to_be_visible()
    await approve.click()
    await expect(channel).to_contain_text("It is warned Kyoto.")  # approved on the page, the answer goes on
