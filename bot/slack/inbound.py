"""The checks every request to POST /slack/events passes before Bolt sees it.

Anyone can reach the endpoint, so a request is treated as hostile until proven otherwise, in this order:

1. the signature and its timestamp (401): nothing of the body is read before the request is known to
   come from Slack. Same rules as slack_sdk's `SignatureVerifier` (v0 HMAC-SHA256 over
   `v0:{timestamp}:{body}`, 300 s either way, constant-time compare), but computed over the raw bytes
   and tolerant of any header value, where `SignatureVerifier` raises on a non-numeric timestamp or a
   body that is not UTF-8;
2. the body (400): strict UTF-8, parsed exactly as Bolt parses it (by building Bolt's own request, so
   what is checked is what the listeners get), JSON nested no deeper than `MAX_DEPTH`;
3. the fields the bot's listeners rely on, for each payload type the bot handles (400).

A malformed request is answered 400 or 401 and changes nothing; the listeners behind this layer may index
what it checked. What a value means (a tool call's index among its pause's calls) is judged by the
listener that reads it, which refuses a wrong one privately (`bot.surfaces.tool_calls`). `guard_listeners` is the
last resort for what slips through anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot import blocks as ui
from kern.exceptions import KernError

log = logging.getLogger("kern_bot")

WINDOW = 300  # seconds: how far a request's timestamp may be from now (Slack's replay window)
MAX_DEPTH = 48  # nesting of a JSON payload; Slack's deepest (rich text in a clicked message) is about 12
TIMESTAMP = "X-Slack-Request-Timestamp"
SIGNATURE = "X-Slack-Signature"

_TEXT_VIEWS = {ui.V_EDIT, ui.V_FEEDBACK, ui.V_APPROVE, ui.V_TOOL_NOTE, ui.V_TOOL_RESULT}  # read values["text"]["v"]
_FORM_VIEWS = {ui.V_INPUT, ui.V_TOOL_INPUT}  # read_inputs: a static_select's option value is an index
_CLICK_HEAD = 'payload={"type":"block_actions"'


class RequestRejected(KernError):
    """A request to the Slack endpoint that is refused before any listener runs: `status` 401 (not
    signed by Slack, or stale) or 400 (signed, but not a request the bot can read); `reason` says what
    was wrong, without echoing the request."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _bad(reason: str) -> RequestRejected:
    return RequestRejected(400, reason)


# ----- 1. signature ---------------------------------------------------------------------------------------
def verify_signature(secret: str, body: bytes, headers: Mapping[str, str], now: float | None = None) -> None:
    """Raise RequestRejected(401) unless `body` carries Slack's signature made with `secret` within WINDOW."""
    timestamp, signature = headers.get(TIMESTAMP), headers.get(SIGNATURE)
    if not timestamp or len(timestamp) > 12 or not (timestamp.isascii() and timestamp.isdigit()):
        raise RequestRejected(401, f"missing or malformed {TIMESTAMP}")
    if abs((time.time() if now is None else now) - int(timestamp)) > WINDOW:
        raise RequestRejected(401, f"{TIMESTAMP} is outside the {WINDOW} s window")
    if not signature:
        raise RequestRejected(401, f"missing {SIGNATURE}")
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = b"v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
        raise RequestRejected(401, "invalid signature")


def request_key(body: bytes) -> str:
    """What identifies one delivery of a request, for deduplication: the hash of its signed body.

    Not of the signature: Slack signs a retry (`X-Slack-Retry-Num`) anew, with a new timestamp, but sends
    the same body. And two different requests never share a body: every one Slack sends carries an id
    of its own (a command's and an interaction's `trigger_id`, an event's `event_id`).
    """
    return hashlib.sha256(body).hexdigest()


