"""A local Slack: the Web API methods kern-bot uses (Block Kit validated like Slack does), Socket Mode,
and signed slash commands, clicks and form submissions sent to the bot's real HTTP endpoint. Its other
parts are mixins: people.py (DMs, the App Home), oauth.py (the install), responses.py (response_url),
faults.py (429s, errors, hangs and lost answers on purpose), history.py (reading channels and threads),
files.py (files shared by people, uploads by the app), streams.py (chat streaming).

Tests and benchmarks drive it from Python; `kern-bot dev` (to come) serves it with a web page.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.devslack.assistant import AssistantApi
from bot.devslack.faults import Faults
from bot.devslack.files import FilesApi
from bot.devslack.history import History, check_metadata
from bot.devslack.messages import Ephemeral, Message
from bot.devslack.oauth import OAuthApi
from bot.devslack.people import PeopleApi
from bot.devslack.responses import ResponseUrls
from bot.devslack.streams import StreamsApi
from bot.devslack.validate import validate_blocks, validate_view


@dataclass
class DevSlack(PeopleApi, OAuthApi, ResponseUrls, Faults, History, AssistantApi, FilesApi, StreamsApi):
    """Run with `async with DevSlack(secret) as slack`; point the bot's client at `slack.api_url`.

    It hosts workspace `team_id` (its bot token: `token`), and any other a test installs the app in
    (bot/devslack/oauth.py): `teams` maps each bot token to its workspace; requests to the bot are sent
    as from `team_id` (switch with `as_team`)."""

    signing_secret: str
    token: str = "xoxb-test"
    team_id: str = "T1"
    teams: dict[str, str] = field(default_factory=dict)  # bot token -> its workspace
    bot_endpoint: str = ""
    trigger_ttl: float = 3.0
    messages: dict[str, Message] = field(default_factory=dict)
    ephemeral: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    # Shorthands for faults (bot/devslack/faults.py has the general form, `fault()`), taken before those:
    fail_next: dict[str, str | list[str]] = field(default_factory=dict)  # method -> error (or errors, in turn)
    swallow_next: dict[str, int] = field(default_factory=dict)  # method -> how many calls to hang on, undone
    rate_limit_next: dict[str, int] = field(default_factory=dict)  # method -> how many 429s (Retry-After 0) first
    host: str = "127.0.0.1"
    port: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)  # calls Slack would have refused, newest last
    not_joined: set[str] = field(default_factory=set)  # channels the bot is not in: posting there fails
    response_url_ttl: float = 1800.0  # a response_url works for 30 minutes...
    response_url_uses: int = 5  # ...and up to 5 times
    users: set[str] = field(default_factory=set)  # the workspace's people; empty: any well-formed id
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> their users.info profile fields
    dms: dict[str, str] = field(default_factory=dict)  # user -> the bot's DM channel with them
    homes: dict[str, dict[str, Any]] = field(default_factory=dict)  # user -> their published Home tab
    home_tab_enabled: bool = True  # the manifest's features.app_home.home_tab_enabled

    def __post_init__(self) -> None:
        self.socket_sent: list[dict[str, Any]] = []
        self._released = asyncio.Event()
        self._ts = itertools.count(1)
        self._epoch = time.time_ns() // 1000 - 1_700_000_000_000_000  # microseconds: no two stand-ins collide
        self._instance = secrets.token_hex(4)
        self._triggers: dict[str, tuple[float, bool]] = {}
        self._runner: web.AppRunner | None = None
        self._socket_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._trigger_users: dict[str, str] = {}
        self._response_urls: dict[str, dict[str, Any]] = {}
        self._watchers: set[asyncio.Queue[int]] = set()
        self.version = 0
        self.api_url = ""
        self.base_url = ""
        self.session: aiohttp.ClientSession | None = None
        self.teams.setdefault(self.token, self.team_id)
        self.caller_team = ""  # the workspace of the token of the call being answered
        self.init_oauth()
        self.init_faults()
        self.init_files()
        self.init_streams()

    # ----- Web API ---------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if method == "apps.connections.open":  # Socket Mode: called with the app-level token
            if not request.headers.get("Authorization", "").startswith("Bearer xapp-"):
                return self._answer(method, {}, {"ok": False, "error": "invalid_auth"})
            return self._answer(method, {}, {"ok": True, "url": self.api_url.replace("http", "ws") + "socket"})
        caller = self.teams.get(request.headers.get("Authorization", "").removeprefix("Bearer "))
        if caller is None and method not in self.no_token_methods:
            return self._answer(method, {}, {"ok": False, "error": "invalid_auth"})
        self.caller_team = caller or ""
        args: dict[str, Any] = dict(request.query)  # Slack reads arguments from the query string too
        if request.method != "GET" and request.content_type == "application/json":
            args.update(await request.json())
        elif request.method != "GET":
            args.update(await request.post())
        for key in ("blocks", "view", "metadata"):
            if isinstance(args.get(key), str):
                args[key] = json.loads(args[key])
        fault = self.take_fault(method, args)
        if fault is not None and fault.answer != "lose":
            return await self.fault_answer(fault, method, args)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return self._answer(method, args, {"ok": False, "error": "unknown_method"})
        if method in self.no_token_methods:
            return self._answer(method, args, handler(args, request))
        self.caller_team = caller or ""  # again: another call may have answered while this one awaited
        answer = self._answer(method, args, handler(args))
        return answer if fault is None else await self.lose(method, args, answer)

    def _answer(self, method: str, args: dict[str, Any], body: dict[str, Any]) -> web.Response:
        self.calls.append((method, args, body))
        if not body.get("ok"):
            self.rejected.append({"method": method, "error": body.get("error"), "errors": body.get("errors", [])})
        self.changed()
        return web.json_response(body)

    def changed(self) -> None:
        """Tell watchers (the web page) that something may look different now."""
        self.version += 1
        for queue in self._watchers:
            queue.put_nowait(self.version)

    def watch(self) -> asyncio.Queue[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        self._watchers.add(queue)
        return queue

    def unwatch(self, queue: asyncio.Queue[int]) -> None:
        self._watchers.discard(queue)

    def _invalid(self, errors: list[str]) -> dict[str, Any] | None:
        if not errors:
            return None
        code = "view_too_large" if errors == ["view_too_large"] else "invalid_blocks"
        return {"ok": False, "error": code, "errors": errors, "response_metadata": {"messages": errors}}

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "user_id": "UBOT",
            "bot_id": "BBOT",
            "team_id": self.caller_team,
            "user": "kern",
            "team": "Test",
        }

    def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel") in self.not_joined:
            return {"ok": False, "error": "not_in_channel"}
        if not self.dm_channel_ok(args.get("channel") or ""):
            return {"ok": False, "error": "channel_not_found"}
        bad = self._invalid(validate_blocks(args.get("blocks") or []))
        if bad:
            return bad
        if len(args.get("text") or "") > 40000:
            return {"ok": False, "error": "msg_too_long"}
        refused = check_metadata(args.get("metadata"))
        if refused:
            return {"ok": False, "error": refused}
        ts = f"{self._epoch + next(self._ts)}.000100"  # unique across stand-ins, as Slack's are in a channel
        broadcast = str(args.get("reply_broadcast", "")).lower() in ("true", "1") and bool(args.get("thread_ts"))
        self.messages[ts] = Message(
            args["channel"],
            ts,
            args.get("text", ""),
            args.get("blocks") or [],
            args.get("thread_ts"),
            broadcast,
            team=self.caller_team,
            metadata=args.get("metadata"),
        )
        return {"ok": True, "channel": args["channel"], "ts": ts, "message": {"ts": ts, "text": args.get("text")}}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get(args.get("ts", ""))
        if message is None or message.channel != args.get("channel"):
            return {"ok": False, "error": "message_not_found"}
        bad = self._invalid(validate_blocks(args.get("blocks") or []))
        if bad:
            return bad
        refused = check_metadata(args.get("metadata"))
        if refused:
            return {"ok": False, "error": refused}
        if args.get("metadata") is not None:  # chat.update takes metadata as chat.postMessage does
            message.metadata = args["metadata"]
        message.text, message.edits = args.get("text", message.text), message.edits + 1
        if "blocks" in args:
            message.blocks = args["blocks"]
        return {"ok": True, "channel": message.channel, "ts": message.ts}

    def _chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel"):
            return {"ok": False, "error": "channel_not_found"}
        if args["channel"] in self.not_joined:
            return {"ok": False, "error": "not_in_channel"}
        self.ephemeral.append(Ephemeral(args))
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
        user = self._trigger_users.get(args["trigger_id"], "")
        self.views[view_id] = {**args["view"], "id": view_id, "hash": f"h{next(self._ts)}", "user": user}
        return {"ok": True, "view": self.views[view_id]}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        """A view on top of the person's open modal: a fresh trigger, an open modal to push onto, and at
        most two pushes (https://docs.slack.dev/reference/methods/views.push: `push_limit_reached`)."""
        trigger = self._triggers.get(args.get("trigger_id", ""))
        if trigger is None or time.monotonic() - trigger[0] > self.trigger_ttl:
            return {"ok": False, "error": "expired_trigger_id"}
        if trigger[1]:
            return {"ok": False, "error": "exchanged_trigger_id"}
        user = self._trigger_users.get(args["trigger_id"], "")
        stack = [v for v in self.views.values() if v.get("user") == user and not v.get("closed")]
        if not stack:
            return {"ok": False, "error": "not_found"}
        if len(stack) >= 3:
            return {"ok": False, "error": "push_limit_reached"}
        self._triggers[args["trigger_id"]] = (trigger[0], True)
        bad = self._invalid(validate_view(args.get("view") or {}))
        if bad:
            return bad
        view_id = f"V{next(self._ts)}"
        self.views[view_id] = {**args["view"], "id": view_id, "hash": f"h{next(self._ts)}", "user": user}
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
        self.views[current["id"]] = {
            **args["view"],
            "id": current["id"],
            "hash": f"h{next(self._ts)}",
            "user": current.get("user", ""),
            "closed": current.get("closed", False),
        }
        return {"ok": True, "view": self.views[current["id"]]}

    def _conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/conversations.members: paged by cursor, as Slack pages
        (https://docs.slack.dev/apis/web-api/pagination): `limit` (default 100, at most 1000) members from
        `cursor` (an opaque string; "" or none: the first page), and `response_metadata.next_cursor` for the
        next page ("" after the last). Errors: invalid_limit, invalid_cursor."""
        members = self.members.get(args.get("channel", ""), [])
        try:
            limit = int(args.get("limit") or 100)
        except ValueError:
            return {"ok": False, "error": "invalid_limit"}
        if not 1 <= limit <= 1000:
            return {"ok": False, "error": "invalid_limit"}
        start = 0
        if args.get("cursor"):
            try:
                given = base64.b64decode(str(args["cursor"]), validate=True).decode()
                start = members.index(given.removeprefix("user:"))
            except ValueError:  # not base64, or no longer a member
                return {"ok": False, "error": "invalid_cursor"}
        page = members[start : start + limit]
        after = members[start + limit : start + limit + 1]
        next_cursor = base64.b64encode(f"user:{after[0]}".encode()).decode() if after else ""
        return {"ok": True, "members": page, "response_metadata": {"next_cursor": next_cursor}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        """https://docs.slack.dev/reference/methods/usergroups.users.list: every member at once (the method
        takes no cursor or limit)."""
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
        envelope = {
            "envelope_id": f"env-{next(self._ts)}",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "token": "t",
                "team_id": self.team_id,
                "channel_id": channel,
                "user_id": user,
                "user_name": user,
                "command": "/kern",
                "text": text,
                "response_url": self._response_url(user, channel),
                "trigger_id": self._trigger(),
            },
        }
        self.socket_sent.append(envelope)
        return await self.socket_send(envelope)

    async def socket_send(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Send an envelope (again: Slack redelivers one it got no ack for, with `retry_attempt`); returns
        the bot's ack envelope."""
        await self.until(lambda: getattr(self, "_socket_ws", None) is not None)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._socket_acks[envelope["envelope_id"]] = waiter
        await self._socket_ws.send_json(envelope)
        return await asyncio.wait_for(waiter, 10)

    # ----- driving the bot ---------------------------------------------------------------------------
    def _trigger(self, user: str = "") -> str:
        trigger = f"trig-{next(self._ts)}-{self._instance}"  # unique across stand-ins, as Slack's are
        self._triggers[trigger] = (time.monotonic(), False)
        self._trigger_users[trigger] = user
        return trigger

    async def send(
        self,
        body: bytes,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        retry: int | None = None,
    ) -> tuple[int, str, float]:
        """POST to the bot, signed with the signing secret; returns (status, body, seconds to answer).
        `retry`: sent as Slack's redelivery number `retry` (X-Slack-Retry-Num, X-Slack-Retry-Reason), the
        same body signed anew."""
        headers = {**self.signed(body, timestamp), "Content-Type": content_type}
        if retry is not None:
            headers["X-Slack-Retry-Num"] = str(retry)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        if signature is not None:
            headers["X-Slack-Signature"] = signature
        assert self.session is not None
        start = time.perf_counter()
        async with self.session.post(self.bot_endpoint, data=body, headers=headers) as resp:
            return resp.status, await resp.text(), time.perf_counter() - start

    async def command(self, text: str, *, user: str = "U1", channel: str = "C1") -> tuple[int, str, float]:
        response_url = self._response_url(user, channel)
        form = {
            "token": "t",
            "team_id": self.team_id,
            "channel_id": channel,
            "user_id": user,
            "user_name": user,
            "command": "/kern",
            "text": text,
            "response_url": response_url,
            "trigger_id": self._trigger(user),
        }
        status, body, took = await self.send(urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded")
        if status == 200 and body:  # Slack shows a command's ack to its sender only
            try:
                text = json.loads(body).get("text", "")
            except ValueError:
                text = body
            reply = Ephemeral({"channel": channel, "user": user, "text": text})
            record = self._response_urls[response_url.rsplit("/", 1)[1]]
            if not record.get("deleted"):
                self.ephemeral.append(reply)
                record["reply"] = reply
            self.changed()
        return status, body, took

    def event_envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        """Slack's `event_callback` envelope around an Events API event (`event`: its inner object)
        (https://docs.slack.dev/reference/events/member_joined_channel/ shows the wrapper)."""
        return {
            "token": "t",
            "team_id": self.team_id,
            "api_app_id": "A1",
            "event": {"event_ts": f"{time.time():.6f}", **event},
            "type": "event_callback",
            "event_id": f"Ev{next(self._ts)}",
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": self.team_id, "user_id": "UBOT", "is_bot": True, "is_enterprise_install": False}
            ],
        }

    async def event(self, event: dict[str, Any]) -> tuple[int, str, float]:
        """Send an Events API event (`event`: its inner object) in its signed envelope."""
        return await self.send(json.dumps(self.event_envelope(event)).encode(), "application/json")

    def person_posts(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None, bot_id: str | None = None
    ) -> tuple[str, list[dict[str, Any]]]:
        """`user` posts `text` in `channel` (a DM: a channel starting with D, opened for them), as a reply in
        `thread_ts` if given (`bot_id`: an app posts it). The message is kept, and the envelopes Slack sends an
        app subscribed to `message.channels`, `message.im` and `app_mention` are returned, not sent: the
        `message` event (https://docs.slack.dev/reference/events/message) and, for a mention of the app
        outside a DM, `app_mention` (https://docs.slack.dev/reference/events/app_mention). Returns (ts,
        envelopes)."""
        if channel.startswith("D"):
            self.dms.setdefault(user, channel)
        ts = f"{self._epoch + next(self._ts)}.000100"
        self.messages[ts] = Message(channel, ts, text, [], thread_ts, team=self.team_id, user=user)
        self.changed()
        event: dict[str, Any] = {"type": "message", "channel": channel, "user": user, "text": text, "ts": ts}
        if thread_ts:
            event["thread_ts"] = thread_ts
        if bot_id:
            event["bot_id"] = bot_id
        im = channel.startswith("D")
        envelopes = [self.event_envelope({**event, "channel_type": "im" if im else "channel"})]
        if not im and "<@UBOT" in text:
            envelopes.append(self.event_envelope({**event, "type": "app_mention"}))
        return ts, envelopes

    async def say_in(
        self, user: str, channel: str, text: str, *, thread_ts: str | None = None, bot_id: str | None = None
    ) -> str:
        """`person_posts`, its events sent to the bot (each must be acked with 200); returns the message's ts."""
        ts, envelopes = self.person_posts(user, channel, text, thread_ts=thread_ts, bot_id=bot_id)
        for envelope in envelopes:
            status, body, _took = await self.send(json.dumps(envelope).encode(), "application/json")
            assert status == 200, (status, body)
        return ts

    async def open_home(self, user: str = "U1") -> tuple[int, str, float]:
        """`user` opens the app's Home tab: the app_home_opened event."""
        return await self.event(self.home_event(user))

    async def join(self, channel: str, user: str = "UBOT", inviter: str = "U1") -> tuple[int, str, float]:
        """`user` (by default the bot, as `auth.test` names it) joins `channel`: the member_joined_channel
        event Slack sends to a bot in that channel."""
        self.members.setdefault(channel, [])
        if user not in self.members[channel]:
            self.members[channel].append(user)
        if user == "UBOT":
            self.not_joined.discard(channel)
        event = {
            "type": "member_joined_channel",
            "user": user,
            "channel": channel,
            "channel_type": "C",
            "team": self.team_id,
        }
        return await self.event({**event, "inviter": inviter})

    async def shortcut(self, callback_id: str, *, user: str = "U1") -> tuple[int, str, float]:
        """A global shortcut, as Slack sends it: signed, with a trigger_id and no channel
        (https://docs.slack.dev/reference/interaction-payloads/shortcuts-interaction-payload)."""
        payload = {
            "type": "shortcut",
            "token": "t",
            "action_ts": f"{time.time():.6f}",
            "team": {"id": self.team_id, "domain": "dev"},
            "user": {"id": user, "username": user, "team_id": self.team_id},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": self._trigger(user),
        }
        return await self._interaction(payload)

    async def _interaction(self, payload: dict[str, Any]) -> tuple[int, str, float]:
        return await self.send(self.interaction_body(payload), "application/x-www-form-urlencoded")

    @staticmethod
    def interaction_body(payload: dict[str, Any]) -> bytes:
        return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()

    def signed(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The headers Slack sends with `body` (content type, timestamp, signature), signed now or at
        `timestamp`. Signed as Slack signs: over the raw bytes, whatever they hold."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        base = b"v0:" + ts.encode() + b":" + body
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": "v0=" + hmac.new(self.signing_secret.encode(), base, hashlib.sha256).hexdigest(),
        }

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
        value: str | None = None,
    ) -> tuple[int, str, float]:
        """Click the newest element `action_id`, or `stale` (a `find()` result kept from before an update,
        as a client still showing an old copy of the message would send it). `value` replaces the
        element's value (a tampered payload)."""
        payload = self.click_payload(action_id, user=user, thread_ts=thread_ts, state=state, stale=stale)
        if value is not None:
            payload["actions"][0]["value"] = value
        return await self._interaction(payload)

    def click_payload(
        self,
        action_id: str,
        *,
        user: str = "U1",
        thread_ts: str | None = None,
        state: dict[str, Any] | None = None,
        stale: tuple[Message, dict[str, Any], str] | None = None,
    ) -> dict[str, Any]:
        """The block_actions payload Slack sends for a click (see `click`)."""
        message, el, block_id = stale or self.find(action_id, thread_ts=thread_ts)
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user},
            "team": {"id": self.team_id},
            "api_app_id": "A1",
            "token": "t",
            "trigger_id": self._trigger(user),
            "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
            "channel": {"id": message.channel},
            "message": {
                "ts": message.ts,
                "thread_ts": message.thread_ts,
                "text": message.text,
                "blocks": message.blocks,
            },
            "response_url": self._response_url(user, message.channel, message),
            "state": {"values": state or {}},
            "actions": [
                {
                    "type": el["type"],
                    "action_id": el["action_id"],
                    "block_id": block_id,
                    "value": el.get("value", ""),
                    "action_ts": str(time.time()),
                }
            ],
        }

    async def submit(
        self, view_id: str, values: dict[str, dict[str, Any]], *, user: str = "U1"
    ) -> tuple[int, str, float]:
        """Submit a modal with `values` as Slack's view.state.values (block_id -> action_id -> state)."""
        view = self.views[view_id]
        payload = {
            "type": "view_submission",
            "user": {"id": user, "username": user},
            "team": {"id": self.team_id},
            "api_app_id": "A1",
            "token": "t",
            "trigger_id": self._trigger(user),
            "view": {**view, "state": {"values": values}},
        }
        status, body, took = await self._interaction(payload)
        if status == 200:
            answer = json.loads(body) if body else {}
            action = answer.get("response_action")
            problems = self._check_submission_ack(view, answer)
            if problems:  # Slack shows the person an error and leaves the modal as it was
                self.rejected.append({"method": "view_submission", "error": "invalid_ack", "errors": problems})
            elif action == "update":
                self.views[view_id] = {**answer["view"], "id": view_id, "hash": f"h{next(self._ts)}", "user": user}
            elif action == "push":  # on top of this one, which stays open beneath it
                pushed = f"V{next(self._ts)}"
                self.views[pushed] = {**answer["view"], "id": pushed, "hash": f"h{next(self._ts)}", "user": user}
            elif action != "errors":
                view["closed"] = True  # an empty ack closes the modal
            self.changed()
        return status, body, took

    @staticmethod
    def _check_submission_ack(view: dict[str, Any], answer: dict[str, Any]) -> list[str]:
        """What Slack would refuse in a view_submission ack: errors keyed to anything but the view's input
        blocks (https://docs.slack.dev/surfaces/modals#displaying_errors), or an invalid new view."""
        action = answer.get("response_action")
        if action == "errors":
            inputs = {b.get("block_id") for b in view.get("blocks", []) if b.get("type") == "input"}
            errors = answer.get("errors") or {}
            return [f"no input block {k!r}" for k in errors if k not in inputs] or ([] if errors else ["no errors"])
        if action in ("update", "push"):
            return validate_view(answer.get("view") or {})
        return []

    def close_view(self, view_id: str) -> None:
        if view_id in self.views:
            self.views[view_id]["closed"] = True
            self.changed()

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
    def add_routes(self, app: web.Application) -> None:
        """Hook for more routes on the same server (the web page of `bot.devslack.web`)."""

    async def __aenter__(self) -> DevSlack:
        app = web.Application()
        self.add_routes(app)
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/socket", self._socket)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{token}", self._respond)
        self.add_oauth_routes(app)
        self.add_file_routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{self.host}:{port}/"
        self.api_url = f"{self.base_url}api/"
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for queue in self._watchers:  # end open event streams, or shutdown would wait for them
            queue.put_nowait(-1)
        self._released.set()  # and swallowed calls
        await asyncio.sleep(0)
        if self.session is not None:
            await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()
