"""Slack's assistant pane for the conversational entry (`BotAgent`), through Bolt's `AsyncAssistant`.

- `assistant_thread_started`: the thread is recorded (bot/store/assistant_threads.py) with the channel the
  person is looking at, greeted, and given the entry's suggested prompts.
- `assistant_thread_context_changed`: the person looks at another channel; the thread's next turns say so.
- a person's message in an assistant thread: a turn of the entry through `Conversations.turn`, the same
  path as mentions and DMs (its rules, its session: the thread), with the thread's status set to the
  entry's `loading_text` while it works (Slack clears it when the answer, or a pause, is posted; it is
  cleared here if the turn stops with nothing posted) and, on its first message, the thread's title.

Bolt's AsyncAssistant takes every threaded DM message a person writes, so no such message also reaches
the `message` listener (no second answer); one in a DM thread the bot has no record of (not an assistant
thread) is an ordinary DM turn, with no status or title. Greeting, prompts, status and title are shown
best effort (`SlackGateway.call`): a lost one costs a cue, never an answer. Like every listener's work, each
runs only for an event's first delivery (bot/slack/dedupe.py).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAssistant

from bot import blocks as ui
from bot.registry import DEFAULT_PROMPTS
from bot.runs.background import Background
from bot.slack.gateway import SlackGateway
from bot.slack.workspaces import team
from bot.store.assistant_threads import AssistantThread, AssistantThreads
from bot.surfaces.conversation import Conversations, without_mention

TITLE_LIMIT = 60  # characters of the first message that title a thread


def title_of(text: str) -> str:
    """A thread's title from its first message: its first line, clipped."""
    line = (text.strip().splitlines() or [""])[0].strip()
    return line if len(line) <= TITLE_LIMIT else line[: TITLE_LIMIT - 1].rstrip() + "…"


class AssistantPane:
    """The listeners of the assistant pane (`bolt()` gives them to Bolt)."""

    def __init__(
        self, conversations: Conversations, threads: AssistantThreads, gateway: SlackGateway, background: Background
    ) -> None:
        self.conversations = conversations
        self.entry = conversations.entry
        self.threads = threads
        self.gateway = gateway
        self.background = background

    def bolt(self) -> AsyncAssistant:
        """The `AsyncAssistant` to register with `app.assistant(...)` (after the request gate)."""
        assistant = AsyncAssistant()
        assistant.thread_started(self.on_started)
        assistant.thread_context_changed(self.on_context_changed)
        assistant.user_message(self.on_user_message)
        return assistant

    async def on_started(self, event: dict[str, Any]) -> None:
        thread = _thread(event)
        if thread is not None:
            self.background.spawn(self.open(*thread))

    async def on_context_changed(self, event: dict[str, Any]) -> None:
        thread = _thread(event)
        if thread is not None:
            channel, ts, user, viewing = thread
            self.background.spawn(self.threads.viewing(team(), channel, ts, user, viewing))

    async def on_user_message(self, event: dict[str, Any], context: Any) -> None:
        if self.conversations.accepts(event, context) and event.get("thread_ts"):
            text = without_mention(event.get("text") or "", context.get("bot_user_id"))
            self.background.spawn(self.message(text, event["user"], event["channel"], event["thread_ts"]))

    async def open(self, channel: str, thread_ts: str, user: str, viewing: str | None) -> None:
        """A thread just opened: recorded, greeted, offered the prompts."""
        if not await self.threads.started(team(), channel, thread_ts, user, viewing):
            return  # known already: greeted then
        name = ui.escape(self.entry.name)
        about = f" {ui.escape(self.entry.description)}" if self.entry.description else ""
        greeting = f"Hi <@{user}>, I'm {name}.{about} Ask me anything, or pick a suggestion."
        await self.gateway.call("chat_postMessage", channel=channel, thread_ts=thread_ts, text=greeting)
        prompts = self.entry.suggested_prompts or DEFAULT_PROMPTS
        await self.gateway.call(
            "assistant_threads_setSuggestedPrompts", channel_id=channel, thread_ts=thread_ts, prompts=prompts
        )

    async def message(self, text: str, user: str, channel: str, thread_ts: str) -> None:
        """A person's message in a DM thread: a turn, shown as working when it is an assistant thread."""
        known = await self.threads.get(team(), channel, thread_ts)
        if known is None:
            await self.conversations.turn(text, user, channel, thread_ts)
            return
        progress = Working(self, known)
        await self.conversations.turn(text, user, channel, thread_ts, viewing=known.viewing, progress=progress)


class Working:
    """An assistant thread's cues while a turn works: the status (`loading_text`), and the title once."""

    def __init__(self, pane: AssistantPane, thread: AssistantThread) -> None:
        self.pane = pane
        self.where = {"channel_id": thread.channel, "thread_ts": thread.thread_ts}
        self.thread = thread

    async def started(self, text: str) -> None:
        gateway = self.pane.gateway
        await gateway.call("assistant_threads_setStatus", **self.where, status=self.pane.entry.loading_text)
        if not self.thread.titled and await self.pane.threads.claim_title(team(), **_key(self.thread)):
            await gateway.call("assistant_threads_setTitle", **self.where, title=title_of(text))

    async def failed(self) -> None:
        await self.pane.gateway.call("assistant_threads_setStatus", **self.where, status="")


def _key(thread: AssistantThread) -> dict[str, str]:
    return {"channel": thread.channel, "thread_ts": thread.thread_ts}


def _thread(event: dict[str, Any]) -> tuple[str, str, str, str | None] | None:
    """(channel, thread ts, user, channel in view) of an assistant_thread_* event, None if malformed."""
    thread = event.get("assistant_thread")
    if not isinstance(thread, dict):
        return None
    channel, ts, user = thread.get("channel_id"), thread.get("thread_ts"), thread.get("user_id")
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str) and channel and ts and user):
        return None
    context = thread.get("context")
    viewing = context.get("channel_id") if isinstance(context, dict) else None
    return channel, ts, user, viewing if isinstance(viewing, str) and viewing else None
