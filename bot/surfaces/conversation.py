"""Conversations: a person mentions the bot in a channel (`app_mention`, answered in the mention's thread) or
writes to it in its DM (`message.im`, answered in the message's thread), and the registry's conversational
entry (`bot.registry.BotAgent`) answers. Every message of one thread is a turn of one kern session (team,
channel, thread ts), so a follow-up (a reply in the thread that mentions the bot; any message in a DM thread)
sees the turns before it. A turn is a run: its answer and its pauses are owed through the outbox.

Messages from other apps are ignored unless the entry's `respond_to_other_apps` says otherwise; the bot's
own, edits and other subtypes always are (a person's message sharing files, subtype `file_share`, is a
turn: its files reach the agent, see `shared_files`); the bot's own mention (`<@UBOT>`, `<@UBOT|name>`) is taken out of
the text. With `resolve_user_identity` the person is looked up (bot/slack/identity.py): their email is the
run's `user_id`, and their name and the channel are given to the agent with their words
(bot/surfaces/turn_context.py). An assistant thread's turn (bot/surfaces/assistant.py) comes through `turn`
too, with the channel the person is looking at and its `Progress` (status, title). Who may start a turn is
the entry's `starters` (`Access.may_start`): anyone else is told privately. A repeated delivery of an event
(a replay, Slack's `X-Slack-Retry-Num`) starts nothing twice: the turn is spawned under the request's gate
(bot/slack/dedupe.py).
"""

from __future__ import annotations

import logging
import re
from typing import Any, Protocol

from bot.approvals.access import Access
from bot.registry import BotWorkflow
from bot.runs.background import Background
from bot.runs.runner import Runner
from bot.slack.gateway import SlackGateway
from bot.slack.identity import People
from bot.slack.workspaces import team
from bot.surfaces.shared_files import SharedFiles, skipped_text, take_files
from bot.surfaces.turn_context import facts, with_context

log = logging.getLogger("kern_bot")

EMPTY = "Ask me something: mention me with your question, and I answer in the thread."


def session_for(team_id: str, channel: str, thread_ts: str) -> str:
    """The kern session of a Slack thread: every turn in it continues this session."""
    return f"slack:{team_id or '-'}:{channel}:{thread_ts}"


def without_mention(text: str, bot_user: str | None) -> str:
    """`text` without the bot's own mention (`<@UBOT>` or `<@UBOT|name>`); other mentions and the lines stay
    (spaces are collapsed within each line)."""
    if bot_user:
        text = re.sub(rf"<@{re.escape(bot_user)}(\|[^>]*)?>", " ", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines()).strip()


# Message subtypes that are a person's message all the same: one sharing files.
PERSON_SUBTYPES = frozenset({"file_share"})


def author(event: dict[str, Any]) -> str:
    """Who wrote a message: the person, or for an app's message without one, the app's bot id."""
    return str(event.get("user") or event.get("bot_id") or "")


class Progress(Protocol):
    """What a surface shows while a turn works (an assistant thread's status and title)."""

    async def started(self, text: str) -> None: ...

    async def failed(self) -> None:
        """The turn stopped with nothing posted: take back what `started` showed."""


class Conversations:
    """Starts a turn of the conversational entry for a mention, a DM or a message in an assistant thread."""

    def __init__(
        self,
        entry: BotWorkflow,
        runner: Runner,
        gateway: SlackGateway,
        background: Background,
        access: Access,
        people: People | None = None,
    ):
        self.entry = entry
        self.runner = runner
        self.gateway = gateway
        self.background = background
        self.access = access
        self.people = people or People(gateway)

    def accepts(self, event: dict[str, Any], context: Any) -> bool:
        """True for a message that may start a turn: a person's, or another app's when the entry answers
        apps (`respond_to_other_apps`); never the bot's own, an edit, a join or another subtype (but a person's
        sharing files, PERSON_SUBTYPES)."""
        subtypes = (None, "bot_message", *PERSON_SUBTYPES)
        if event.get("subtype") not in subtypes or not event.get("channel") or not event.get("ts"):
            return False
        bot_user, bot_id = context.get("bot_user_id"), context.get("bot_id")
        if (bot_user and event.get("user") == bot_user) or (bot_id and event.get("bot_id") == bot_id):
            return False
        if event.get("bot_id") or event.get("subtype") == "bot_message":
            return self.entry.respond_to_other_apps and bool(author(event))
        return bool(event.get("user"))

    def wants(self, event: dict[str, Any]) -> bool:
        """True for a `message` event this entry answers as such: one in its DM, or with
        `reply_to_mentions_only=False` one in any channel (a mention there is then answered from it, not
        from `app_mention`)."""
        return event.get("channel_type") == "im" or not self.entry.reply_to_mentions_only

    def take(self, event: dict[str, Any], context: Any) -> None:
        """Answer `event` (a mention, or a message in the bot's DM) in its thread, in the background."""
        if not self.accepts(event, context):
            return
        text = without_mention(event.get("text") or "", context.get("bot_user_id"))
        thread = event.get("thread_ts") or event["ts"]
        files = [f for f in event.get("files") or [] if isinstance(f, dict)]
        self.background.spawn(self.turn(text, author(event), event["channel"], thread, files=files))

    async def turn(
        self,
        text: str,
        user: str,
        channel: str,
        thread: str,
        *,
        viewing: str | None = None,
        progress: Progress | None = None,
        files: list[dict[str, Any]] | None = None,
    ) -> None:
        """One turn of `user` saying `text` in `thread`: refused privately if they may not start one, else
        run (`viewing`: the channel they look at, given to the agent; `progress`: shown meanwhile; `files`:
        the Slack files shared with the message, given to the agent as `kern.media` where they can be)."""
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
        person = await self.people.resolve(user) if self.entry.resolve_user_identity else None
        prompt = with_context(text, facts(person, channel, viewing))
        if progress is not None:
            await progress.started(text)
        try:
            await self.runner.converse(
                self.entry,
                text,
                user,
                channel,
                thread,
                session_for(team(), channel, thread),
                user_id=person.user_id if person is not None else None,
                prompt=prompt,
                media=shared.media,
                notice=notice,
            )
        except Exception:
            if progress is not None:
                await progress.failed()
            raise
