"""The stand-in's assistant pane: a person opens an assistant thread (`assistant_thread_started`), looks at
another channel meanwhile (`assistant_thread_context_changed`) and writes in the thread (a `message` event in
the app's DM, in the thread), and the Web API methods an app answers with, `assistant.threads.setStatus`,
`assistant.threads.setSuggestedPrompts` and `assistant.threads.setTitle`, validated as their method pages
on docs.slack.dev say (required arguments; at most 4 prompts, each a title and a message; at most 10
loading messages; `channel_not_found`, `invalid_thread_ts`).

A status shows until the app posts in the thread (as Slack clears it then), until it is set to "", or for at
most two minutes (`STATUS_LASTS`).

A mixin of `DevSlack` (bot/devslack/slack.py), which dispatches `/api/<method>` to `_<method>`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from bot.devslack.messages import Message
from bot.devslack.people import dm_id

MAX_PROMPTS = 4  # "up to four suggested prompts" (assistant.threads.setSuggestedPrompts)
MAX_LOADING = 10  # "Maximum of 10 messages" (assistant.threads.setStatus, loading_messages)
STATUS_LASTS = 120.0  # "A two minute timeout applies" (assistant.threads.setStatus, status)


@dataclass
class PaneThread:
    """An assistant thread as Slack keeps it: its root message `ts` in the DM `channel` of `user`."""

    channel: str
    ts: str
    user: str
    viewing: str | None = None  # the channel the person is looking at (the thread's context)
    title: str = ""
    status: str = ""
    status_at: float = 0.0  # time.perf_counter() when the status was set
    loading_messages: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)  # every status set, in order ("" clears)
    prompts: list[dict[str, str]] = field(default_factory=list)
    prompts_title: str | None = None


def _bad(message: str) -> dict[str, Any]:
    return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [message]}}


class AssistantApi:
    """Uses DevSlack's `messages`, `dms`, `team_id`, `dm_channel_ok` and `say_in`."""

    messages: dict[str, Any]
    dms: dict[str, str]
    team_id: str
    dm_channel_ok: Any
    say_in: Any
    event: Any
    changed: Any
    _ts: Any
    _epoch: int

    @property
    def assistant_threads(self) -> dict[str, PaneThread]:
        """Every assistant thread, by its root message's ts."""
        threads: dict[str, PaneThread] = self.__dict__.setdefault("_assistant_threads", {})
        return threads

    def assistant_status(self, thread_ts: str) -> str:
        """The status shown in the thread now ("" for none): what was set last, unless the app has posted in
        the thread since, or it was set more than STATUS_LASTS seconds ago."""
        thread = self.assistant_threads[thread_ts]
        if not thread.status or time.perf_counter() - thread.status_at > STATUS_LASTS:
            return ""
        replied = any(
            m.thread_ts == thread_ts and not m.user and m.posted_at > thread.status_at for m in self.messages.values()
        )
        return "" if replied else thread.status

    # ----- the person ------------------------------------------------------------------------------
    def pane_event(self, kind: str, thread: PaneThread) -> dict[str, Any]:
        """An `assistant_thread_started` or `assistant_thread_context_changed` event (`kind`), as
        https://docs.slack.dev/reference/events/assistant_thread_started shows it."""
        context: dict[str, Any] = {"team_id": self.team_id, "enterprise_id": None}
        if thread.viewing:
            context["channel_id"] = thread.viewing
        return {
            "type": kind,
            "assistant_thread": {
                "user_id": thread.user,
                "context": context,
                "channel_id": thread.channel,
                "thread_ts": thread.ts,
            },
        }

    def start_pane_thread(self, user: str, viewing: str | None = None) -> PaneThread:
        """`user` opens the assistant pane while looking at channel `viewing`: its DM with the app gets the
        thread's root message (subtype `assistant_app_thread`, written as theirs). Returns the thread; its
        event is `pane_event("assistant_thread_started", thread)`."""
        channel = self.dms.setdefault(user, dm_id(user))
        ts = f"{self._epoch + next(self._ts)}.000100"
        self.messages[ts] = Message(channel, ts, "New chat", [], None, team=self.team_id, user=user)
        thread = self.assistant_threads[ts] = PaneThread(channel, ts, user, viewing)
        self.changed()
        return thread

    async def open_assistant(self, user: str, viewing: str | None = None) -> str:
        """`start_pane_thread`, its event sent to the bot (acked with 200); returns the thread's ts."""
        thread = self.start_pane_thread(user, viewing)
        status, body, _took = await self.event(self.pane_event("assistant_thread_started", thread))
        assert status == 200, (status, body)
        return thread.ts

    async def look_at(self, thread_ts: str, viewing: str) -> None:
        """The person of the thread opens channel `viewing` with the pane open: the context-changed event."""
        thread = self.assistant_threads[thread_ts]
        thread.viewing = viewing
        status, body, _took = await self.event(self.pane_event("assistant_thread_context_changed", thread))
        assert status == 200, (status, body)

    async def say_in_assistant(self, thread_ts: str, text: str) -> str:
        """The thread's person writes `text` in it: the `message` event of the app's DM (`channel_type`
        "im"), in the thread. Returns the message's ts."""
        thread = self.assistant_threads[thread_ts]
        ts: str = await self.say_in(thread.user, thread.channel, text, thread_ts=thread.ts)
        return ts

    # ----- the Web API ------------------------------------------------------------------------------
    def _pane_thread(self, args: dict[str, Any], *, thread_required: bool = True) -> PaneThread | dict[str, Any]:
        channel, ts = args.get("channel_id"), args.get("thread_ts")
        if not isinstance(channel, str) or not channel:
            return _bad("missing required field: channel_id")
        if thread_required and (not isinstance(ts, str) or not ts):
            return _bad("missing required field: thread_ts")
        if not channel.startswith("D") or not self.dm_channel_ok(channel):
            return {"ok": False, "error": "channel_not_found"}
        if not ts:  # "the prompts will be set for the latest message in the channel"
            mine = [t for t in self.assistant_threads.values() if t.channel == channel]
            return mine[-1] if mine else {"ok": False, "error": "invalid_thread_ts"}
        thread = self.assistant_threads.get(str(ts))
        if thread is None or thread.channel != channel:
            return {"ok": False, "error": "invalid_thread_ts"}
        return thread

    def _assistant_threads_setStatus(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/assistant.threads.setStatus: `channel_id`, `thread_ts`
        and `status` required ("" clears it); `loading_messages` at most 10 texts."""
        thread = self._pane_thread(args)
        if isinstance(thread, dict):
            return thread
        status = args.get("status")
        if not isinstance(status, str):
            return _bad("missing required field: status")
        loading = args.get("loading_messages")
        if isinstance(loading, str):
            loading = json.loads(loading)
        if loading is not None:
            if not isinstance(loading, list) or not all(isinstance(m, str) for m in loading):
                return _bad("loading_messages must be an array of strings")
            if len(loading) > MAX_LOADING:
                return _bad(f"loading_messages: at most {MAX_LOADING} messages")
        thread.status, thread.status_at = status, time.perf_counter()
        thread.loading_messages = list(loading or [])
        thread.statuses.append(status)
        return {"ok": True}

    def _assistant_threads_setSuggestedPrompts(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/assistant.threads.setSuggestedPrompts: `channel_id` and
        `prompts` required (up to four, each with its `title` and `message`); `thread_ts` and `title`
        optional."""
        thread = self._pane_thread(args, thread_required=False)
        if isinstance(thread, dict):
            return thread
        prompts = args.get("prompts")
        if isinstance(prompts, str):
            prompts = json.loads(prompts)
        if not isinstance(prompts, list) or not prompts:
            return _bad("missing required field: prompts")
        if len(prompts) > MAX_PROMPTS:
            return _bad(f"prompts: at most {MAX_PROMPTS} prompts")
        for prompt in prompts:
            if not isinstance(prompt, dict) or not all(isinstance(prompt.get(k), str) for k in ("title", "message")):
                return _bad("each prompt must have a title and a message")
        title = args.get("title")
        if title is not None and not isinstance(title, str):
            return _bad("title must be a string")
        thread.prompts, thread.prompts_title = [dict(p) for p in prompts], title
        return {"ok": True}

    def _assistant_threads_setTitle(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/assistant.threads.setTitle: `channel_id`, `thread_ts` and
        `title` required."""
        thread = self._pane_thread(args)
        if isinstance(thread, dict):
            return thread
        title = args.get("title")
        if not isinstance(title, str) or not title:
            return _bad("missing required field: title")
        thread.title = title
        return {"ok": True}
