"""The stand-in's chat streaming: `chat.startStream`, `chat.appendStream` and `chat.stopStream`, validated as
the method pages say (https://docs.slack.dev/reference/methods/chat.startStream, .../chat.appendStream,
.../chat.stopStream), and `chat.delete` (https://docs.slack.dev/reference/methods/chat.delete).

A streamed message is a reply in a thread (`thread_ts` is required) whose text grows with each append, shown on
the dev page as it grows; its task cards (`task_update` chunks) are kept by id, a later update of a card
replacing its title, status, details and output. Outside a DM the stream needs its recipient
(`recipient_team_id`, `recipient_user_id`). One stream streams either `markdown_text` or `chunks`, as it
started (`streaming_mode_mismatch`), never both in one call; a field of markdown holds at most 12,000
characters, and a message at most 40,000 (as chat.postMessage's text): past either, `msg_too_long`. Once
stopped (or never streamed), appending or stopping again is `message_not_in_streaming_state`.

Every append that landed is recorded in `appends` (ts, markdown text) so tests and benches can check that no
chunk was lost or reordered. A mixin of `DevSlack` (bot/devslack/slack.py); faults apply to these methods as to
any other (bot/devslack/faults.py).
"""

from __future__ import annotations

import time
from typing import Any

from bot.devslack.history import check_metadata
from bot.devslack.messages import Message
from bot.devslack.validate import validate_blocks

FIELD_LIMIT = 12_000  # characters of one markdown_text (argument or chunk)
MESSAGE_LIMIT = 40_000  # characters of a message's text
TASK_STATUSES = ("pending", "in_progress", "complete", "error")
DISPLAY_MODES = ("timeline", "plan", "dense")


def _invalid(what: str) -> dict[str, Any]:
    return {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [f"[ERROR] {what}"]}}


def chunk_problem(chunk: Any) -> str | None:
    """Why Slack would refuse one streaming chunk (None: fine): markdown_text, task_update, plan_update or
    blocks, each with its fields (https://docs.slack.dev/reference/methods/chat.appendStream)."""
    if not isinstance(chunk, dict):
        return "invalid_chunks"
    kind = chunk.get("type")
    if kind == "markdown_text":
        return None if isinstance(chunk.get("text"), str) else "invalid_chunks"
    if kind == "task_update":
        fields_ok = all(isinstance(chunk.get(k), str) and chunk[k] for k in ("id", "title"))
        extras_ok = all(isinstance(chunk.get(k, ""), str) for k in ("details", "output"))
        return None if fields_ok and extras_ok and chunk.get("status") in TASK_STATUSES else "invalid_chunks"
    if kind == "plan_update":
        return None if isinstance(chunk.get("title"), str) and chunk["title"] else "invalid_chunks"
    if kind == "blocks":
        blocks = chunk.get("blocks")
        return None if isinstance(blocks, list) and not validate_blocks(blocks) else "invalid_blocks"
    return "invalid_chunks"


