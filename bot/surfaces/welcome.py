"""The intro the bot posts when it is added to a channel, so a new channel is not empty: what it does,
its commands and its workflows (`member_joined_channel` for the bot's own user); and the hint it gives,
privately, to a message that reads like a command typed without its slash or that is written to it (a
mention, `app_mention`; its DM), from the `message` events (`message.channels`, `message.groups`,
`message.im`). Other messages in a channel are people talking: the bot stays out of them."""

from __future__ import annotations

import re
from typing import Any

from bot import blocks as ui
from bot.registry import Registry
from bot.runs.background import Background
from bot.slack.gateway import SlackGateway
from bot.surfaces.conversation import PERSON_SUBTYPES, Conversations

MENTION = re.compile(r"<@[UW][A-Z0-9]+(\|[^>]*)?>")


class Welcome:
    def __init__(
        self,
        registry: Registry,
        gateway: SlackGateway,
        background: Background,
        command: str,
        conversations: Conversations | None = None,
    ) -> None:
        self.registry = registry
        self.conversations = conversations  # when an entry converses, it answers mentions and DMs
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

    async def on_message(self, event: dict[str, Any], context: Any) -> None:
        """A message in a channel the bot is in, or in its DM (Slack sends every one: the bot picks)."""
        if self.conversations is not None and self.conversations.wants(event):
            # every message in its DM is a turn (no app_mention there); in channels too, when not only mentions
            self.conversations.take(event, context)
            return
        if (event.get("subtype") not in (None, *PERSON_SUBTYPES)) or event.get("bot_id") or not event.get("user"):
            return  # edits, joins, other apps' and the bot's own messages
        bot = context.get("bot_user_id")
        if bot and f"<@{bot}>" in (event.get("text") or ""):
            return  # a mention: answered once, by on_mention
        self._hint(event, addressed=event.get("channel_type") == "im")

    async def on_mention(self, event: dict[str, Any], context: Any) -> None:
        """A message that mentions the bot (`app_mention`)."""
        if self.conversations is not None:
            # a DM's message is taken from message.im; so is every channel message when not only mentions count
            if not str(event.get("channel") or "").startswith("D") and not self.conversations.wants(event):
                self.conversations.take(event, context)
            return
        self._hint(event, addressed=True)

    def _hint(self, event: dict[str, Any], *, addressed: bool) -> None:
        if not event.get("channel") or not event.get("user"):
            return
        text = MENTION.sub(" ", event.get("text") or "").strip()
        hint = ui.hint_text(self.command, text, list(self.registry.entries), addressed=addressed)
        if hint is not None:
            thread = event.get("thread_ts")
            self.background.spawn(self.gateway.tell(event["channel"], event["user"], hint, thread))
