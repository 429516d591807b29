"""A small local OpenAI-compatible server that answers from a script, not a language model (Chat
Completions and Responses, streaming included).

`kern-bot dev` starts one when OPENAI_BASE_URL is not set, so the agent example's tool-call pause can be
tried with no model server and no key; the tests script it reply by reply. It understands nothing: the
`alert_script` reply for the agent example calls `send_alert` for the city named in the request, then
reports the tool's result.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """One scripted model turn: text, tool calls (name, arguments), or both. Streamed, its text stops after
    `hold_after` pieces until `hold` is set (a test holds an answer half written)."""

    text: str | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    hold_after: int | None = None
    hold: threading.Event | None = None


def text(value: str) -> Reply:
    return Reply(text=value)


def call(name: str, **arguments: Any) -> Reply:
    return Reply(calls=[(name, arguments)])


def calls(*items: tuple[str, dict[str, Any]]) -> Reply:
    return Reply(calls=list(items))


Script = Reply | Callable[[dict[str, Any]], Reply]


class ScriptedModel:
    """`with ScriptedModel() as server:` then `OpenAIChat(id="m", base_url=server.base_url, api_key="x")`.

    `server.script(reply, ...)` queues replies (a `Reply`, or a function of the request body returning
    one); `server.requests` records each request body with its path. When the queue is empty, `fallback`
    (a function of the request body) answers, or else the server answers 500 ("script exhausted").

    Streamed answers come a few characters at a time, `piece_delay` seconds apart (0: all at once), so that
    a streamed answer can be watched growing (`kern-bot dev` sets a small delay).
    """

    def __init__(self, fallback: Callable[[dict[str, Any]], Reply] | None = None, piece_delay: float = 0.0) -> None:
        self.fallback = fallback
        self.piece_delay = piece_delay
        self._script: list[Script] = []
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    def script(self, *replies: Script) -> ScriptedModel:
        self._script.extend(replies)
        return self

    @property
    def remaining(self) -> int:
        return len(self._script)

    def _next(self, body: dict[str, Any]) -> Reply | None:
        if not self._script:
            return self.fallback(body) if self.fallback is not None else None
        item = self._script.pop(0)
        return item(body) if callable(item) else item

    # ----- HTTP --------------------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": "chat", **body})
        reply = self._next(body)
        if reply is None:
            return web.json_response({"error": {"message": "script exhausted", "type": "test"}}, status=500)
        cid, model, now = f"chatcmpl-{uuid.uuid4().hex[:8]}", body.get("model", "m"), int(time.time())
        tool_calls: list[dict[str, Any]] = [
            {
                "id": f"call_{uuid.uuid4().hex[:8]}",
                "type": "function",
                "function": {"name": n, "arguments": json.dumps(a)},
            }
            for n, a in reply.calls
        ]
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.text}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": now,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        chunks: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        for piece in _pieces(reply.text or ""):
            chunks.append({"content": piece})
        for index, tc in enumerate(tool_calls):
            arguments = tc["function"]["arguments"]
            half = len(arguments) // 2
            chunks.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": tc["id"],
                            "type": "function",
                            "function": {"name": tc["function"]["name"], "arguments": arguments[:half]},
                        }
                    ]
                }
            )
            chunks.append({"tool_calls": [{"index": index, "function": {"arguments": arguments[half:]}}]})
        events = [
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            for delta in chunks
        ]
        events.append(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls" if tool_calls else "stop"}],
            }
        )
        return await _sse(request, [(None, e) for e in events], done=True, pace=self._pace(reply, len(events)))

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({"path": "responses", **body})
        reply = self._next(body)
        if reply is None:
            return web.json_response({"error": {"message": "script exhausted", "type": "test"}}, status=500)
        rid, now = f"resp_{uuid.uuid4().hex[:8]}", int(time.time())
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex[:8]}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for name, arguments in reply.calls:
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{uuid.uuid4().hex[:8]}",
                    "call_id": f"call_{uuid.uuid4().hex[:8]}",
                    "name": name,
                    "arguments": json.dumps(arguments),
                    "status": "completed",
                }
            )
        response = {
            "id": rid,
            "object": "response",
            "created_at": now,
            "model": body.get("model", "m"),
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "metadata": {},
            "temperature": None,
            "top_p": None,
            "usage": {
                "input_tokens": 1,
                "output_tokens": 1,
                "total_tokens": 2,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if not body.get("stream"):
            return web.json_response(response)
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "response.created",
                {
                    "type": "response.created",
                    "sequence_number": 0,
                    "response": {**response, "status": "in_progress", "output": []},
                },
            )
        ]
        for piece in _pieces(reply.text or ""):
            events.append(
                (
                    "response.output_text.delta",
                    {
                        "type": "response.output_text.delta",
                        "sequence_number": len(events),
                        "item_id": "msg",
                        "output_index": 0,
                        "content_index": 0,
                        "delta": piece,
                        "logprobs": [],
                    },
                )
            )
        events.append(
            ("response.completed", {"type": "response.completed", "sequence_number": len(events), "response": response})
        )
        return await _sse(request, events, done=False, pace=self._pace(reply, len(events)))

    def _pace(self, reply: Reply, count: int) -> Callable[[int], Awaitable[None]] | None:
        """How long the stream waits before its `i`-th event: `piece_delay` between text pieces, and the
        reply's hold after its `hold_after`-th piece (the first event carries no text)."""
        if not self.piece_delay and reply.hold is None:
            return None
        delay, hold, after = self.piece_delay, reply.hold, reply.hold_after

        async def pace(i: int) -> None:
            if hold is not None and after is not None and i == after + 1:
                while not hold.is_set():  # noqa: ASYNC110 (a threading.Event, set from the test's own loop)
                    await asyncio.sleep(0.01)
            elif 1 < i < count - 1 and delay:
                await asyncio.sleep(delay)

        return pace

    # ----- lifecycle -------------------------------------------------------------------------------
    def start(self) -> ScriptedModel:
        ready = threading.Event()

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._chat)
            app.router.add_post("/v1/responses", self._responses)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.base_url = f"http://127.0.0.1:{port}/v1"
            ready.set()
            loop.run_forever()

        threading.Thread(target=serve, daemon=True, name="scripted-model").start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> ScriptedModel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results a request carried, in order (Chat `tool` messages or Responses outputs)."""
    items = body.get("messages") or body.get("input") or []
    return [
        str(m.get("content") or m.get("output"))
        for m in items
        if m.get("role") == "tool" or m.get("type") == "function_call_output"
    ]


def _pieces(value: str) -> list[str]:
    """A reply's text as streamed: four characters at a time (a long text in about 250 pieces)."""
    size = 4 if len(value) <= 1000 else len(value) // 250
    return [value[i : i + size] for i in range(0, len(value), size)]


