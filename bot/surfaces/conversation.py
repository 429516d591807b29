"""Conversations: a person mentions the bot in a channel (`app_mention`, answered in the mention's thread) or
writes to it in its DM (`message.im`, answered in the message's thread), and the registry's conversational
entry (`bot.registry.BotAgent`) answers. Every message of one thread is a turn of one kern session (team,
channel, thread ts), so a follow-up (a reply in the thread that mentions the bot; any message in a DM thread)
sees the turns before it. A turn is a run: its answer and its pauses are owed through the outbox.

Messages from bots, the bot's own, edits and other subtypes are ignored (a person's message sharing files,
subtype `file_share`, is a turn: its files reach the agent, see `shared_files`); the bot's own mention is taken
out of the text. Who may start a turn is the entry's `starters` (`Access.may_start`): anyone else is told
privately. A repeated delivery of an event (a replay, Slack's `X-Slack-Retry-Num`) starts nothing twice:
the turn is spawned under the request's gate (bot/slack/dedupe.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from bot.approvals.access import Access
from bot.registry import BotWorkflow
from bot.runs.background import Background
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway
from bot.slack.workspaces import team
from bot.surfaces.shared_files import SharedFiles, skipped_text, take_files

log = logging.getLogger("kern_bot")

EMPTY = "Ask me something: mention me with your question, and I answer in the thread."


def session_for(team_id: str, channel: str, thread_ts: str) -> str:
    """The kern session of a Slack thread: every turn in it continues this session."""
    return f"slack:{team_id or '-'}:{channel}:{thread_ts}"


def without_mention(text: str, bot_user: str | None) -> str:
    """`text` without the bot's own mention (`<@UBOT>` or `<@UBOT|name>`); other mentions stay."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(\|[^>]*)?>", " ", text)
    return " ".join(text.split())


# Message subtypes that are a person's message all the same: one sharing files.
PERSON_SUBTYPES = frozenset({"file_share"})


def is_from_bot(event: dict[str, Any], bot_user: str | None) -> bool:
    """A message a person did not write: another app's, the bot's own, an edit, a join."""
    subtype = event.get("subtype")
    return bool(
        (subtype and subtype not in PERSON_SUBTYPES)
        or event.get("bot_id")
        or not event.get("user")
        or event.get("user") == bot_user
    )


class Conversations:
    """Starts a turn of the conversational entry for a mention or a DM."""

    def __init__(
        self, entry: BotWorkflow, runner: Runner, gateway: SlackGateway, background: Background, access: Access
    ):
        self.entry = entry
        self.runner = runner
        self.gateway = gateway
        self.background = background
        self.access = access

    def take(self, event: dict[str, Any], context: Any) -> None:
        """Answer `event` (a mention, or a message in the bot's DM) in its thread, in the background."""
        bot_user = context.get("bot_user_id")
        if is_from_bot(event, bot_user) or not event.get("channel") or not event.get("ts"):
            return
        text = without_mention(event.get("text") or "", bot_user)
        thread = event.get("thread_ts") or event["ts"]
        files = [f for f in event.get("files") or [] if isinstance(f, dict)]
        self.background.spawn(self.turn(text, event["user"], event["channel"], thread, files))

    async def turn(
        self, text: str, user: str, channel: str, thread: str, files: list[dict[str, Any]] | None = None
    ) -> None:
        if not text and not files:
            await self.gateway.tell(channel, user, EMPTY, thread)
            return
        refused = await self.access.may_start(self.entry, user, channel)
        if refused is not None:
            await self.gateway.tell(channel, user, refused, thread)
            return
        shared = await take_files(self.gateway, files, self.entry.max_file_size) if files else SharedFiles()
        notice = skipped_text(shared.skipped) if shared.skipped else None
        if notice and not text and not shared.media:  # nothing left to answer: no turn, only the reason
            await self.gateway.tell(channel, user, notice, thread)
            return
        session = session_for(team(), channel, thread)
        await self.runner.converse(self.entry, text, user, channel, thread, session, media=shared.media, notice=notice)
