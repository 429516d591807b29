"""The dev page's emoji: every shortcode kern-bot writes is rendered (the page maps them; the browser
test sees them drawn), served by the page's own route."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from bot.devslack.emoji import EMOJI
from bot.devslack.web import DevSlackWeb

BOT = Path(__file__).resolve().parent.parent / "bot"


def test_every_shortcode_the_bot_writes_is_mapped() -> None:
    used: set[str] = set()
    for source in BOT.rglob("*.py"):
        if "devslack" in source.parts:
            continue
        for string in re.findall(r'"[^"\n]*"', source.read_text()):  # shortcodes inside string literals
            used |= set(re.findall(r"(?<![\w:]):([a-z0-9_+]+[a-z0-9_+-]*):(?![\w:])", string))
    used -= {"tool_ok", "tool_no", "tool_input", "tool_result", "tool_answer"}  # action ids, not emoji
    assert used, "no shortcodes found: the scan is broken"
    assert {"pencil2", "raised_hand", "white_check_mark"} <= used | set(EMOJI)
    assert sorted(used - set(EMOJI)) == []


async def test_the_page_serves_the_map() -> None:
    async with DevSlackWeb("s") as slack, aiohttp.ClientSession() as http:
        async with http.get(slack.base_url + "ui/emoji") as resp:
            served = await resp.json()
        async with http.get(slack.base_url) as resp:
            page = await resp.text()
        async with http.get(slack.base_url + "ui/page.js") as resp:
            script = await resp.text()
            assert resp.content_type == "application/javascript"
        async with http.get(slack.base_url + "ui/web.js") as resp:
            assert resp.status == 404  # only the page's own scripts
    assert served["pencil2"] == "✏️" and served["raised_hand"] == "✋" and "not_an_emoji" not in served
    assert '<script src="/ui/page.js">' in page and "Noto Color Emoji" in page and "/ui/emoji" in script


async def test_views_push_is_checked_as_slack_checks_it() -> None:
    from bot import blocks as ui
    from bot.slack.app import make_client
    from bot.slack.gateway import SlackCallFailed, SlackGateway

    async with DevSlackWeb("s") as slack:
        gateway = SlackGateway(make_client(slack.token, slack.api_url))

        async def push(trigger: str, view: dict) -> str:
            try:
                await gateway.send("views_push", trigger_id=trigger, view=view)
            except SlackCallFailed as exc:
                return exc.error
            return "ok"

        info = ui.info_modal("Hello", "text")
        async with gateway.pooled():
            assert await push(slack._trigger("U1"), info) == "not_found"  # nothing open to push onto
            await gateway.send("views_open", trigger_id=slack._trigger("U1"), view=info)
            assert [await push(slack._trigger("U1"), info) for _ in range(3)] == ["ok", "ok", "push_limit_reached"]
            assert await push("trig-unknown", info) == "expired_trigger_id"
            slack.close_view(slack.last_view()["id"])
            bad = {**info, "title": {"type": "plain_text", "text": "x" * 25}}
            assert await push(slack._trigger("U1"), bad) == "invalid_blocks"
            assert await push(slack._trigger("U1"), info) == "ok"
