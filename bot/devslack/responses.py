"""The stand-in's response_url: one per command or click, honoured as Slack honours it (5 uses within 30
minutes; replace or delete the original, an ephemeral reply, or a message in the channel).

A mixin of `DevSlack` (bot/devslack/slack.py), which serves POST /response/<token> with `_respond`.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from aiohttp import web

from bot.devslack.messages import Ephemeral, Message
from bot.devslack.validate import validate_blocks


class ResponseUrls:
    """Uses DevSlack's `messages`, `ephemeral`, `calls`, `rejected`, `base_url`, `response_url_ttl`,
    `response_url_uses`, and its `_invalid`, `_chat_postMessage` and `changed`."""

    messages: dict[str, Message]
    ephemeral: list[dict[str, Any]]
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]]
    rejected: list[dict[str, Any]]
    base_url: str
    response_url_ttl: float
    response_url_uses: int
    _ts: itertools.count[int]
    _response_urls: dict[str, dict[str, Any]]

    def _response_url(self, user: str, channel: str, message: Message | None = None) -> str:
        """A fresh response_url for one command or click (`message`: the message clicked)."""
        token = f"R{next(self._ts)}"
        self._response_urls[token] = {
            "created": time.monotonic(),
            "uses": 0,
            "user": user,
            "channel": channel,
            "message": message,
            "reply": None,  # a command's ephemeral ack, which replace_original replaces
        }
        return f"{self.base_url}response/{token}"

    async def _respond(self, request: web.Request) -> web.Response:
        """POST to a response_url, with Slack's rules: 5 uses within 30 minutes, then refused. The error
        words are this stand-in's (Slack answers a refused response_url with an HTTP error status)."""
        record = self._response_urls.get(request.match_info["token"])
        try:
            args = await request.json()
        except ValueError:
            args = {}
        if record is None:
            answer, status = {"ok": False, "error": "no_service"}, 404
        elif time.monotonic() - record["created"] > self.response_url_ttl:
            answer, status = {"ok": False, "error": "expired_url"}, 404
        elif record["uses"] >= self.response_url_uses:
            answer, status = {"ok": False, "error": "used_url"}, 404
        else:
            record["uses"] += 1
            answer = self._apply_response(record, args)
            status = 200 if answer.get("ok") else 400
        self.calls.append(("response_url", args, answer))
        if not answer.get("ok"):
            self.rejected.append({"method": "response_url", "error": answer.get("error"), "errors": []})
        self.changed()  # type: ignore[attr-defined]
        return web.json_response(answer, status=status)

    def _apply_response(self, record: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        message: Message | None = record["message"]
        if args.get("delete_original"):
            # Deletes the message clicked, or a command's ephemeral reply, which chat.delete cannot
            # (https://docs.slack.dev/messaging/modifying-messages: ephemeral messages change only by response_url).
            if message is not None:
                self.messages.pop(message.ts, None)
            elif record["reply"] is None:
                record["deleted"] = True  # before the reply is shown here: it never is
            else:
                self.ephemeral[:] = [e for e in self.ephemeral if e is not record["reply"]]
            return {"ok": True}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        bad = self._invalid(validate_blocks(args.get("blocks") or []))  # type: ignore[attr-defined]
        if bad:
            return bad
        if args.get("replace_original"):
            if message is not None:
                message.text, message.edits = args.get("text", message.text), message.edits + 1
                message.blocks = args.get("blocks") or []
                return {"ok": True}
            if record["reply"] is not None:
                record["reply"].update(text=args.get("text", ""), blocks=args.get("blocks") or [])
                return {"ok": True}
        if args.get("response_type") == "in_channel":
            return self._chat_postMessage({**args, "channel": record["channel"]})  # type: ignore[attr-defined]
        thread_ts = (message.thread_ts or message.ts) if message is not None else None
        entry = {"channel": record["channel"], "user": record["user"], "text": args.get("text", "")}
        self.ephemeral.append(Ephemeral({**entry, "blocks": args.get("blocks") or [], "thread_ts": thread_ts}))
        return {"ok": True}