class StreamsApi:
    """Uses DevSlack's `messages`, `not_joined`, `caller_team`, `_epoch`, `_ts`, `dm_channel_ok`, `_user_exists`."""

    messages: dict[str, Message]
    not_joined: set[str]
    caller_team: str
    _epoch: int
    _ts: Any
    dm_channel_ok: Any
    _user_exists: Any

    def init_streams(self) -> None:
        self.appends: list[tuple[str, str]] = []  # (ts, markdown text) of every landed start, append and stop
        self.plans: dict[str, str] = {}  # ts -> the plan's title (plan_update chunks)

    # ----- the three methods ----------------------------------------------------------------------------
    def _chat_startStream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel") or ""
        if not channel or not self.dm_channel_ok(channel):
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_joined:
            return {"ok": False, "error": "not_in_channel"}
        if not args.get("thread_ts"):
            return _invalid("missing required field: thread_ts")
        if not channel.startswith("D"):  # "Required when streaming to channels"
            if not args.get("recipient_team_id"):
                return {"ok": False, "error": "missing_recipient_team_id"}
            if not args.get("recipient_user_id"):
                return {"ok": False, "error": "missing_recipient_user_id"}
        if args.get("recipient_user_id") and not self._user_exists(args["recipient_user_id"]):
            return {"ok": False, "error": "user_not_found"}
        if args.get("task_display_mode", "timeline") not in DISPLAY_MODES:
            return _invalid("task_display_mode must be one of " + ", ".join(DISPLAY_MODES))
        ts = f"{self._epoch + next(self._ts)}.000100"
        message = Message(channel, ts, "", [], str(args["thread_ts"]), team=self.caller_team, streaming="in_progress")
        refused = self._take(message, args, first=True)
        if refused:
            return refused
        self.messages[ts] = message
        return {"ok": True, "channel": channel, "ts": ts}

    def _chat_appendStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message, refused = self._streaming(args)
        if refused:
            return refused
        assert message is not None
        if args.get("markdown_text") is None and args.get("chunks") is None:
            return {"ok": False, "error": "markdown_text_or_chunks_required"}
        refused = self._take(message, args)
        return refused or {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_stopStream(self, args: dict[str, Any]) -> dict[str, Any]:
        message, refused = self._streaming(args)
        if refused:
            return refused
        assert message is not None
        blocks = args.get("blocks") or []
        errors = validate_blocks(blocks)
        if errors:
            return {"ok": False, "error": "invalid_blocks", "errors": errors, "response_metadata": {"messages": errors}}
        bad_metadata = check_metadata(args.get("metadata"))
        if bad_metadata:
            return {"ok": False, "error": bad_metadata}
        refused = self._take(message, args)
        if refused:
            return refused
        message.streaming = "completed"
        message.blocks = list(blocks)
        if args.get("metadata") is not None:
            message.metadata = args["metadata"]
        shown = {"type": "message", "ts": message.ts, "text": message.text, "streaming_state": "completed"}
        return {"ok": True, "channel": message.channel, "ts": message.ts, "message": shown}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts") or "")
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        if message.channel != args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if message.user:  # a person's message: a bot token cannot delete it
            return {"ok": False, "error": "cant_delete_message"}
        del self.messages[message.ts]
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    # ----- shared checks --------------------------------------------------------------------------------
    def _streaming(self, args: dict[str, Any]) -> tuple[Message | None, dict[str, Any] | None]:
        """The streaming message `ts` names in `channel`, or Slack's error."""
        if not args.get("ts"):
            return None, _invalid("missing required field: ts")
        message = self.messages.get(str(args["ts"]))
        if message is None:
            return None, {"ok": False, "error": "message_not_found"}
        if message.channel != args.get("channel"):
            return None, {"ok": False, "error": "channel_not_found"}
        if message.user or message.team != self.caller_team:
            return None, {"ok": False, "error": "message_not_owned_by_app"}
        if message.streaming != "in_progress":
            return None, {"ok": False, "error": "message_not_in_streaming_state"}
        return message, None

    def _take(self, message: Message, args: dict[str, Any], *, first: bool = False) -> dict[str, Any] | None:
        """Check the call's content (markdown_text or chunks) against the stream and, if Slack would take it,
        add it to `message`; else Slack's error, nothing changed."""
        markdown, chunks = args.get("markdown_text"), args.get("chunks")
        if markdown is not None and chunks is not None and not first:
            return {"ok": False, "error": "cannot_provide_both_markdown_text_and_chunks"}
        if chunks is not None and not isinstance(chunks, list):
            return {"ok": False, "error": "invalid_chunks"}
        for chunk in chunks or []:
            problem = chunk_problem(chunk)
            if problem:
                return {"ok": False, "error": problem}
        mode = "chunks" if chunks is not None else "markdown_text" if markdown is not None else ""
        if mode and message.stream_mode and mode != message.stream_mode:
            return {"ok": False, "error": "streaming_mode_mismatch"}
        pieces = [markdown] if isinstance(markdown, str) else []
        pieces += [c["text"] for c in chunks or [] if c["type"] == "markdown_text"]
        if any(len(p) > FIELD_LIMIT for p in pieces) or len(message.text) + sum(map(len, pieces)) > MESSAGE_LIMIT:
            return {"ok": False, "error": "msg_too_long"}
        message.stream_mode = message.stream_mode or mode
        text = "".join(pieces)
        message.text += text
        for chunk in chunks or []:
            if chunk["type"] == "task_update":
                card = message.tasks.setdefault(chunk["id"], {})
                card.update({k: v for k, v in chunk.items() if k != "type"})
            elif chunk["type"] == "plan_update":
                self.plans[message.ts] = chunk["title"]
            elif chunk["type"] == "blocks":
                message.blocks = [*message.blocks, *chunk["blocks"]]
        if text:
            self.appends.append((message.ts, text))
        message.at = message.at or time.time()
        return None
