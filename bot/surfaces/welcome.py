"""The intro the bot posts when it is added to a channel, so a new channel is not empty: what it does,
its commands and its workflows (`member_joined_channel` for the bot's own user)."""

from __future__ import annotations

from typing import Any

from bot import blocks as ui
from bot.registry import Registry
from bot.runs.background import Background
from bot.slack.gateway import SlackGateway


class Welcome:
    def __init__(self, registry: Registry, gateway: SlackGateway, background: Background, command: str) -> None:
        self.registry = registry
        self.gateway = gateway
        self.background = background
        self.command = command

    async def on_member_joined(self, event: dict[str, Any], context: Any) -> None:
        """Slack sends this for anyone joining a channel the bot is in; only the bot's own joining counts."""
        if not event.get("channel") or event.get("user") != context.get("bot_user_id"):
            return
        self.background.spawn(self.introduce(event["channel"]))

    async def introduce(self, channel: str) -> None:
        workflows = [(e.name, e.description) for e in self.registry.entries.values()]
        text, blocks = ui.intro_blocks(self.command, workflows)
        await self.gateway.call("chat_postMessage", channel=channel, text=text, blocks=blocks)