# ----- 2. body ----------------------------------------------------------------------------------------------
def decode(body: bytes) -> str:
    """The body as text; RequestRejected(400) if it is not UTF-8."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("the body is not UTF-8") from None


def looks_like_click(text: str) -> bool:
    """A block_actions payload, judged from its first bytes without parsing the whole payload (the click
    fast path acks before parsing; `parse` runs later, before the click's work)."""
    return urllib.parse.unquote_plus(text[:120]).replace(" ", "").startswith(_CLICK_HEAD)


def parse(text: str, query: str, headers: Mapping[str, str], *, mode: str = "http") -> AsyncBoltRequest:
    """Bolt's request for this body, checked: RequestRejected(400) for what Bolt cannot parse, a body that
    is not an object, JSON nested deeper than MAX_DEPTH, or a payload without what the listeners read.
    `mode="socket_mode"`: Bolt does not check the signature again (a body whose signature was checked
    when it arrived, run again later from the database: `bot.runs.jobs`)."""
    try:
        req = AsyncBoltRequest(body=text, query=query, headers=headers, mode=mode)  # type: ignore[arg-type]
    except RecursionError:
        raise _bad(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError:
        raise _bad("the payload is not JSON") from None
    except Exception as exc:  # Bolt's parsing of a body it cannot make sense of (e.g. a JSON list)
        raise _bad(f"unreadable body ({type(exc).__name__})") from None
    check_fields(req.body)
    return req


def _too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


# ----- 3. fields ----------------------------------------------------------------------------------------------
def check_fields(body: Any) -> None:
    """RequestRejected(400) unless `body` has what the bot's listeners read for its kind of request.
    Kinds the bot does not handle pass (Bolt answers them: url_verification, ssl_check, unhandled)."""
    if not isinstance(body, dict):
        raise _bad("the body is not an object")
    if _too_deep(body):
        raise _bad(f"JSON nested deeper than {MAX_DEPTH} levels")
    if "command" in body:
        for name in ("command", "user_id", "channel_id"):
            _need(_text(body.get(name)), f"command without {name}")
        return
    kind = body.get("type")
    if kind == "block_actions":
        _check_click(body)
    elif kind == "view_submission":
        _check_submission(body)
    elif kind == "event_callback":
        _check_event(body)


def _need(ok: bool, reason: str) -> None:
    if not ok:
        raise _bad(reason)


def _text(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _optional(body: dict[str, Any], name: str, kind: type) -> None:
    _need(body.get(name) is None or isinstance(body[name], kind), f"{name} is not a {kind.__name__}")


def _check_user(body: dict[str, Any]) -> None:
    user = body.get("user")
    _need(isinstance(user, dict) and _text(user.get("id")), "payload without user.id")


def _check_click(body: dict[str, Any]) -> None:
    _check_user(body)
    _need(_text(body.get("trigger_id")), "block_actions without trigger_id")
    for name in ("channel", "container", "message", "state", "view"):
        _optional(body, name, dict)
    _optional(body, "response_url", str)
    _check_state(body.get("state"))
    _check_state((body.get("view") or {}).get("state"))  # a click on the App Home
    actions: Any = body.get("actions")  # untrusted JSON until checked
    _need(isinstance(actions, list) and actions != [], "block_actions without actions")
    for action in actions:
        _need(isinstance(action, dict) and _text(action.get("action_id")), "an action without action_id")
        _optional(action, "value", str)
        _check_element(action)
        if action["action_id"].startswith("kern:") and action.get("type") == "button":
            _need(_text(action.get("value")), "a kern button without its value")


def _check_event(body: dict[str, Any]) -> None:
    event: Any = body.get("event")  # untrusted JSON until checked
    _need(isinstance(event, dict) and _text(event.get("type")), "event_callback without event.type")
    if event["type"] == "app_home_opened":
        _need(_text(event.get("user")), "app_home_opened without user")


def _check_submission(body: dict[str, Any]) -> None:
    _check_user(body)
    view: Any = body.get("view")  # untrusted JSON until checked
    _need(isinstance(view, dict), "view_submission without view")
    _need(_text(view.get("type")) and _text(view.get("callback_id")), "view without type or callback_id")
    _need(isinstance(view.get("private_metadata"), str), "view without private_metadata")
    _need(isinstance(view.get("state"), dict), "view without state")
    _check_state(view["state"])
    callback, values = view["callback_id"], view["state"]["values"]
    if callback in _TEXT_VIEWS:
        _need(isinstance(values.get("text"), dict) and isinstance(values["text"].get("v"), dict), "form without text")
    if callback in _FORM_VIEWS:
        for block in values.values():
            for element in block.values():
                option = element.get("selected_option") if element.get("type") == "static_select" else None
                _need(option is None or option["value"].isdigit(), "a select without one of its options")


def _check_state(state: Any) -> None:
    """`state.values`: block_id -> action_id -> the element's state, as Slack sends it."""
    if state is None:
        return
    values = state.get("values")
    _need(isinstance(values, dict), "state without values")
    for block in values.values():
        _need(isinstance(block, dict), "malformed state")
        for element in block.values():
            _need(isinstance(element, dict), "malformed state")
            _check_element(element)


def _check_element(element: dict[str, Any]) -> None:
    """An input's or action's value and selected options have the types Slack gives them."""
    value = element.get("value")
    _need(value is None or isinstance(value, str), "a value that is not text")
    option = element.get("selected_option")
    options = element.get("selected_options")
    _need(option is None or _is_option(option), "a malformed selected_option")
    _need(options is None or (isinstance(options, list) and all(map(_is_option, options))), "malformed options")


def _is_option(option: Any) -> bool:
    return isinstance(option, dict) and isinstance(option.get("value"), str)


# ----- last resort ---------------------------------------------------------------------------------------------
_INPUT_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, RecursionError)


def guard_listeners(app: AsyncApp) -> None:
    """Bolt's error handler for exceptions a listener (or Bolt's own matching) raises while the request
    waits for its answer: logged with a reference, and answered without a 500 where the input is the
    likely cause. A listener that acked before failing keeps its ack; a lookup or type error on what was
    sent is a 400; anything else (the database, a bug in the bot) stays a 500, with the reference."""

    async def on_error(error: Exception, request: AsyncBoltRequest, response: BoltResponse | None) -> BoltResponse:
        ref = uuid.uuid4().hex[:12]
        log.error("request failed in a listener (ref %s)", ref, exc_info=error)
        ack = request.context.ack if request is not None else None
        if ack is not None and ack.response is not None and ack.response.status == 200:
            return ack.response
        if isinstance(error, _INPUT_ERRORS):
            return BoltResponse(status=400, body={"error": "bad request", "ref": ref})
        return BoltResponse(status=500, body={"error": "internal error", "ref": ref})

    app.error(on_error)
