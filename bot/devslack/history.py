"""The stand-in's reading of conversations: `conversations.history` (a channel's messages, newest first)
and `conversations.replies` (a thread: its parent, then its replies, oldest first), paged by `limit` and
`cursor`, with each message's metadata only when asked (`include_all_metadata`), as Slack does
(https://docs.slack.dev/reference/methods/conversations.replies, https://docs.slack.dev/messaging/message-metadata).

A mixin of `DevSlack` (bot/devslack/slack.py).
"""

from __future__ import annotations

from typing import Any

from bot.devslack.messages import Message


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


def check_metadata(metadata: Any) -> str | None:
    """Slack's error for a message's `metadata` it would refuse (None: accepted): an object with a string
    `event_type` and an object `event_payload`."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
        return "invalid_metadata_format"
    if not isinstance(metadata.get("event_payload", {}), dict):
        return "invalid_metadata_format"
    return None


class History:
    """Uses DevSlack's `messages`."""

    messages: dict[str, Message]

    @staticmethod
    def _shown(message: Message, metadata: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {"type": "message", "ts": message.ts, "text": message.text, "blocks": message.blocks}
        if message.thread_ts:
            shown["thread_ts"] = message.thread_ts
        if message.user:  # a person's message; the app's carry its bot_id in Slack
            shown["user"] = message.user
        if metadata and message.metadata is not None:
            shown["metadata"] = message.metadata
        if message.files:
            shown["files"] = message.files
        return shown

    @staticmethod
    def _paged(found: list[dict[str, Any]], args: dict[str, Any], default: int) -> dict[str, Any]:
        start = int(args.get("cursor") or 0)
        limit = max(1, min(int(args.get("limit") or default), 1000))
        page = found[start : start + limit]
        more = start + limit < len(found)
        return {
            "ok": True,
            "messages": page,
            "has_more": more,
            "response_metadata": {"next_cursor": str(start + limit) if more else ""},
        }

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        parent = self.messages.get(args.get("ts") or "")
        if parent is None or parent.channel != args.get("channel"):
            return {"ok": False, "error": "thread_not_found"}
        replies = [m for m in self.messages.values() if m.thread_ts == parent.ts and m.channel == parent.channel]
        metadata = _flag(args.get("include_all_metadata"))
        found = [self._shown(m, metadata) for m in [parent, *sorted(replies, key=lambda m: float(m.ts))]]
        return self._paged(found, args, 1000)

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        oldest = float(args.get("oldest") or 0)
        latest = float(args.get("latest") or "inf")
        inclusive = _flag(args.get("inclusive"))
        top = [
            m
            for m in self.messages.values()
            if m.channel == channel
            and (m.thread_ts is None or m.broadcast)
            and (oldest <= float(m.ts) if inclusive else oldest < float(m.ts))
            and float(m.ts) <= latest
        ]
        metadata = _flag(args.get("include_all_metadata"))
        found = [self._shown(m, metadata) for m in sorted(top, key=lambda m: float(m.ts), reverse=True)]
        return self._paged(found, args, 100)
