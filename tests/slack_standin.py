"""A local Slack for tests: the Web API methods kern-bot uses, Block Kit validated like Slack does, and
signed slash commands, clicks and form submissions sent to the bot's real HTTP endpoint."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# (where, limit) checks in the spirit of SLACK.md section 2; violations answer invalid_blocks.
TEXT_LIMITS = {"section": 3000, "header": 150}


def validate_blocks(blocks: list[dict[str, Any]], *, modal: bool = False) -> list[str]:
    """Slack-style errors for a message's (or modal's) blocks; empty when Slack would accept them."""
    errors: list[str] = []
    limit = 100 if modal else 50
    if len(blocks) > limit:
        errors.append(f"no more than {limit} items allowed [json-pointer:/blocks]")
    action_ids: set[str] = set()
    block_ids: set[str] = set()
    total_text = 0

    def text_obj(obj: Any, where: str, max_len: int, plain_only: bool = False) -> None:
        nonlocal total_text
        if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn") or "text" not in obj:
            errors.append(f"must provide a text object [json-pointer:{where}]")
            return
        if plain_only and obj["type"] != "plain_text":
            errors.append(f"must be plain_text [json-pointer:{where}]")
        if not obj["text"]:
            errors.append(f"must be more than 0 characters [json-pointer:{where}/text]")
        if len(obj["text"]) > max_len:
            errors.append(f"must be less than {max_len + 1} characters [json-pointer:{where}/text]")
        total_text += len(obj["text"])

    def element(el: dict[str, Any], where: str) -> None:
        kind = el.get("type")
        if "action_id" in el:
            if len(el["action_id"]) > 255:
                errors.append(f"action_id too long [json-pointer:{where}/action_id]")
        if kind == "button":
            text_obj(el.get("text"), f"{where}/text", 75, plain_only=True)
            if len(el.get("value", "")) > 2000:
                errors.append(f"must be less than 2001 characters [json-pointer:{where}/value]")
            if el.get("style") not in (None, "primary", "danger"):
                errors.append(f"invalid style [json-pointer:{where}/style]")
            if "confirm" in el:
                c = el["confirm"]
                for key, max_len in (("title", 100), ("text", 300), ("confirm", 30), ("deny", 30)):
                    text_obj(c.get(key), f"{where}/confirm/{key}", max_len)
        elif kind in ("static_select", "multi_static_select"):
            options = el.get("options")
            groups = el.get("option_groups")
            if (options is None) == (groups is None):
                errors.append(f"must provide exactly one of options or option_groups [json-pointer:{where}]")
            for gi, group in enumerate(groups or []):
                if len(group.get("options", [])) > 100:
                    errors.append(f"no more than 100 items allowed [json-pointer:{where}/option_groups/{gi}]")
            all_options = options or [o for g in groups or [] for o in g.get("options", [])]
            if options is not None and not 1 <= len(options) <= 100:
                errors.append(f"must have 1-100 options [json-pointer:{where}/options]")
            for oi, option in enumerate(all_options):
                text_obj(option.get("text"), f"{where}/options/{oi}/text", 75)
                if len(option.get("value", "")) > 150:
                    errors.append(f"must be less than 151 characters [json-pointer:{where}/options/{oi}/value]")
            if "placeholder" in el:
                text_obj(el["placeholder"], f"{where}/placeholder", 150, plain_only=True)
        elif kind == "plain_text_input":
            if not 1 <= el.get("max_length", 3000) <= 3000:
                errors.append(f"max_length must be 1-3000 [json-pointer:{where}/max_length]")
            if len(el.get("initial_value", "")) > el.get("max_length", 3000):
                errors.append(f"initial_value longer than max_length [json-pointer:{where}/initial_value]")
        elif kind == "number_input":
            if not isinstance(el.get("is_decimal_allowed"), bool):
                errors.append(f"is_decimal_allowed is required [json-pointer:{where}]")
        elif kind == "checkboxes":
            if not 1 <= len(el.get("options", [])) <= 10:
                errors.append(f"must have 1-10 options [json-pointer:{where}/options]")
        else:
            errors.append(f"unknown element type {kind!r} [json-pointer:{where}]")

    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        kind = block.get("type")
        bid = block.get("block_id")
        if bid is not None:
            if len(bid) > 255 or bid in block_ids:
                errors.append(f"block_id too long or duplicated [json-pointer:{where}/block_id]")
            block_ids.add(bid)
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"section needs text or fields [json-pointer:{where}]")
            if "text" in block:
                text_obj(block["text"], f"{where}/text", 3000)
            fields = block.get("fields", [])
            if len(fields) > 10:
                errors.append(f"no more than 10 items allowed [json-pointer:{where}/fields]")
            for fi, f in enumerate(fields):
                text_obj(f, f"{where}/fields/{fi}", 2000)
        elif kind == "header":
            text_obj(block.get("text"), f"{where}/text", 150, plain_only=True)
        elif kind == "context":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 10:
                errors.append(f"must have 1-10 elements [json-pointer:{where}/elements]")
            for ei, e in enumerate(elements):
                text_obj(e, f"{where}/elements/{ei}", 3000)
        elif kind == "actions":
            elements = block.get("elements", [])
            if not 1 <= len(elements) <= 25:
                errors.append(f"must have 1-25 elements [json-pointer:{where}/elements]")
            for ei, e in enumerate(elements):
                element(e, f"{where}/elements/{ei}")
                aid = e.get("action_id")
                if aid in action_ids:
                    errors.append(f"duplicate action_id {aid} [json-pointer:{where}/elements/{ei}]")
                action_ids.add(aid)
        elif kind == "input":
            if not modal:
                errors.append(f"input blocks are for modals [json-pointer:{where}]")
            text_obj(block.get("label"), f"{where}/label", 2000, plain_only=True)
            if "hint" in block:
                text_obj(block["hint"], f"{where}/hint", 2000, plain_only=True)
            element(block.get("element") or {}, f"{where}/element")
        elif kind == "divider":
            pass
        else:
            errors.append(f"unknown block type {kind!r} [json-pointer:{where}]")
    if not modal and total_text > 12000:
        errors.append("msg_blocks_too_long")
    return errors


def validate_view(view: dict[str, Any]) -> list[str]:
    errors = []
    title = (view.get("title") or {}).get("text", "")
    if not 1 <= len(title) <= 24:
        errors.append("title must be 1-24 characters [json-pointer:/view/title]")
    for key in ("submit", "close"):
        if key in view and len(view[key].get("text", "")) > 24:
            errors.append(f"{key} must be at most 24 characters [json-pointer:/view/{key}]")
    if any(b.get("type") == "input" for b in view.get("blocks", [])) and "submit" not in view:
        errors.append("a view with input blocks needs submit [json-pointer:/view/submit]")
    if len(view.get("private_metadata", "")) > 3000:
        errors.append("private_metadata must be at most 3000 characters")
    if not view.get("blocks"):
        errors.append("a modal needs at least one block")
    if len(json.dumps(view)) > 250_000:
        return ["view_too_large"]
    return errors + validate_blocks(view.get("blocks", []), modal=True)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    edits: int = 0
    posted_at: float = field(default_factory=time.perf_counter)


@dataclass
class SlackStandIn:
    """Run with `async with SlackStandIn(secret) as slack`; point the bot's client at `slack.api_url`."""

    signing_secret: str
    token: str = "xoxb-test"
    bot_endpoint: str = ""
    trigger_ttl: float = 3.0
    messages: dict[str, Message] = field(default_factory=dict)
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    fail_next: dict[str, str] = field(default_factory=dict)
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # method -> how many 429s to answer first

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._triggers: dict[str, tuple[float, bool]] = {}
        self._runner: web.AppRunner | None = None
        self._socket_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.api_url = ""
        self.session: aiohttp.ClientSession | None = None

    # ----- Web API ---------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "apps.connections.open":  # Socket Mode: called with the app-level token
            if not request.headers.get("Authorization", "").startswith("Bearer xapp-"):
                return self._answer(method, {}, {"ok": False, "error": "invalid_auth"})
            return self._answer(method, {}, {"ok": True, "url": self.api_url.replace("http", "ws") + "socket"})
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer(method, {}, {"ok": False, "error": "invalid_auth"})
        if request.method == "GET":
            args: dict[str, Any] = dict(request.query)
        elif request.content_type == "application/json":
            args = await request.json()
        else:
            args = dict(await request.post())
        for key in ("blocks", "view"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        if self.rate_limit_next.get(method, 0) > 0:
            self.rate_limit_next[method] -= 1
            self.calls.append((method, args, {"ok": False, "error": "ratelimited"}))
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "0"})
        if method in self.fail_next:
            return self._answer(method, args, {"ok": False, "error": self.fail_next.pop(method)})
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return self._answer(method, args, {"ok": False, "error": "unknown_method"})
        return self._answer(method, args, handler(args))

    def _answer(self, method: str, args: dict[str, Any], body: dict[str, Any]) -> web.Response:
        self.calls.append((method, args, body))
        return web.json_response(body)

    def _invalid(self, errors: list[str]) -> dict[str, Any] | None:
        if not errors:
            return None
        code = "view_too_large" if errors == ["view_too_large"] else "invalid_blocks"
        return {"ok": False, "error": code, "errors": errors, "response_metadata": {"messages": errors}}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1", "user": "kern", "team": "Test"}

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        bad = self._invalid(validate_blocks(args.get("blocks") or []))
        if bad:
            return bad
        if len(args.get("text") or "") > 40000:
            return {"ok": False, "error": "msg_too_long"}
        ts = f"{1700000000 + next(self._ts)}.000100"
        self.messages[ts] = Message(
            args["channel"], ts, args.get("text", ""), args.get("blocks") or [], args.get("thread_ts")
        )
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": {"ts": ts, "text": args.get("text")}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        bad = self._invalid(validate_blocks(args.get("blocks") or []))
        if bad:
            return bad
        message.text, message.edits = args.get("text", message.text), message.edits + 1
        if "blocks" in args:
            message.blocks = args["blocks"]
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append(args)
        return {"ok": True, "message_ts": f"{time.time():.6f}"}

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = self._triggers.get(args.get("trigger_id", ""))
        if trigger is None or time.monotonic() - trigger[0] > self.trigger_ttl:
            return {"ok": False, "error": "expired_trigger_id"}
        if trigger[1]:
            return {"ok": False, "error": "exchanged_trigger_id"}
        self._triggers[args["trigger_id"]] = (trigger[0], True)
        bad = self._invalid(validate_view(args["view"]))
        if bad:
            return bad
        view_id = f"V{next(self._ts)}"
        self.views[view_id] = {**args["view"], "id": view_id, "hash": f"h{next(self._ts)}"}
        return {"ok": True, "view": self.views[view_id]}

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        current = self.views.get(args.get("view_id", ""))
        if current is None:
            return {"ok": False, "error": "not_found"}
        if args.get("hash") and args["hash"] != current["hash"]:
            return {"ok": False, "error": "hash_conflict"}
        bad = self._invalid(validate_view(args["view"]))
        if bad:
            return bad
        self.views[current["id"]] = {**args["view"], "id": current["id"], "hash": f"h{next(self._ts)}"}
        return {"ok": True, "view": self.views[current["id"]]}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "members": self.members.get(args.get("channel", ""), [])}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "users": self.groups.get(args.get("usergroup", ""), [])}

    # ----- Socket Mode -----------------------------------------------------------------------------
    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._socket_ws = ws
        await ws.send_json({"type": "hello", "num_connections": 1})
        async for message in ws:
            data = json.loads(message.data)
            waiter = self._socket_acks.pop(data.get("envelope_id", ""), None)
            if waiter is not None:
                waiter.set_result(data)
        return ws

    async def socket_command(self, text: str, *, user: str = "U1", channel: str = "C1") -> dict[str, Any]:
        """Send a slash command over Socket Mode; returns the bot's ack envelope."""
        await self.until(lambda: getattr(self, "_socket_ws", None) is not None)
        envelope_id = f"env-{next(self._ts)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._socket_acks[envelope_id] = waiter
        await self._socket_ws.send_json(
            {
                "envelope_id": envelope_id,
                "type": "slash_commands",
                "accepts_response_payload": True,
                "payload": {
                    "token": "t",
                    "team_id": "T1",
                    "channel_id": channel,
                    "user_id": user,
                    "user_name": user,
                    "command": "/kern",
                    "text": text,
                    "response_url": "http://127.0.0.1:1/unused",
                    "trigger_id": self._trigger(),
                },
            }
        )
        return await asyncio.wait_for(waiter, 10)

    # ----- driving the bot ---------------------------------------------------------------------------
    def _trigger(self) -> str:
        trigger = f"trig-{next(self._ts)}"
        self._triggers[trigger] = (time.monotonic(), False)
        return trigger

    async def send(
        self, body: bytes, content_type: str, *, timestamp: int | None = None, signature: str | None = None
    ) -> tuple[int, str, float]:
        """POST to the bot, signed with the signing secret; returns (status, body, seconds to answer)."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = f"v0:{ts}:{body.decode()}".encode()
        sig = signature or "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        assert self.session is not None
        start = time.perf_counter()
        async with self.session.post(
            self.bot_endpoint,
            data=body,
            headers={"Content-Type": content_type, "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig},
        ) as resp:
            return resp.status, await resp.text(), time.perf_counter() - start

    async def command(self, text: str, *, user: str = "U1", channel: str = "C1") -> tuple[int, str, float]:
        form = {
            "token": "t",
            "team_id": "T1",
            "channel_id": channel,
            "user_id": user,
            "user_name": user,
            "command": "/kern",
            "text": text,
            "response_url": "http://127.0.0.1:1/unused",
            "trigger_id": self._trigger(),
        }
        return await self.send(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")

    async def _interaction(self, payload: dict[str, Any]) -> tuple[int, str, float]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return await self.send(body, "application/x-www-form-urlencoded")

    def find(self, action_id: str, *, thread_ts: str | None = None) -> tuple[Message, dict[str, Any], str]:
        """The newest message with an element `action_id` (optionally in one thread): (message, element,
        block_id)."""
        for message in reversed(list(self.messages.values())):
            if thread_ts is not None and message.thread_ts != thread_ts:
                continue
            for block in message.blocks:
                for el in block.get("elements", []) if block.get("type") == "actions" else []:
                    if el.get("action_id") == action_id or el.get("action_id", "").startswith(action_id + ":"):
                        return message, el, block.get("block_id", "")
        raise LookupError(f"no message has {action_id}")

    async def click(
        self,
        action_id: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        state: dict[str, Any] | None = None,
        stale: tuple[Message, dict[str, Any], str] | None = None,
    ) -> tuple[int, str, float]:
        """Click the newest element `action_id`, or `stale` (a `find()` result kept from before an update,
        as a client still showing an old copy of the message would send it)."""
        message, el, block_id = stale or self.find(action_id, thread_ts=thread_ts)
        payload = {
            "type": "block_actions",
            "user": {"id": user, "username": user},
            "team": {"id": "T1"},
            "api_app_id": "A1",
            "token": "t",
            "trigger_id": self._trigger(),
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
            "channel": {"id": message.channel},
            "message": {
                "ts": message.ts,
                "thread_ts": message.thread_ts,
                "text": message.text,
                "blocks": message.blocks,
            },
            "response_url": "http://127.0.0.1:1/unused",
            "state": {"values": state or {}},
            "actions": [
                {
                    "type": el["type"],
                    "action_id": action_id,
                    "block_id": block_id,
                    "value": el.get("value", ""),
                    "action_ts": str(time.time()),
                }
            ],
        }
        return await self._interaction(payload)

    async def submit(
        self, view_id: str, values: dict[str, dict[str, Any]], *, user: str = "U1"
    ) -> tuple[int, str, float]:
        """Submit a modal with `values` as Slack's view.state.values (block_id -> action_id -> state)."""
        view = self.views[view_id]
        payload = {
            "type": "view_submission",
            "user": {"id": user, "username": user},
            "team": {"id": "T1"},
            "api_app_id": "A1",
            "token": "t",
            "trigger_id": self._trigger(),
            "view": {**view, "state": {"values": values}},
        }
        return await self._interaction(payload)

    def last_view(self) -> dict[str, Any]:
        return list(self.views.values())[-1]

    def thread(self, ts: str) -> list[Message]:
        return [m for m in self.messages.values() if m.thread_ts == ts]

    async def until(self, predicate: Any, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            await asyncio.sleep(0.02)

    # ----- lifecycle ---------------------------------------------------------------------------------
    async def __aenter__(self) -> SlackStandIn:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/socket", self._socket)
        app.router.add_get("/api/{method}", self._api)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}/api/"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()