async def _sse(
    request: web.Request,
    events: Sequence[tuple[str | None, dict[str, Any]]],
    *,
    done: bool,
    pace: Callable[[int], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for index, (name, data) in enumerate(events):
        if pace is not None:
            await pace(index)
        prefix = f"event: {name}\n" if name else ""
        await response.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
    if done:
        await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


def user_text(body: dict[str, Any]) -> str:
    """The last thing the person said in a request (Chat `user` message or Responses input)."""
    items = body.get("messages") or body.get("input") or []
    if isinstance(items, str):
        return items
    for m in reversed(items):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(str(p["text"]) for p in content if isinstance(p, dict) and "text" in p)
            return str(content or "")
    return ""


CONVERSING = "Answer briefly."  # how the conversation example's instructions begin (bot/examples.py)


def _conversing(body: dict[str, Any]) -> bool:
    return any(
        m.get("role") == "system" and CONVERSING in str(m.get("content")) for m in body.get("messages") or []
    ) or CONVERSING in str(body.get("instructions") or "")


def alert_script(body: dict[str, Any]) -> Reply:
    """The agent examples' script: call `send_alert` for the first capitalized word of the request (the
    city, "Tokyo" if none), then, once the tool has answered, say what it answered. The conversation
    example (its instructions begin with CONVERSING) is answered with what was said unless it asks for an
    alert."""
    results = tool_results(body)
    if results:
        return text("Done (scripted model): " + results[-1])
    asked = user_text(body).split("\n\n<slack_context>")[0]  # the facts kern-bot adds (bot/surfaces/turn_context.py)
    if _conversing(body) and "alert" not in asked.lower():
        return text(
            f"You said: {asked} (I am a scripted model, not an LLM. Ask me to send an alert for a city, "
            "say `alert Osaka about heavy rain`, and I ask before I send it.)"
        )
    words = re.findall(r"\b[A-Z][a-zA-Z-]+\b", asked)
    city = next((w for w in words if w not in {"Warn", "Send", "Alert", "Please", "The"}), "Tokyo")
    return call("send_alert", city=city, message=f"Weather alert for {city} (sent by the scripted model)")
